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
