"""`-q` prints nothing: other libraries' output while a model is measured goes to OUT/conformance.log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from conformance.check_command import THIRD_PARTY_LOG
from conformance.cli import main
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
