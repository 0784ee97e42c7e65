"""Bytes of a file in the page cache, for the benchmarks that measure what a run pulled in from a model folder.

`mincore(2)` on a shared read-only mapping that is never touched, so measuring adds nothing to the cache.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_PROT_READ, _MAP_SHARED, _MAP_FAILED = 1, 1, ctypes.c_void_p(-1).value


def resident_bytes(path: Path) -> int:
    """Bytes of the file `path` in the page cache (a multiple of PAGE; 0 for an empty file); OSError if mmap or mincore fail."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb") as handle:
        address = _libc.mmap(None, size, _PROT_READ, _MAP_SHARED, handle.fileno(), 0)
    if address in (None, _MAP_FAILED):
        raise OSError(ctypes.get_errno(), f"mmap {path}")
    try:
        pages = (size + PAGE - 1) // PAGE
        vector = (ctypes.c_ubyte * pages)()
        if _libc.mincore(address, size, vector) != 0:
            raise OSError(ctypes.get_errno(), f"mincore {path}")
        return (pages - bytes(vector).count(0)) * PAGE
    finally:
        _libc.munmap(address, size)
