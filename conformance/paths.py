"""Where the shipped data (schemas, standards, device tables) lives, in a checkout or an installed wheel."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def specs_dir() -> Path:
    """The `specs/` folder: beside the package in a checkout, inside it (as `_specs`) in a wheel."""
    for candidate in (_PACKAGE_DIR.parent / "specs", _PACKAGE_DIR / "_specs"):
        if (candidate / "schema").is_dir():
            return candidate
    raise FileNotFoundError(f"shipped specs folder not found near {_PACKAGE_DIR}")


def schema_path(name: str) -> Path:
    """The shipped JSON Schema `<name>.schema.json` (`spec`, `result`, `card`); the file may not exist."""
    return specs_dir() / "schema" / f"{name}.schema.json"


def standards_dir() -> Path:
    """The folder of the shipped standards; look names up with `standards.find_standard`."""
    return specs_dir() / "standards"


def default_cache_dir() -> Path:
    """The evidence cache folder: $CONFORMANCE_CACHE_DIR, else $XDG_CACHE_HOME/conformance, else ~/.cache/conformance."""
    configured = os.environ.get("CONFORMANCE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conformance"
