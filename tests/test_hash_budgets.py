"""Hashing and finiteness read only regular files inside the folder, within budgets of seconds and bytes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import time
from pathlib import Path

import pytest

from conformance.cache import HashCache
from conformance.candidate import Candidate
from conformance.errors import CheckError
from conformance.probes import hashes, runtime
from conformance.probes.hashes import HashBudget, HashBudgetError, probe_hashes, sha256_file
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

NOT_HUNG_SECONDS = 20.0  # generous bound proving "does not hang": these errors take milliseconds
SPARSE_TENSOR_BYTES = 40 * 10**9  # a 40 GB tensor: hashing it at 1 GB/s would take 40 s, a larger one hours


class FakeClock:
    """Seconds that advance by `step` each time they are read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def write_sparse_safetensors(path: Path, tensor_bytes: int = SPARSE_TENSOR_BYTES) -> Path:
    """A valid safetensors header declaring one F32 tensor of `tensor_bytes`; the data is a hole (no disk)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [tensor_bytes // 4], "data_offsets": [0, tensor_bytes]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    os.truncate(path, 8 + len(header) + tensor_bytes)
    return path


@pytest.fixture
def model_dir(llama_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(llama_dir, target)
    return target


def _timed(function, *args, **kwargs) -> tuple[object, float]:
    started = time.perf_counter()
    try:
        return function(*args, **kwargs), time.perf_counter() - started
    except Exception as exc:  # returned so tests can assert its type and message
        return exc, time.perf_counter() - started


def test_healthy_weights_hash_as_sha256(model_dir: Path) -> None:
    digests = probe_hashes(Candidate(model_dir), ["model.safetensors"])
    assert digests == {"model.safetensors": hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()}


def test_fifo_named_as_weights_errors_quickly(model_dir: Path) -> None:
    (model_dir / "model.safetensors").unlink()
    os.mkfifo(model_dir / "model.safetensors")
    error, seconds = _timed(probe_hashes, Candidate(model_dir), ["model.safetensors"])
    assert isinstance(error, CheckError) and "'model.safetensors' is a FIFO" in str(error)
    assert seconds < NOT_HUNG_SECONDS


def test_device_named_as_weights_errors_quickly(model_dir: Path) -> None:
    (model_dir / "model.safetensors").unlink()
    try:  # a /dev/zero node inside the folder (needs the right to make device nodes)
        os.mknod(model_dir / "model.safetensors", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("cannot make a device node here")
    error, seconds = _timed(probe_hashes, Candidate(model_dir), ["model.safetensors"])
    assert isinstance(error, CheckError) and "'model.safetensors' is a device" in str(error)
    assert seconds < NOT_HUNG_SECONDS


def test_link_to_dev_zero_is_refused_as_outside(model_dir: Path) -> None:
    (model_dir / "model.safetensors").unlink()
    (model_dir / "model.safetensors").symlink_to("/dev/zero")
    error, _ = _timed(probe_hashes, Candidate(model_dir), ["model.safetensors"])
    assert isinstance(error, CheckError) and "resolves outside the model folder (/dev/zero)" in str(error)


def test_sparse_40_gb_tensor_is_refused_before_reading(model_dir: Path) -> None:
    write_sparse_safetensors(model_dir / "model.safetensors")
    error, seconds = _timed(probe_hashes, Candidate(model_dir), ["model.safetensors"])
    size = (model_dir / "model.safetensors").stat().st_size
    assert isinstance(error, HashBudgetError)
    assert f"model.safetensors is sparse: {size} bytes declared" in str(error)
    assert seconds < NOT_HUNG_SECONDS


def test_dense_file_under_the_sparse_threshold_is_hashed(model_dir: Path) -> None:
    # Small files are hashed whatever their allocation: a 1 MiB hole costs a millisecond.
    write_sparse_safetensors(model_dir / "model.safetensors", tensor_bytes=1024 * 1024)
    digests = probe_hashes(Candidate(model_dir), ["model.safetensors"])
    assert digests["model.safetensors"] == hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


def test_seconds_budget_spans_every_file_and_names_itself(model_dir: Path) -> None:
    for index in range(3):
        (model_dir / f"part{index}.bin").write_bytes(bytes([index]) * 100)
    budget = HashBudget(max_seconds=15.0, clock=FakeClock(step=10.0))  # started at 10; each file read ticks 10 s
    with pytest.raises(HashBudgetError, match=r"over the 15-second limit \(at part1.bin; HASH_MAX_SECONDS\)"):
        probe_hashes(Candidate(model_dir), ["part0.bin", "part1.bin", "part2.bin"], budget=budget)


def test_bytes_budget_names_itself(model_dir: Path) -> None:
    (model_dir / "big.bin").write_bytes(b"x" * 300)
    with pytest.raises(HashBudgetError, match=r"over 200 bytes read \(at big.bin; HASH_MAX_BYTES\)"):
        probe_hashes(Candidate(model_dir), ["big.bin"], budget=HashBudget(max_bytes=200))


def test_budget_exceeded_through_the_file_hash_cache_is_not_remembered(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    (model_dir / "big.bin").write_bytes(b"x" * 300)
    monkeypatch.setattr(hashes, "HASH_MAX_BYTES", 200)
    cache = HashCache(tmp_path / "cache")
    with pytest.raises(HashBudgetError):
        probe_hashes(Candidate(model_dir), ["big.bin"], cache.sha256)
    cache.save()
    assert not (tmp_path / "cache" / "file-hashes.json").exists()  # nothing to remember
    monkeypatch.setattr(hashes, "HASH_MAX_BYTES", 10**6)
    assert probe_hashes(Candidate(model_dir), ["big.bin"], cache.sha256)["big.bin"] == hashlib.sha256(b"x" * 300).hexdigest()


def test_sha256_file_refuses_a_fifo_given_by_path(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # the file-hash cache hashes paths: the same refusal holds there
    error, seconds = _timed(sha256_file, tmp_path / "pipe")
    assert "is a FIFO" in str(error) and seconds < NOT_HUNG_SECONDS


def test_checksums_rule_errors_on_a_sparse_weights_file(model_dir: Path, write_spec) -> None:
    write_sparse_safetensors(model_dir / "model.safetensors")
    rules = [{"id": "CHECKSUMS", "level": "must", "check": "safety.checksums"}]
    result, seconds = _timed(run, Candidate(model_dir), load_spec(write_spec(rules)), RunOptions(log=lambda m: None))
    verdict = {r.id: r for r in result.rules}["CHECKSUMS"]
    assert verdict.status == "error" and "sparse" in verdict.message, verdict.message
    assert seconds < NOT_HUNG_SECONDS


# Finiteness: the same file checks and budgets, on safetensors shards read tensor by tensor.


def test_finiteness_counts_every_tensor_of_a_healthy_model(model_dir: Path) -> None:
    facts = runtime.probe_finiteness(Candidate(model_dir), ["model.safetensors"])
    assert facts.tensors_checked > 0 and facts.elements_checked > 0 and facts.nonfinite == {}


@pytest.mark.parametrize("kind", ["fifo", "outside-link", "dev-zero-link"])
def test_finiteness_refuses_special_and_outside_files_quickly(model_dir: Path, tmp_path: Path, kind: str) -> None:
    weights = model_dir / "model.safetensors"
    if kind == "fifo":
        weights.unlink()
        os.mkfifo(weights)
        expected = "is a FIFO"
    else:
        outside = tmp_path / "outside.safetensors"
        shutil.move(weights, outside)
        weights.symlink_to("/dev/zero" if kind == "dev-zero-link" else outside)
        expected = "resolves outside the model folder"
    error, seconds = _timed(runtime.probe_finiteness, Candidate(model_dir), ["model.safetensors"])
    assert isinstance(error, CheckError) and expected in str(error)
    assert seconds < NOT_HUNG_SECONDS


def test_finiteness_refuses_a_sparse_40_gb_tensor(model_dir: Path) -> None:
    write_sparse_safetensors(model_dir / "model.safetensors")
    error, seconds = _timed(runtime.probe_finiteness, Candidate(model_dir), ["model.safetensors"])
    assert isinstance(error, CheckError) and "sparse" in str(error)
    assert seconds < NOT_HUNG_SECONDS


def test_finiteness_seconds_and_bytes_budgets_name_themselves(model_dir: Path) -> None:
    candidate = Candidate(model_dir)
    with pytest.raises(CheckError, match=r"FINITENESS_MAX_SECONDS"):
        runtime.probe_finiteness(candidate, ["model.safetensors"], budget=runtime.FinitenessBudget(max_seconds=5.0, clock=FakeClock(step=10.0)))
    with pytest.raises(CheckError, match=r"over 1000 bytes read .*FINITENESS_MAX_BYTES"):
        runtime.probe_finiteness(candidate, ["model.safetensors"], budget=runtime.FinitenessBudget(max_bytes=1000))
