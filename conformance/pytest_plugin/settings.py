"""The plugin's options: command line first, then the ini file, resolved once per session."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..hub import split_reference
from ..options import is_device_choice
from ..standards import find_standard, is_standard_name

DEFAULT_SPEC_PATTERN = "conformance_*.yaml"


def add_options(parser: pytest.Parser) -> None:
    """Register the `--conformance-*` options and their ini keys."""
    group = parser.getgroup("conformance", "model conformance (rules as test items)")
    group.addoption(
        "--conformance-spec", action="append", default=[], metavar="SPEC",
        help="spec file or shipped standard name whose rules become test items (repeatable; ini: conformance_spec)",
    )
    group.addoption(
        "--conformance-model", action="append", default=[], metavar="MODEL",
        help="model folder, .gguf file or repo id ORG/NAME[@REV] in the Hugging Face cache to check against every spec "
        "(repeatable; ini: conformance_model)",
    )
    group.addoption(
        "--conformance-out", default=None, metavar="DIR",
        help="write <model>.<spec id>.json result documents and summary.md here (ini: conformance_out)",
    )
    group.addoption(
        "--conformance-device", default=None, metavar="DEVICE",
        help="auto | cpu | cuda | cuda:N for runtime and performance rules (default auto; ini: conformance_device)",
    )
    group.addoption(
        "--conformance-no-cache", action="store_true", default=False,
        help="never reuse measurements from earlier sessions (ini: conformance_no_cache)",
    )
    parser.addini("conformance_spec", "spec files or shipped standard names (one a line)", type="linelist", default=[])
    parser.addini("conformance_model", "model folders, .gguf files or repo ids checked against every spec (one a line)", type="linelist", default=[])
    parser.addini("conformance_out", "folder for result documents and summary.md", type="string", default="")
    parser.addini("conformance_device", "auto | cpu | cuda | cuda:N", type="string", default="auto")
    parser.addini("conformance_no_cache", "never reuse measurements from earlier sessions", type="bool", default=False)
    parser.addini(
        "conformance_spec_pattern", "glob(s) of spec files collected from the test tree",
        type="args", default=[DEFAULT_SPEC_PATTERN],
    )


@dataclass(frozen=True)
class Settings:
    """The plugin's resolved options for one session: spec files, models, output folder, device, cache use."""
    specs: tuple[Path, ...]  # resolved spec files (missing ones are reported when collected)
    # from the command line or ini: absolute paths of models (folders, .gguf files), and repo ids (ORG/NAME[@REV])
    # kept as written when no path of that spelling exists; they are resolved when collected
    models: tuple[str, ...]
    out: Path | None
    device: str
    no_cache: bool
    spec_patterns: tuple[str, ...]
    # spec path -> the name given for it, when it was named like a shipped standard but none has that name
    # (its collection error then suggests the closest, as the command line's --spec does)
    unknown_standards: Mapping[Path, str] = field(default_factory=dict)


def _ini_base(config: pytest.Config) -> Path:
    """Paths in the ini file are relative to the ini file's folder, as pytest does for its own path keys."""
    return config.inipath.parent if config.inipath else config.rootpath


def _values(config: pytest.Config, option: str, ini: str) -> tuple[list[str], Path]:
    """Command-line values win over the ini key; each keeps the folder its relative paths start from."""
    given = [value for value in config.getoption(option) if value]
    if given:
        return given, config.invocation_params.dir
    return [line.strip() for line in config.getini(ini) if line.strip()], _ini_base(config)


def resolve_spec(value: str, base: Path) -> Path:
    """A spec file relative to `base`, else a shipped standard named without path or suffix."""
    path = Path(value).expanduser()
    candidate = path if path.is_absolute() else base / path
    if candidate.exists() or not is_standard_name(value):
        return candidate.resolve()
    shipped = find_standard(value)
    return (shipped or candidate).resolve()


def model_reference(value: str, base: Path) -> str:
    """A model as the plugin keeps it: the absolute path when `value` exists relative to `base` or is no repo id, else the repo id."""
    path = base / Path(value).expanduser()
    if os.path.lexists(path) or split_reference(value) is None:
        # A folder by its real path; a file (a .gguf link into a hub cache's blobs/) by the name given, which
        # says its format where the blob's name does not.
        return str(path.resolve() if path.is_dir() else Path(os.path.abspath(path)))
    return value


def read_settings(config: pytest.Config) -> Settings:
    """Resolve the options: command line over ini, relative paths against their source's folder.

    Raises pytest.UsageError for a device that is not auto, cpu, cuda or cuda:N.
    """
    specs, spec_base = _values(config, "conformance_spec", "conformance_spec")
    models, model_base = _values(config, "conformance_model", "conformance_model")
    out_option = config.getoption("conformance_out")
    out_ini = config.getini("conformance_out").strip()
    if out_option:
        out: Path | None = (config.invocation_params.dir / Path(out_option).expanduser()).resolve()
    elif out_ini:
        out = (_ini_base(config) / Path(out_ini).expanduser()).resolve()
    else:
        out = None
    device = config.getoption("conformance_device") or config.getini("conformance_device").strip() or "auto"
    if not is_device_choice(device):
        raise pytest.UsageError(f"--conformance-device: {device!r} is not auto, cpu, cuda or cuda:N")
    resolved = {value: resolve_spec(value, spec_base) for value in specs}
    return Settings(
        specs=tuple(dict.fromkeys(resolved.values())),
        models=tuple(dict.fromkeys(model_reference(value, model_base) for value in models)),
        out=out,
        device=device,
        no_cache=bool(config.getoption("conformance_no_cache") or config.getini("conformance_no_cache")),
        spec_patterns=tuple(config.getini("conformance_spec_pattern") or [DEFAULT_SPEC_PATTERN]),
        unknown_standards={path: value for value, path in resolved.items() if is_standard_name(value) and not path.exists()},
    )
