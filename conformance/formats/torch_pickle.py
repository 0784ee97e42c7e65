"""The pickle-based torch formats: `.bin`, `.pt`, `.pth`, `.ckpt`, `.pkl`, `.pickle` (torch.save zips, legacy tars, raw pickles).

Their tensors cannot be listed without unpickling, so this format reports files, never tensors: the
serialization scan judges their content, and `archive_format` tells a TorchScript archive (which holds
code) from a plain torch.save archive by reading only the zip's central directory.
"""

from __future__ import annotations

import os
import struct
import zipfile
from typing import IO

from ..candidate import Candidate
from .base import WeightFormat

MAX_ZIP_DIRECTORY_BYTES = 16 * 1024 * 1024  # a torch archive's central directory is KiBs; bounds the member list
_EOCD = b"PK\x05\x06"
_EOCD_SEARCH = 22 + 65_535  # the end record plus the longest zip comment


def _zip_directory_size(handle: IO[bytes], size: int) -> int | None:
    """Bytes of the zip's central directory from its end record; None if the file has no end record."""
    handle.seek(size - min(size, _EOCD_SEARCH))
    tail = handle.read(_EOCD_SEARCH)
    at = tail.rfind(_EOCD)
    if at < 0 or at + 22 > len(tail):
        return None
    (directory_size,) = struct.unpack_from("<I", tail, at + 12)
    return int(directory_size)


def is_torchscript(names: list[str]) -> bool:
    """True for the member names of a TorchScript archive (torch.jit.save): compiled code and constants.

    torch.save's zips hold `<archive>/data.pkl`, `<archive>/data/<n>`, `version`, `byteorder`; torch.jit.save
    adds `<archive>/code/__torch__/...` (the TorchScript source) and `<archive>/constants.pkl`.
    """
    for name in names:
        parts = name.split("/")
        if parts[-1] == "constants.pkl" or any(parts[i : i + 2] == ["code", "__torch__"] for i in range(len(parts))):
            return True
    return False


def archive_format(candidate: Candidate, relative: str) -> str:
    """"torchscript" if the pickle-named weight file is a TorchScript zip, else "pickle".

    Reads the first 4 bytes, the last 64 KiB and a central directory of at most 16 MiB. Raises ValueError
    (UnsafeFileError included) or OSError when the file cannot be opened or its directory is over the bound.
    """
    with candidate.open_regular(relative) as handle:
        size = os.fstat(handle.fileno()).st_size
        if handle.read(4) != b"PK\x03\x04":
            return "pickle"  # a raw or legacy-tar pickle: the scan judges its content
        directory = _zip_directory_size(handle, size)
        if directory is None:
            return "pickle"  # not a readable zip; torch cannot load it as an archive either
        if directory > MAX_ZIP_DIRECTORY_BYTES:
            raise ValueError(f"zip central directory of {directory} bytes is over the {MAX_ZIP_DIRECTORY_BYTES}-byte limit")
        handle.seek(0)
        try:
            names = zipfile.ZipFile(handle).namelist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
            raise ValueError(f"unreadable zip archive: {exc}") from None
    return "torchscript" if is_torchscript(names) else "pickle"


class TorchPickleFormat(WeightFormat):
    """torch.save checkpoints by name; each file's kind ("pickle" or "torchscript") read from its zip directory."""

    name = "pickle"
    suffixes = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
    load_names = ("pytorch_model.bin", "pytorch_model.bin.index.json")
    kind_error = "archive kind unknown"

    def claims(self, name: str) -> bool:
        """Pickle-named files, except transformers' `training_args.bin` (trainer settings, not weights)."""
        return super().claims(name) and not name.lower().startswith("training_args")

    def file_kind(self, candidate: Candidate, relative: str) -> str:
        """"torchscript" or "pickle" (see `archive_format`); raises ValueError or OSError when unreadable."""
        return archive_format(candidate, relative)
