"""The runner: a crashing check errors its own rule only; probes run once; result files are atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance import registry
from conformance.candidate import Candidate
from conformance.planning import plan
from conformance.results import write_result
from conformance.runner import RunOptions, run
from conformance.spec import load_spec


@pytest.fixture
def crashing_check():
    @registry.check("test.crash", summary="always raises", probes=("static",), comparisons=())
    def crash(evidence, rule):
        raise RuntimeError("boom")

    yield "test.crash"
    registry._CHECKS.pop("test.crash")


def test_crashing_check_errors_its_rule_and_the_run_goes_on(llama_dir: Path, write_spec, crashing_check: str) -> None:
    spec = load_spec(write_spec([
        {"id": "CRASH", "level": "must", "check": crashing_check},
        {"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9},
    ]))
    result = run(Candidate(llama_dir), spec, RunOptions(log=lambda m: None))
    by_id = {r.id: r for r in result.rules}
    assert by_id["CRASH"].status == "error" and "check crashed: RuntimeError: boom" in by_id["CRASH"].message
    assert by_id["SIZE"].status == "pass"
    assert result.summary.conformant is False


def test_plan_runs_each_probe_once_with_dependencies_first(write_spec) -> None:
    spec = load_spec(write_spec([
        {"id": "A", "level": "must", "check": "size.parameters", "max": 1e9},
        {"id": "B", "level": "must", "check": "size.weight_bytes", "max": 1e9},
        {"id": "C", "level": "must", "check": "safety.checksums"},
        {"id": "D", "level": "must", "check": "runtime.deterministic", "new_tokens": 4},
        {"id": "E", "level": "must", "check": "runtime.deterministic", "new_tokens": 4},
        {"id": "F", "level": "must", "check": "runtime.deterministic", "new_tokens": 8},
    ]))
    keys = [probe.key for probe in plan(spec.rules)]
    assert keys == ["static", "card", "hashes", "scan", "load", "determinism[new_tokens=4]", "determinism[new_tokens=8]"]


def test_invalid_document_is_never_written(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    with pytest.raises(ValueError, match="result.schema.json"):
        write_result({"schema_version": "1.0"}, target)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_the_old_file(tmp_path: Path, llama_dir: Path, write_spec, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(write_spec([{"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9}]))
    document = run(Candidate(llama_dir), spec, RunOptions(log=lambda m: None)).to_document()
    target = tmp_path / "out" / "result.json"
    write_result(document, target)
    before = target.read_text()

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    import conformance.atomic_write as atomic_write

    monkeypatch.setattr(atomic_write.os, "fsync", broken_dump)
    with pytest.raises(OSError):
        write_result(document, target)
    assert target.read_text() == before and json.loads(before)["summary"]["passed"] == 1
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


class _Terminal:
    """A stream that says it is a terminal, so progress draws bars."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_bars_on_a_terminal_and_lines_elsewhere(llama_dir: Path, write_spec) -> None:
    import io

    from conformance.progress import Progress, TerminalProgress, progress_for

    spec = load_spec(write_spec([{"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9}, {"id": "CARD", "level": "must", "check": "card.present"}]))
    terminal = _Terminal()
    progress = progress_for(quiet=False, stream=terminal)
    assert isinstance(progress, TerminalProgress)
    run(Candidate(llama_dir), spec, RunOptions(progress=progress))
    assert "tiny-llama" in terminal.text and "2/2" in terminal.text and "\r" in terminal.text

    plain = io.StringIO()
    progress = progress_for(quiet=False, stream=plain)
    assert type(progress) is Progress
    run(Candidate(llama_dir), spec, RunOptions(progress=progress))
    assert "tiny-llama: 2 probes to run" in plain.getvalue() and "static probe" in plain.getvalue() and "\r" not in plain.getvalue()

    silent = io.StringIO()
    run(Candidate(llama_dir), spec, RunOptions(progress=progress_for(quiet=True, stream=silent)))
    assert silent.getvalue() == ""


def test_a_dead_task_errors_only_the_selected_rules(llama_dir: Path, write_spec) -> None:
    from conformance.executors import failed_document
    from conformance.results import validate_document

    spec = load_spec(write_spec([{"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9}, {"id": "CARD", "level": "must", "check": "card.present"}]))
    document = failed_document(str(llama_dir), spec, "worker died", only=["CARD"])
    assert [(r["id"], r["status"], r["message"]) for r in document["rules"]] == [("CARD", "error", "worker died")]
    assert document["spec"] == spec.identity() and validate_document(document) == []
