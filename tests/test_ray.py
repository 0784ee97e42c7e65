"""Leaderboards on Ray: a local 2-CPU Ray, the same verdicts as the local executor, dead tasks lose nothing."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from conformance.cli import main

ray = pytest.importorskip("ray", reason="install the ray extra: pip install -e '.[ray]'")

RULES = [
    {"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9},
    {"id": "ARCH", "level": "must", "check": "architecture.model_type", "in": ["llama", "gpt2"]},
    {"id": "LOADS", "level": "must", "check": "runtime.loads"},
    {"id": "SENT", "level": "should", "check": "quality.task_score", "task": "conformance_sentiment", "min": 0.4, "limit": 10},
]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def verdicts(out: Path) -> dict[str, dict[str, str]]:
    return {
        path.stem: {rule["id"]: rule["status"] for rule in json.loads(path.read_text())["rules"]}
        for path in sorted((out / "results").glob("*.json"))
    }


def test_ray_leaderboard_equals_local(local_ray, llama_dir: Path, gpt2_dir: Path, bert_dir: Path, write_spec, tmp_path: Path) -> None:
    spec = write_spec(RULES)
    models = [str(llama_dir), str(gpt2_dir), str(bert_dir)]
    common = ["--spec", str(spec), "--no-cache", "-q"]
    local_code = main(["leaderboard", *models, "--out", str(tmp_path / "local"), *common])
    ray_code = main(["leaderboard", *models, "--out", str(tmp_path / "ray"), "--executor", "ray", *common])
    assert local_code == ray_code == 1  # the BERT encoder fails ARCH in both
    assert verdicts(tmp_path / "ray") == verdicts(tmp_path / "local")
    assert (tmp_path / "ray" / "leaderboard.html").is_file()


def _killed_once(marker_dir: str):
    """A task body whose worker dies (SIGKILL) on the first attempt for each model, then runs normally."""
    from conformance.executors import run_one

    def task(model_path: str, spec_path: str, options: dict) -> dict:
        marker = Path(marker_dir) / (Path(model_path).name + ".killed")
        if not marker.exists():
            marker.write_text("killed once")
            os.kill(os.getpid(), signal.SIGKILL)
        return run_one(model_path, spec_path, options)

    return task


def _always_killed(victim: str):
    from conformance.executors import run_one

    def task(model_path: str, spec_path: str, options: dict) -> dict:
        if Path(model_path).name == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return run_one(model_path, spec_path, options)

    return task


def _run_ray(models: list[Path], spec: Path, task, retries: int) -> list[dict]:
    from conformance.candidate import Candidate
    from conformance.executors import run_ray
    from conformance.runner import RunOptions
    from conformance.spec import load_spec

    documents: dict[int, dict] = {}
    run_ray([str(Candidate(m).path) for m in models], load_spec(spec), str(spec), RunOptions(log=lambda m: None),
            lambda index, document: documents.__setitem__(index, document), max_retries=retries, task=task, log=lambda m: None)
    return [documents[i] for i in sorted(documents)]


def test_killed_worker_is_retried(local_ray, llama_dir: Path, gpt2_dir: Path, write_spec, tmp_path: Path) -> None:
    spec = write_spec(RULES[:3])
    documents = _run_ray([llama_dir, gpt2_dir], spec, _killed_once(str(tmp_path)), retries=1)
    assert [d["model"]["name"] for d in documents] == ["tiny-llama", "tiny-gpt2"]
    assert all(d["summary"]["conformant"] for d in documents)
    assert sorted(p.name for p in tmp_path.glob("*.killed")) == ["tiny-gpt2.killed", "tiny-llama.killed"]


def test_a_task_that_keeps_dying_errors_its_model_only(local_ray, llama_dir: Path, gpt2_dir: Path, write_spec) -> None:
    spec = write_spec(RULES[:3])
    documents = _run_ray([llama_dir, gpt2_dir], spec, _always_killed("tiny-gpt2"), retries=1)
    llama, gpt2 = documents
    assert llama["summary"]["conformant"] and {r["status"] for r in llama["rules"]} == {"pass"}
    assert {r["status"] for r in gpt2["rules"]} == {"error"}
    assert "died on the cluster after 1 retries" in gpt2["rules"][0]["message"]


def test_interrupted_leaderboard_resumes_from_written_results(llama_dir: Path, gpt2_dir: Path, write_spec, tmp_path: Path, monkeypatch) -> None:
    from conformance.probes import load as load_module

    spec = write_spec(RULES[:3])
    out = tmp_path / "board"
    assert main(["leaderboard", str(llama_dir), "--spec", str(spec), "--out", str(out), "--no-cache", "-q"]) == 0
    loads: list[str] = []
    original = load_module.load_model
    monkeypatch.setattr(load_module, "load_model", lambda candidate, *a, **k: loads.append(candidate.name) or original(candidate, *a, **k))
    assert main(["leaderboard", str(llama_dir), str(gpt2_dir), "--spec", str(spec), "--out", str(out), "--no-cache", "-q"]) == 0
    assert loads == ["tiny-gpt2"]  # the llama's result was already written for this spec and these weights
    assert main(["leaderboard", str(llama_dir), "--spec", str(spec), "--out", str(out), "--no-cache", "--fresh", "-q"]) == 0
    assert loads == ["tiny-gpt2", "tiny-llama"]


def test_ray_missing_says_how_to_install(monkeypatch, llama_dir: Path, write_spec, tmp_path: Path, capsys) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    code = main(["check", str(llama_dir), "--spec", str(write_spec(RULES[:1])), "--out", str(tmp_path), "--executor", "ray", "-q"])
    assert code == 2 and "pip install 'model-conformance[ray]'" in capsys.readouterr().err
