"""Write conformance/probes/weights_only_allowlist.py from the installed torch's weights_only unpickler.

The scan must never import torch, yet its "safe" tier must be exactly what `torch.load(weights_only=True)`
accepts. This script reads torch's own lists and freezes them into a plain Python module:

- `torch._weights_only_unpickler._get_allowed_globals()`: containers, tensor and storage types, dtypes,
  quantization schemes, the tensor rebuild functions, `torch.serialization._get_layout`, ...
- `torch.serialization.get_safe_globals()` once the subsystems that register globals are imported
  (`SAFE_GLOBAL_MODULES`: nested jagged tensors, torch._dynamo's dimension ranges, DTensor and device
  meshes); torch.load accepts these whenever those modules are loaded, as they are when such tensors exist.
- torch's py2 -> py3 renames (`torch._utils.IMPORT_MAPPING`, `NAME_MAPPING`), which its unpickler applies to
  every GLOBAL before the lookup.

Usage: `python scripts/generate_weights_only_allowlist.py [--check]`; `--check` exits 1 if the committed
file differs from what the installed torch produces (the test suite runs the same comparison).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "conformance" / "probes" / "weights_only_allowlist.py"
SAFE_GLOBAL_MODULES = ("torch.nested._internal.nested_tensor", "torch._dynamo", "torch.distributed.tensor")


def _split(full_path: str, obj: object) -> tuple[str, str]:
    """The (module, name) split a pickler writes for `obj` whose joined "module.name" is `full_path`.

    torch matches the joined path; a pickle's GLOBAL carries the two halves, split where `obj.__module__` ends
    (so nested qualified names stay whole), else at the last dot.
    """
    module = getattr(obj, "__module__", None)
    if isinstance(module, str) and full_path.startswith(module + ".") and not isinstance(obj, str):
        return module, full_path[len(module) + 1 :]
    module, _, name = full_path.rpartition(".")
    return module, name


def collect() -> tuple[str, set[tuple[str, str]], dict[str, str], dict[tuple[str, str], tuple[str, str]]]:
    """Read torch's weights_only lists; imports torch and the subsystems that register safe globals.

    Returns:
        (torch version string, the (module, name) pairs torch accepts, torch's py2 module renames,
        torch's py2 (module, name) renames).
    """
    import torch
    from torch import _utils
    from torch import _weights_only_unpickler as wou

    for module in SAFE_GLOBAL_MODULES:
        try:
            importlib.import_module(module)
        except Exception:  # a torch build without it cannot make those tensors either
            pass
    pairs: set[tuple[str, str]] = set()
    for full_path, obj in wou._get_allowed_globals().items():
        # dtypes, layouts and qschemes are instances whose __module__ is not theirs: split at the last dot.
        pairs.add(_split(full_path, obj) if isinstance(obj, type) or callable(obj) else full_path.rpartition(".")[::2])
    for entry in torch.serialization.get_safe_globals():
        if isinstance(entry, tuple):
            obj, full_path = entry
            pairs.add(full_path.rpartition(".")[::2])
        else:
            pairs.add((entry.__module__, entry.__qualname__))
    imports = {str(k): str(v) for k, v in _utils.IMPORT_MAPPING.items()}
    names = {(str(a), str(b)): (str(c), str(d)) for (a, b), (c, d) in _utils.NAME_MAPPING.items()}
    return torch.__version__, pairs, imports, names


def render() -> str:
    """The text of `weights_only_allowlist.py` for the installed torch; identical on every run for one torch version."""
    version, pairs, imports, names = collect()
    lines = [
        f'"""Globals that torch {version}\'s weights_only unpickler accepts (generated; do not edit).',
        "",
        "Regenerate with `python scripts/generate_weights_only_allowlist.py` after a torch upgrade;",
        "a test fails when this file and the installed torch disagree.",
        '"""',
        "",
        f'TORCH_VERSION = "{version}"',
        "",
        "# (module, name) as a pickler writes them; torch itself matches the joined 'module.name'.",
        "WEIGHTS_ONLY_GLOBALS: frozenset[tuple[str, str]] = frozenset(",
        "    {",
    ]
    lines += [f"        ({m!r}, {n!r})," for m, n in sorted(pairs)]
    lines += ["    }", ")", "", "# Renames torch applies to a GLOBAL's module before the lookup (py2 pickles).", "IMPORT_MAPPING: dict[str, str] = {"]
    lines += [f"    {k!r}: {v!r}," for k, v in sorted(imports.items())]
    lines += ["}", "", "# Renames torch applies to a GLOBAL's (module, name) before the lookup.", "NAME_MAPPING: dict[tuple[str, str], tuple[str, str]] = {"]
    lines += [f"    {k!r}: {v!r}," for k, v in sorted(names.items())]
    lines += ["}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the allowlist module, or with `--check` compare it; returns the exit status (1: out of date)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
