"""Files the project writes get the mode the user's umask gives (not mkstemp's 0600), atomically."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conformance.atomic_write import current_umask, write_atomic
from conformance.report.plots import write_png_atomic
from conformance.results import write_atomic as write_result_text


@pytest.fixture
def umask():
    """Set a umask for one test and restore the process's own after it."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    assert current_umask() == mask
    result = tmp_path / "results" / "model.json"
    write_result_text(result, "{}\n")
    image = tmp_path / "plots" / "p.png"
    write_png_atomic(image, b"\x89PNG")
    for path in (result, image):
        assert stat.S_IMODE(path.stat().st_mode) == mode, oct(path.stat().st_mode)
    assert result.read_text() == "{}\n" and image.read_bytes() == b"\x89PNG"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")

    def refuse() -> None:
        raise RuntimeError("target changed")

    with pytest.raises(RuntimeError):
        write_atomic(target, "new", before_replace=refuse)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_the_command_lines_results_and_reports_are_0644_under_umask_022(tmp_path: Path, llama_dir: Path) -> None:
    """End to end: `check` writes its result document and Markdown, `report` the leaderboard folder, all 0644."""
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def run(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "conformance", *args], env=env, capture_output=True, text=True, timeout=300,
            preexec_fn=lambda: os.umask(0o022),
        )
        assert done.returncode in (0, 1), done.stderr

    run("check", str(llama_dir), "--spec", "baseline-safety", "--out", str(tmp_path / "results"), "-q")
    run("report", str(tmp_path / "results" / f"{llama_dir.name}.json"), "--out", str(tmp_path / "board"))
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {path.suffix for path in written} >= {".json", ".md", ".html", ".csv", ".png"}
    modes = {str(path.relative_to(tmp_path)): oct(stat.S_IMODE(path.stat().st_mode)) for path in written}
    assert set(modes.values()) == {"0o644"}, modes
