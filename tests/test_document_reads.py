"""Result documents and regression baselines are read through one bounded reader: no traceback, no hang.

`conformance report` and `conformance diff` end with one `conformance: error: PATH: reason` line and exit 2
on a document nested past the parser, a directory, a FIFO, a file over the size budget or bytes that are
not UTF-8. A regression rule whose baseline is such a file never hangs `validate` (planning reads the
baseline, finds it unusable and requests no tasks, so the spec is valid) nor `check`, where the rule
errors with the reason. Every command runs in a subprocess with a timeout, so a hang fails the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conformance.probes.baseline import read_baseline
from conformance.result_document import ResultDocument
from conformance.results import MAX_DOCUMENT_DEPTH, ModelIdentity, RuleResult, RunResult, SpecIdentity, load_result, write_result
from conformance.safe_files import (
    DOCUMENT_MAX_BYTES,
    DOCUMENT_MAX_DEPTH,
    JSONTooDeepError,
    UnsafeFileError,
    json_depth,
    loads_json,
    read_json_document,
)

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600  # a hang fails the test instead of blocking the suite; generous, as a loaded machine took over 60 s for a check with a task rule
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}


def _conformance(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd, env={**OFFLINE, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=TIMEOUT_S)


def _deep_brackets(path: Path) -> None:
    path.write_text("[" * 200_000)


def _deep_rules(path: Path) -> None:  # valid-looking: a real document's keys, one rule nested 100,000 levels
    depth = 100_000
    path.write_text('{"schema_version": "1.0", "spec": {}, "model": {}, "summary": {}, "rules": ['
                    + "[" * depth + "]" * depth + '], "evidence": {}}')


def _directory(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _oversized(path: Path) -> None:
    with path.open("w") as handle:  # sparse: 65 MiB on paper, one byte on disk
        handle.write("{")
        handle.truncate(65 * 2**20)


def _not_utf8(path: Path) -> None:
    path.write_bytes(b'{"model": "\xff\xfe"}')


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "deep brackets": (_deep_brackets, f"not a readable result document: nests deeper than the {DOCUMENT_MAX_DEPTH}-level limit"),
    "deep rules": (_deep_rules, f"not a readable result document: nests deeper than the {DOCUMENT_MAX_DEPTH}-level limit"),
    "directory": (_directory, "not a readable result document: a directory, not a regular file"),
    "fifo": (_fifo, "not a readable result document: a FIFO, not a regular file"),
    "oversized": (_oversized, f"not a readable result document: {65 * 2**20} bytes, over the {DOCUMENT_MAX_BYTES}-byte (64 MiB) limit"),
    "not utf-8": (_not_utf8, "not a JSON result document: 'utf-8' codec can't decode byte 0xff"),
}


@pytest.fixture(scope="module")
def good_document(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid result document with one rule whose observed value was nested far past the writer's budget."""
    deep: object = "bottom"
    for _ in range(300):
        deep = [deep]
    result = RunResult(SpecIdentity("reads", "1", "0" * 64), ModelIdentity("tiny", "/models/tiny"),
                       [RuleResult("R", "size.parameters", "must", "pass", observed=deep)])
    path = tmp_path_factory.mktemp("documents") / "good.json"
    write_result(result.to_document(), path)
    return path


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_report_and_diff_end_with_one_error_line_and_exit_2(case: str, good_document: Path, tmp_path: Path) -> None:
    make, reason = BAD_FILES[case]
    bad = tmp_path / "bad.json"
    make(bad)
    runs = {
        "report": _conformance("report", str(bad), "--out", str(tmp_path / "board"), cwd=tmp_path),
        "diff (base)": _conformance("diff", str(bad), str(good_document), cwd=tmp_path),
        "diff (new)": _conformance("diff", str(good_document), str(bad), cwd=tmp_path),
    }
    for command, completed in runs.items():
        lines = completed.stderr.strip().splitlines()
        assert completed.returncode == 2, (command, completed.stderr[-2000:])
        assert "Traceback" not in completed.stderr, command
        assert len(lines) == 1 and lines[0].startswith(f"conformance: error: {bad}: {reason}"), (command, lines)
    assert not (tmp_path / "board").exists()  # nothing written from a document that could not be read


def test_a_written_document_at_the_depth_budget_reads_back_and_a_link_to_it_is_followed(good_document: Path, tmp_path: Path) -> None:
    data = json.loads(good_document.read_text())
    assert json_depth(data) == MAX_DOCUMENT_DEPTH <= DOCUMENT_MAX_DEPTH  # what json_safe writes, the reader accepts
    assert load_result(good_document) == data
    link = tmp_path / "link.json"
    link.symlink_to(good_document)  # the user's own documents may be links
    assert ResultDocument.load(link).rules[0].id == "R"
    completed = _conformance("diff", str(good_document), str(link), cwd=tmp_path)
    assert completed.returncode == 0 and "Traceback" not in completed.stderr


def test_the_depth_limit_is_exact_and_the_reader_raises_typed_reasons(good_document: Path, tmp_path: Path) -> None:
    def nested(depth: int) -> str:  # `depth` lists around one number: json_depth counts the number's level
        return "[" * depth + "0" + "]" * depth

    assert json_depth(read_json_document(_write(tmp_path / "at.json", nested(DOCUMENT_MAX_DEPTH)), 2**20, DOCUMENT_MAX_DEPTH)) == DOCUMENT_MAX_DEPTH
    with pytest.raises(JSONTooDeepError, match=f"^nests deeper than the {DOCUMENT_MAX_DEPTH}-level limit$"):
        read_json_document(_write(tmp_path / "past.json", nested(DOCUMENT_MAX_DEPTH + 1)), 2**20, DOCUMENT_MAX_DEPTH)
    with pytest.raises(UnsafeFileError, match="^a directory, not a regular file$"):
        read_json_document(tmp_path, 2**20, DOCUMENT_MAX_DEPTH)
    with pytest.raises(UnsafeFileError, match=r"^3 bytes, over the 2-byte \(1.90735e-06 MiB\) limit$"):
        read_json_document(_write(tmp_path / "three.json", "[1]"), 2, DOCUMENT_MAX_DEPTH)
    with pytest.raises(FileNotFoundError):
        read_json_document(tmp_path / "missing.json", 2**20, DOCUMENT_MAX_DEPTH)
    # the model files' reader keeps its own words
    with pytest.raises(ValueError, match="^config.json nests deeper than the 64-level limit$"):
        loads_json(nested(65), "config.json")
    with pytest.raises(ValueError, match="^config.json nests deeper than the 64-level limit$"):
        loads_json(nested(100_000), "config.json")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BASELINE_ERRORS: dict[str, str] = {
    "fifo": "cannot be read: a FIFO, not a regular file",
    "directory": "cannot be read: a directory, not a regular file",
    "deep brackets": f"is not a result document with task scores (nests deeper than the {DOCUMENT_MAX_DEPTH}-level limit)",
    "oversized": f"cannot be read: {65 * 2**20} bytes, over the {DOCUMENT_MAX_BYTES}-byte (64 MiB) limit",
}


def _regression_spec(folder: Path) -> Path:
    rule = {"id": "NO-REGRESSION", "level": "must", "check": "quality.regression", "baseline": "base.json", "max_drop": 0.05}
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump({"id": "reads", "version": "1", "rules": [rule]}), encoding="utf-8")
    return spec


@pytest.mark.parametrize("case", sorted(BASELINE_ERRORS))
def test_an_unusable_baseline_is_reported_and_validate_does_not_hang(case: str, tmp_path: Path) -> None:
    BAD_FILES[case][0](tmp_path / "base.json")
    baseline = read_baseline(tmp_path / "base.json")
    assert baseline.error == f"baseline {tmp_path / 'base.json'} {BASELINE_ERRORS[case]}" and not baseline.scores
    spec = _regression_spec(tmp_path)
    completed = _conformance("validate", str(spec), cwd=tmp_path)  # planning reads the baseline: it must return
    assert completed.returncode == 0 and completed.stdout.startswith(f"ok: {spec}"), completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr


def test_the_existing_baseline_messages_are_kept(tmp_path: Path) -> None:
    assert read_baseline(tmp_path / "gone.json").error == f"baseline result {tmp_path / 'gone.json'} not found"
    error = read_baseline(_write(tmp_path / "text.json", "not json")).error
    assert error is not None and error.startswith(f"baseline {tmp_path / 'text.json'} is not a result document with task scores (JSONDecodeError: ")
    error = read_baseline(_write(tmp_path / "list.json", "[]")).error
    assert error is not None and "is not a result document with task scores (TypeError: " in error
    bad_bytes = tmp_path / "bytes.json"
    bad_bytes.write_bytes(b"\xff")
    error = read_baseline(bad_bytes).error
    assert error is not None and error.startswith(f"baseline {bad_bytes} cannot be read (UnicodeDecodeError: ")


def test_check_errors_the_regression_rule_on_a_fifo_baseline(llama_dir: Path, tmp_path: Path) -> None:
    _fifo(tmp_path / "base.json")
    spec = _regression_spec(tmp_path)
    completed = _conformance("check", str(llama_dir), "--spec", str(spec), "--out", str(tmp_path / "out"), "--no-cache", "-q", cwd=tmp_path)
    assert completed.returncode == 1 and "Traceback" not in completed.stderr, completed.stderr[-2000:]
    [rule] = load_result(tmp_path / "out" / "tiny-llama.json")["rules"]
    assert rule["status"] == "error"
    assert rule["message"] == f"baseline {(tmp_path / 'base.json').resolve()} cannot be read: a FIFO, not a regular file"


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ("text", 0), (None, 0), ({}, 0), ([], 0), ({"a": 1}, 1), ([[]], 1), ([[1]], 2), ({"a": {"b": []}}, 2),
     ([1, [2, [3]]], 3), ([{"a": [1, {"b": {}}]}, 2], 4), ([{"a": [1, {"b": 0}]}, 2], 4), ([{"a": [1, {}]}], 3), ([{"a": []}], 2), ([[[[[]]]], 1], 4)],
)
def test_json_depth_counts_the_levels_that_hold_a_value(value: object, depth: int) -> None:
    assert json_depth(value) == depth


def test_json_depth_walks_a_thousand_levels_without_recursion() -> None:
    value: list = []
    for _ in range(5_000):
        value = [value, 1]
    assert json_depth(value) == 5_000
