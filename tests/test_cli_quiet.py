"""`-q` prints nothing: other libraries' output while a model is measured goes to OUT/conformance.log."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from conformance.check_command import THIRD_PARTY_LOG
from conformance.cli import main
from conformance.console import log_refusal
from conformance.paths import standards_dir

# conformance_lm on 2 of its 15 documents: lm-eval warns about the bundled task's kwargs, about the model
# it is handed, and its log-likelihood requests run with progress bars; it shells out to `git describe`.
TASK_SPEC = {
    "id": "quiet-tasks", "version": "1",
    "rules": [{"id": "LM", "level": "should", "check": "quality.task_score", "task": "conformance_lm",
               "metric": "word_perplexity", "limit": 2, "max": 1e30}],
}


def test_quiet_check_prints_nothing_and_keeps_third_party_output_in_the_log(
    llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # not a git folder: lm-eval's `git describe` complains on stderr
    # As on the command line, no logging handler is configured (pytest's own would catch lm-eval's warnings):
    # they reach stderr through logging.lastResort, which is where users saw them.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    spec = tmp_path / "tasks.yaml"
    spec.write_text(yaml.safe_dump(TASK_SPEC), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["check", str(llama_dir), "--spec", str(spec), "--no-cache", "-q", "--out", str(out)]) == 0
    captured = capfd.readouterr()  # Python's streams and file descriptors 1 and 2 alike
    assert (captured.out, captured.err) == ("", "")
    log = (out / THIRD_PARTY_LOG).read_text(encoding="utf-8", errors="replace")
    assert "conformance_lm: Custom kwargs can be passed" in log and "already-initialized model" in log  # kept, not lost
    document = json.loads((out / "tiny-llama.json").read_text(encoding="utf-8"))
    assert document["rules"][0]["status"] == "pass"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["validate", "STANDARD"], 0),
        (["validate", "MODEL"], 0),
        (["rules"], 0),
        (["rules", "--format", "json"], 0),
        (["rules", "--format", "markdown"], 0),
        (["diff", "DOC", "DOC"], 0),
        (["report", "DOC", "--out", "BOARD"], 0),
        (["check", "MODEL", "--spec", "baseline-safety", "--only", "SAFE-FORMAT", "--out", "OUT"], 0),
        (["validate", "EMPTY"], 2),
    ],
)
def test_quiet_on_every_subcommand(
    args: list[str], code: int, llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    places = {
        "STANDARD": str(standards_dir() / "baseline-safety.yaml"), "MODEL": str(llama_dir), "EMPTY": str(tmp_path / "empty"),
        "DOC": str(tmp_path / "doc.json"), "BOARD": str(tmp_path / "board"), "OUT": str(tmp_path / "out"),
    }
    (tmp_path / "empty").mkdir()
    if "DOC" in args:
        assert main(["check", str(llama_dir), "--spec", "baseline-safety", "--only", "SAFE-FORMAT", "--out", str(tmp_path), "-q"]) == 0
        (tmp_path / "tiny-llama.json").rename(tmp_path / "doc.json")
    assert main([places.get(arg, arg) for arg in args] + ["-q"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert all(line.startswith("conformance: error: ") for line in captured.err.splitlines())
    assert bool(captured.err) == (code == 2)


def _document(name: str) -> dict:
    """A valid result document for model `name` with one passing rule (no model is loaded)."""
    from conformance.results import ModelIdentity, RuleResult, RunResult, SpecIdentity, environment
    from conformance.verdict import Level, Status

    return RunResult(
        spec=SpecIdentity.from_dict({"id": "s", "version": "1", "title": "", "path": None, "sha256": "0" * 64}),
        model=ModelIdentity.from_dict({"name": name, "path": "/m", "sha256": None}),
        rules=[RuleResult(id="A", check="card.present", level=Level("must"), status=Status("pass"), observed=1, expected=None,
                          message="ok", seconds=0.0)],
        evidence={}, environment=environment(),
    ).to_document()


def _stray_logs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("conformance-*.log"))


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_a_log_that_is_not_a_regular_file_is_never_written(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(_document("m\x00")), encoding="utf-8")  # matplotlib warns about the NUL glyph
    out, victim = tmp_path / "board", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("secret\n", encoding="utf-8")
    log = out / THIRD_PARTY_LOG
    {"symlink": lambda: log.symlink_to(victim), "fifo": lambda: os.mkfifo(log), "directory": log.mkdir}[kind]()
    strays = _stray_logs()
    signal.alarm(120)  # a FIFO opened for writing with no reader used to block forever: fail instead of hanging
    try:
        assert main(["report", str(document), "--out", str(out)]) == 0
    finally:
        signal.alarm(0)
    err = capsys.readouterr().err
    reason = {"symlink": "is a symlink", "fifo": "is a FIFO with no reader", "directory": "is a directory"}[kind]
    assert f"conformance.log {reason}: other libraries' output is dropped" in err
    assert victim.read_text(encoding="utf-8") == "secret\n"
    assert os.path.lexists(log) and _stray_logs() == strays  # left as found; nothing written to a temporary file instead


def test_the_log_opened_by_the_console_must_be_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "conformance.log"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # with a reader the open succeeds: fstat must refuse it
    try:
        assert log_refusal(fifo) == "conformance.log is not a regular file: other libraries' output is dropped"
    finally:
        os.close(reader)


def test_an_empty_log_made_by_this_run_is_removed_one_found_is_kept(tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(_document("m")), encoding="utf-8")
    assert main(["report", str(document), "--out", str(tmp_path / "a"), "-q"]) == 0
    assert not (tmp_path / "a" / THIRD_PARTY_LOG).exists() and (tmp_path / "a" / "leaderboard.html").is_file()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / THIRD_PARTY_LOG).write_bytes(b"")
    assert main(["report", str(document), "--out", str(tmp_path / "b"), "-q"]) == 0
    assert (tmp_path / "b" / THIRD_PARTY_LOG).is_file()


def test_quiet_report_keeps_plot_warnings_in_the_log(tmp_path: Path) -> None:
    # A real process: pytest records warnings itself, so only a process of its own shows what a terminal gets.
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(_document("m\x00" + "x" * 3000)), encoding="utf-8")
    out = tmp_path / "board"
    command = [sys.executable, "-m", "conformance", "report", str(document), "--out", str(out), "-q"]
    done = subprocess.run(command, capture_output=True, timeout=300, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert "Glyph 0" in (out / THIRD_PARTY_LOG).read_text(encoding="utf-8")
