"""Loading opens nothing outside the model folder: index shards, symlinked weights, tokenizer and generation files.

Two witnesses that nothing outside was opened: an audit hook sees every Python-level open, and outside
targets are files whose use would show whatever language opened them (a shard with other weights, a
tokenizer that would load, a FIFO that would block a reader).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.candidate import Candidate
from conformance.errors import CheckError
from conformance.probes.load import LoadOptions, load_model
from conformance.probes.load_preflight import LoadRefused, plan_load, staged_folder
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

NOT_HUNG_SECONDS = 20.0  # generous: a refused load takes milliseconds; a blocked open never returns
_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_audit)  # hooks cannot be removed; it records only while `opens()` is active


@contextlib.contextmanager
def opens() -> Iterator[list[str]]:
    """Real paths of every file opened at the Python level while active."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def opened_under(opened: list[str], folder: Path) -> list[str]:
    real = os.path.realpath(folder)
    return [path for path in opened if path == real or path.startswith(real + os.sep)]


@contextlib.contextmanager
def fifo_guard(fifo: Path, seconds: float = NOT_HUNG_SECONDS) -> Iterator[dict[str, bool]]:
    """Unblock any reader of `fifo` after `seconds` and report it: a test that would hang fails instead."""
    state = {"reader_blocked": False}
    done = threading.Event()

    def watch() -> None:
        if done.wait(seconds):
            return
        try:  # opening the write end succeeds only while a reader has the FIFO open
            descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return
        state["reader_blocked"] = True
        os.close(descriptor)  # the reader sees end of file and returns

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield state
    finally:
        done.set()
        watcher.join()


def load(model_dir: Path, formats: tuple[str, ...] = ("safetensors",)) -> tuple[object | None, str, float]:
    """(loaded model or None, error message, seconds)."""
    started = time.perf_counter()
    try:
        loaded = load_model(Candidate(model_dir), LoadOptions(device="cpu"), list(formats), [])
    except CheckError as exc:
        return None, str(exc), time.perf_counter() - started
    return loaded, "", time.perf_counter() - started


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def sharded_copy(sharded_dir: Path, tmp_path: Path) -> Path:
    """A copy of the sharded zoo llama two levels below tmp_path, so '../../outside' is tmp_path/outside."""
    target = tmp_path / "models" / "sharded"
    shutil.copytree(sharded_dir, target)
    return target


def _point_shard(model_dir: Path, shard: str, target: str) -> None:
    index_path = model_dir / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"] = {name: (target if file == shard else file) for name, file in index["weight_map"].items()}
    index_path.write_text(json.dumps(index))


def test_healthy_sharded_model_loads_from_the_staging_folder(sharded_copy: Path) -> None:
    loaded, message, _ = load(sharded_copy)
    assert loaded is not None, message
    assert loaded.model.config._name_or_path == str(sharded_copy)  # named after the model, not the staging folder
    assert loaded.tokenizer is not None and loaded.tokenizer.name_or_path == str(sharded_copy)


def test_index_shard_outside_the_folder_is_refused_and_never_opened(sharded_copy: Path, outside: Path) -> None:
    shard = "model-00002-of-00010.safetensors"
    # A complete, loadable shard outside, and none inside: today's loader would pass on the outside weights.
    shutil.move(sharded_copy / shard, outside / "shard2.safetensors")
    _point_shard(sharded_copy, shard, "../../outside/shard2.safetensors")
    assert (sharded_copy / "../../outside/shard2.safetensors").resolve() == (outside / "shard2.safetensors").resolve()
    with opens() as opened:
        loaded, message, seconds = load(sharded_copy)
    assert loaded is None
    assert "not loaded" in message and "../../outside/shard2.safetensors" in message and "not a path inside" in message
    assert opened_under(opened, outside) == []
    assert seconds < NOT_HUNG_SECONDS


def test_index_shard_at_an_absolute_path_is_refused(sharded_copy: Path) -> None:
    _point_shard(sharded_copy, "model-00003-of-00010.safetensors", "/etc/passwd")
    with opens() as opened:
        loaded, message, _ = load(sharded_copy)
    assert loaded is None and "'/etc/passwd' is not a path inside the model folder" in message
    assert "/etc/passwd" not in opened


def test_index_shard_that_is_missing_is_refused_before_loading(sharded_copy: Path) -> None:
    (sharded_copy / "model-00004-of-00010.safetensors").unlink()
    loaded, message, _ = load(sharded_copy)
    assert loaded is None and "'model-00004-of-00010.safetensors' is missing" in message


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "generation_config.json", "config.json", "tokenizer_config.json"])
def test_loader_file_linked_outside_is_refused_and_never_opened(llama_dir: Path, tmp_path: Path, outside: Path, name: str) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(llama_dir, model_dir)
    # The outside file is the model's own, so a load that followed the link would pass.
    shutil.move(model_dir / name, outside / name)
    (model_dir / name).symlink_to(outside / name)
    with opens() as opened:
        loaded, message, _ = load(model_dir)
    assert loaded is None
    assert "not loaded" in message and f"{name!r} resolves outside the model folder" in message
    assert opened_under(opened, outside) == []


def test_tokenizer_linked_to_an_outside_fifo_is_refused_without_blocking(llama_dir: Path, tmp_path: Path, outside: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(llama_dir, model_dir)
    fifo = outside / "tokenizer.json"
    os.mkfifo(fifo)
    (model_dir / "tokenizer.json").unlink()
    (model_dir / "tokenizer.json").symlink_to(fifo)
    with fifo_guard(fifo) as guard, opens() as opened:
        loaded, message, seconds = load(model_dir)
    assert not guard["reader_blocked"], "the load opened the outside FIFO"
    assert loaded is None and "resolves outside the model folder" in message
    assert opened_under(opened, outside) == []
    assert seconds < NOT_HUNG_SECONDS


@pytest.mark.parametrize("name", ["tokenizer.json", "model.safetensors", "vocab.txt"])
def test_fifo_inside_the_folder_is_refused_without_blocking(llama_dir: Path, tmp_path: Path, name: str) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(llama_dir, model_dir)
    with contextlib.suppress(FileNotFoundError):
        (model_dir / name).unlink()
    os.mkfifo(model_dir / name)
    with fifo_guard(model_dir / name) as guard:
        loaded, message, _ = load(model_dir)
    assert not guard["reader_blocked"]
    assert loaded is None and f"{name!r} is a FIFO; only regular files are loaded" in message


def test_weights_linked_to_dev_zero_are_refused(llama_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(llama_dir, model_dir)
    (model_dir / "model.safetensors").unlink()
    (model_dir / "model.safetensors").symlink_to("/dev/zero")
    loaded, message, _ = load(model_dir)
    assert loaded is None and "resolves outside the model folder (/dev/zero)" in message


def test_files_no_loader_needs_are_left_out_not_errors(llama_dir: Path, tmp_path: Path, outside: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(llama_dir, model_dir)
    (outside / "notes.md").write_text("outside")
    (model_dir / "notes.md").symlink_to(outside / "notes.md")
    (model_dir / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(outside)}))
    (model_dir / "modeling_evil.py").write_text("raise SystemExit")
    (model_dir / "pytorch_model.bin").write_bytes(b"not used: safetensors are preferred")
    (model_dir / "extra.txt").write_text("a regular file inside: staged")
    plan = plan_load(model_dir.resolve(), "safetensors")
    assert {"notes.md", "adapter_config.json", "modeling_evil.py", "pytorch_model.bin"} <= set(plan.skipped)
    assert "resolves outside" in plan.skipped["notes.md"]
    assert "extra.txt" in plan.files and "model.safetensors" in plan.files
    with staged_folder(model_dir.resolve(), "safetensors") as staging:
        staged = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*"))
        links = [name for name in staged if (staging / name).is_symlink()]
        assert all(os.path.realpath(staging / name).startswith(str(model_dir.resolve()) + os.sep) for name in links)
        assert sorted(set(staged) - set(links)) == ["tokenizer_config.json"]  # the one file written, not linked
        assert "notes.md" not in staged and "adapter_config.json" not in staged and "pytorch_model.bin" not in staged
    assert not staging.exists()  # removed after the load; the model's files are untouched
    assert (model_dir / "model.safetensors").is_file()
    with opens() as opened:
        loaded, message, _ = load(model_dir)
    assert loaded is not None, message
    assert opened_under(opened, outside) == []


def test_staged_index_is_rewritten_from_verified_entries(sharded_copy: Path) -> None:
    index = json.loads((sharded_copy / "model.safetensors.index.json").read_text())
    index["metadata"]["note"] = {"nested": "dropped"}
    (sharded_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    with staged_folder(sharded_copy.resolve(), "safetensors") as staging:
        staged_index = staging / "model.safetensors.index.json"
        assert not staged_index.is_symlink()  # our own file, not the model's
        written = json.loads(staged_index.read_text())
    assert written["weight_map"] == index["weight_map"] and "note" not in written["metadata"]


def test_fast_tokenizer_files_climbing_out_are_refused(llama_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(llama_dir, model_dir)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config["fast_tokenizer_files"] = ["tokenizer.4.0.json/../../../../etc/passwd"]
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(LoadRefused, match="not a path inside the model folder"):
        plan_load(model_dir.resolve(), "safetensors")


def test_pickle_index_entries_are_checked_too(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    (model_dir / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {"w": "../w.bin"}}))
    with pytest.raises(LoadRefused, match="pytorch_model.bin.index.json maps 'w' to a shard: '../w.bin'"):
        plan_load(model_dir.resolve(), "pickle")


def test_runtime_rules_error_with_the_reason(llama_dir: Path, tmp_path: Path, outside: Path, write_spec) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(llama_dir, model_dir)
    shutil.move(model_dir / "generation_config.json", outside / "generation_config.json")
    (model_dir / "generation_config.json").symlink_to(outside / "generation_config.json")
    rules = [
        {"id": "LOADS", "level": "must", "check": "runtime.loads"},
        {"id": "LOGITS", "level": "must", "check": "runtime.logits_finite"},
    ]
    result = run(Candidate(model_dir), load_spec(write_spec(rules)), RunOptions(log=lambda m: None))
    by_id = {r.id: r for r in result.rules}
    for rule_id in ("LOADS", "LOGITS"):
        assert by_id[rule_id].status == "error"
        assert "'generation_config.json' resolves outside the model folder" in by_id[rule_id].message


def test_tokenizer_config_file_arguments_are_dropped_from_the_staged_copy(llama_dir: Path, tmp_path: Path, outside: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(llama_dir, model_dir)
    # The model's tokenizer moves outside and the config names it there: a loader honouring the name would pass.
    shutil.move(model_dir / "tokenizer.json", outside / "tokenizer.json")
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config.update({"tokenizer_file": str(outside / "tokenizer.json"), "vocab_file": "/etc/passwd", "merges_file": "../outside/merges.txt"})
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))
    with staged_folder(model_dir.resolve(), "safetensors") as staging:
        staged = json.loads((staging / "tokenizer_config.json").read_text())
    assert not {"tokenizer_file", "vocab_file", "merges_file"} & set(staged)
    assert staged["model_max_length"] == config["model_max_length"]  # the rest is kept
    with opens() as opened:
        loaded, message, _ = load(model_dir)
    assert loaded is None and "load failed" in message  # no tokenizer.json in the folder: no tokenizer
    assert opened_under(opened, outside) == [] and "/etc/passwd" not in opened


def test_gguf_linked_outside_the_folder_is_refused_and_never_opened(tmp_path: Path, outside: Path) -> None:
    target = outside / "model.gguf"
    target.write_bytes(b"GGUF" + b"\0" * 60)
    folder = tmp_path / "gguf-model"
    folder.mkdir()
    os.symlink(target, folder / "model.gguf")
    with opens() as opened:
        loaded, error, _ = load(folder, ("gguf",))
    assert loaded is None and "not loaded" in error and "outside the model folder" in error
    assert opened_under(opened, outside) == []


def test_gguf_load_stages_the_named_file_alone(tmp_path: Path, outside: Path) -> None:
    folder = tmp_path / "gguf-model"
    folder.mkdir()
    (folder / "model.gguf").write_bytes(b"GGUF")
    (folder / "notes.txt").write_text("beside the model")
    os.symlink(outside, folder / "linked-folder")
    plan = plan_load(folder.resolve(), "gguf", weights_file="model.gguf")
    assert sorted(plan.files) == ["model.gguf", "notes.txt"] and "linked-folder" in plan.skipped
    for name in ("../model.gguf", "/etc/passwd", "absent.gguf"):
        with pytest.raises(LoadRefused):
            plan_load(folder.resolve(), "gguf", weights_file=name)
    with pytest.raises(LoadRefused, match="gguf weights are not loaded"):  # no file named: the format has no load names
        plan_load(folder.resolve(), "gguf")
