"""Reading YAML/JSON documents with line numbers, so errors can point at the line a user must fix."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

PathKey = tuple[str | int, ...]


class SpecLoader(yaml.SafeLoader):
    """Safe YAML that also reads `1e9` and `3.0e9` as numbers (YAML 1.2), as spec authors expect."""


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def format_path(path: list[Any] | tuple[Any, ...]) -> str:
    """JSON path as users read it: rules[3].max"""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


class LineIndex:
    """Maps a JSON path to the 1-based line of its YAML node."""

    def __init__(self, lines: dict[PathKey, int] | None = None) -> None:
        self._lines = lines or {}

    def line(self, path: list[Any] | tuple[Any, ...]) -> int | None:
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get((), None)

    @classmethod
    def from_text(cls, text: str) -> LineIndex:
        try:
            node = yaml.compose(text, Loader=SpecLoader)
        except yaml.YAMLError:
            return cls()
        lines: dict[PathKey, int] = {}

        def walk(current: yaml.Node | None, path: PathKey) -> None:
            if current is None:
                return
            lines[path] = current.start_mark.line + 1
            if isinstance(current, yaml.MappingNode):
                for key_node, value_node in current.value:
                    key = key_node.value
                    lines[(*path, key)] = key_node.start_mark.line + 1
                    walk(value_node, (*path, key))
                    lines[(*path, key)] = key_node.start_mark.line + 1
            elif isinstance(current, yaml.SequenceNode):
                for index, item in enumerate(current.value):
                    walk(item, (*path, index))

        walk(node, ())
        return cls(lines)


def read_structured(path: Path) -> tuple[Any, LineIndex]:
    """Parse a YAML or JSON file; syntax errors become one-line SpecErrors with the line."""
    file = str(path)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise SpecError(file, f"file is larger than {MAX_DOCUMENT_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(file, "file not found") from None
    except UnicodeDecodeError as exc:
        raise SpecError(file, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise SpecError(file, f"cannot read: {exc.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(file, f"JSON syntax error: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    else:
        try:
            data = yaml.load(text, Loader=SpecLoader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise SpecError(
                file,
                f"YAML syntax error: {problem}" + (f" (column {mark.column + 1})" if mark else ""),
                line=mark.line + 1 if mark else None,
            ) from None
    return data, LineIndex.from_text(text)
