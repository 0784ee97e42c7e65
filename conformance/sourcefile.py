"""Reading YAML/JSON documents with line numbers, so errors can point at the line a user must fix.

Every YAML document we read (spec files and model cards' front matter alike) may be written by an
attacker, so it goes through one bounded loader: alias uses, the node count after alias expansion and
the nesting depth are budgeted before any Python object is built (`load_yaml`).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

PathKey = tuple[str | int, ...]

# Budgets for untrusted YAML. Real specs and card front matter use a handful of anchors, a few thousand
# nodes and nest under 10 levels; these limits leave two orders of magnitude of room while refusing
# "billion laughs" documents (ten lists of nine aliases each: 600 bytes that expand to 9**10 nodes).
MAX_YAML_ALIASES = 1_000  # alias uses (*name) per document
MAX_YAML_NODES = 100_000  # nodes after expanding every alias (composed nodes too, counted while parsing): the
# largest real card front matter (a long model-index) has a few thousand; parsing 100,000 takes seconds
# even with the C parser, and their plain copy in a result document stays in the tens of MB
MAX_YAML_DEPTH = 64  # nesting levels after expansion; the same bound as model JSON (safe_files.MAX_JSON_DEPTH), and
# far below Python's recursion limit, so jsonschema, json.dumps and our own walks never hit RecursionError
MAX_YAML_NUMBER_CHARS = 100  # a numeric literal longer than this is hostile: int('1' * 5000) raises, and
# a long sexagesimal literal (1:2:3:...) builds a huge integer in quadratic time
MAX_JSON_SPEC_DEPTH = MAX_YAML_DEPTH  # a spec written as JSON nests no deeper than one written as YAML


class YamlBudgetError(ValueError):
    """A YAML document over one of the budgets above; the message names the budget and its size."""


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


class _BoundedComposer:
    """Mixin for a yaml Loader: counts alias uses and bounds nesting while the node graph is composed.

    PyYAML's composer recurses once per nesting level, so the depth is checked on the way down, before a
    900-level document can exhaust Python's stack.
    """

    _alias_uses = 0
    _compose_depth = 0
    _composed_nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):  # type: ignore[attr-defined]
            self._alias_uses += 1
            if self._alias_uses > MAX_YAML_ALIASES:
                raise YamlBudgetError(f"more than {MAX_YAML_ALIASES} alias uses (the YAML alias budget)")
            return super().compose_node(parent, index)  # type: ignore[misc]
        self._composed_nodes += 1  # stop parsing at the budget, not after composing a 4 MiB document
        if self._composed_nodes > MAX_YAML_NODES:
            raise YamlBudgetError(f"more than {MAX_YAML_NODES} nodes (the YAML node budget)")
        self._compose_depth += 1
        try:
            if self._compose_depth > MAX_YAML_DEPTH:
                raise YamlBudgetError(f"nested deeper than {MAX_YAML_DEPTH} levels (the YAML depth budget)")
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._compose_depth -= 1

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)  # type: ignore[misc]
        # YAML forbids duplicate keys but PyYAML keeps the last: `license: other` then `license: apache-2.0`
        # would pass a license rule, `level: must` then `level: may` would weaken a rule without a word.
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found duplicate key {key_node.value!r}",
                    key_node.start_mark,
                )
            seen[key_node.value] = key_node
        return node

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        _check_number_length(node)
        return super().construct_yaml_int(node)  # type: ignore[misc]

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        _check_number_length(node)
        return super().construct_yaml_float(node)  # type: ignore[misc]


def _check_number_length(node: yaml.ScalarNode) -> None:
    if len(node.value) > MAX_YAML_NUMBER_CHARS:
        raise YamlBudgetError(f"a number literal longer than {MAX_YAML_NUMBER_CHARS} characters (the YAML number budget)")


def _init_with_c_parser(self: Any, stream: str) -> None:
    from yaml._yaml import CParser

    CParser.__init__(self, stream)
    yaml.constructor.SafeConstructor.__init__(self)
    yaml.resolver.Resolver.__init__(self)
    yaml.composer.Composer.__init__(self)


@cache
def _bounded(loader: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """`loader` (a SafeLoader or subclass) with the budgets of _BoundedComposer.

    Where PyYAML has libyaml, events come from its C parser (4 to 7 times faster than the pure-Python
    one, and it parses only as far as the composer asks); the composer stays PyYAML's Python one so the
    budgets are checked node by node, and tags and implicit types are `loader`'s own.
    """
    if yaml.__with_libyaml__:
        from yaml._yaml import CParser

        bases: tuple[type, ...] = (
            _BoundedComposer, yaml.composer.Composer, CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver,
        )
        namespace = {
            "__init__": _init_with_c_parser,
            "yaml_constructors": dict(loader.yaml_constructors),
            "yaml_multi_constructors": dict(loader.yaml_multi_constructors),
            "yaml_implicit_resolvers": dict(loader.yaml_implicit_resolvers),
        }
    else:
        bases, namespace = (_BoundedComposer, loader), {}
    bounded: Any = type(f"Bounded{loader.__name__}", bases, namespace)  # built at run time: mypy cannot see its bases
    bounded.add_constructor("tag:yaml.org,2002:int", _BoundedComposer.construct_yaml_int)
    bounded.add_constructor("tag:yaml.org,2002:float", _BoundedComposer.construct_yaml_float)
    return bounded


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def measure_nodes(root: yaml.Node) -> tuple[int, int]:
    """(nodes, depth) of a composed YAML graph as if every alias were expanded, in time linear in its size.

    Each distinct node is sized once (memoized on identity), iteratively (no recursion), so a graph whose
    expansion is astronomically large is measured from its few hundred composed nodes. Raises
    YamlBudgetError as soon as the expanded count passes MAX_YAML_NODES or the depth MAX_YAML_DEPTH, and
    for a recursive alias (a node that contains itself, which would expand forever).
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            height[key] = 1 + max((height[id(child)] for child in children), default=0)
            visiting.discard(key)
            if size[key] > MAX_YAML_NODES:
                raise YamlBudgetError(f"more than {MAX_YAML_NODES} nodes once aliases are expanded (the YAML node budget)")
            if height[key] > MAX_YAML_DEPTH:
                raise YamlBudgetError(f"nested deeper than {MAX_YAML_DEPTH} levels once aliases are expanded (the YAML depth budget)")
            continue
        if key in size:
            continue
        if key in visiting:  # only this node's own descendants are above its entry on the stack
            raise YamlBudgetError("a recursive alias (a node that contains itself)")
        visiting.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    return size[id(root)], height[id(root)]


def _bounded_load(text: str, loader: type[yaml.SafeLoader], with_lines: bool) -> tuple[Any, LineIndex]:
    instance = _bounded(loader)(text)  # type: ignore[arg-type]  # a class is hashable; mypy checks its unbound __hash__
    try:
        node = instance.get_single_node()
        if node is None:
            return None, LineIndex()
        measure_nodes(node)
        lines = LineIndex.from_node(node) if with_lines else LineIndex()  # before construction rewrites merge keys
        return instance.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in str(exc.problem):  # libyaml's own depth limit, met while it scans ahead of us
            raise YamlBudgetError(f"nested deeper than {MAX_YAML_DEPTH} levels (the YAML depth budget; the parser: {exc.problem})") from None
        raise
    finally:
        instance.dispose()


def compose_yaml(text: str, loader: type[yaml.SafeLoader] = SpecLoader) -> tuple[Any, LineIndex]:
    """Parse untrusted YAML within the budgets: (data, the line of each path); None data when empty.

    `loader` is the safe loader whose tags and resolvers apply (SpecLoader for specs, yaml.SafeLoader for
    card front matter, as huggingface_hub reads it). Raises YamlBudgetError (a ValueError) naming the
    budget exceeded, or yaml.YAMLError for bad syntax. Aliased values are shared objects in the result,
    but their expansion is within MAX_YAML_NODES, so copying it (a result document) is bounded too.
    """
    return _bounded_load(text, loader, with_lines=True)


def load_yaml(text: str, loader: type[yaml.SafeLoader] = SpecLoader) -> Any:
    """The parsed value of untrusted YAML within the budgets, without a line index (errors as `compose_yaml`)."""
    return _bounded_load(text, loader, with_lines=False)[0]


def format_path(path: list[Any] | tuple[Any, ...]) -> str:
    """A JSON path as users read it: `["rules", 3, "max"]` -> `rules[3].max`; "(document)" for the empty path."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


class LineIndex:
    """Maps a JSON path to the 1-based line of its YAML node."""

    def __init__(self, lines: dict[PathKey, int] | None = None) -> None:
        """Wrap `lines`, a map from path tuples (keys and list indices) to 1-based line numbers."""
        self._lines = lines or {}

    def line(self, path: list[Any] | tuple[Any, ...]) -> int | None:
        """The 1-based line of `path`, else of its nearest indexed ancestor; None when nothing is indexed."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return self._lines.get((), None)

    @classmethod
    def from_text(cls, text: str) -> LineIndex:
        """The index of a YAML text; empty if it does not parse or is over a budget."""
        try:
            return compose_yaml(text)[1]
        except (yaml.YAMLError, ValueError):
            return cls()

    @classmethod
    def from_node(cls, node: yaml.Node | None) -> LineIndex:
        """The index of a composed node graph that passed `measure_nodes`.

        Built before construction, which rewrites merge keys; the walk visits at most MAX_YAML_NODES nodes,
        MAX_YAML_DEPTH deep.
        """
        lines: dict[PathKey, int] = {}

        def walk(current: yaml.Node | None, path: PathKey) -> None:
            if current is None:
                return
            lines[path] = current.start_mark.line + 1
            if isinstance(current, yaml.MappingNode):
                for key_node, value_node in current.value:
                    child: PathKey = (*path, key_node.value)
                    lines[child] = key_node.start_mark.line + 1
                    walk(value_node, child)
                    lines[child] = key_node.start_mark.line + 1
            elif isinstance(current, yaml.SequenceNode):
                for index, item in enumerate(current.value):
                    walk(item, (*path, index))

        walk(node, ())
        return cls(lines)


def _json_depth(value: Any) -> int:
    from .safe_files import json_depth

    return json_depth(value)


def read_structured(path: Path) -> tuple[Any, LineIndex]:
    """Parse a YAML or JSON file; syntax errors and exceeded budgets become one-line SpecErrors.

    Budgets: MAX_DOCUMENT_BYTES of text; for YAML the alias, node, depth and number budgets of
    `compose_yaml`; for JSON a depth of MAX_JSON_SPEC_DEPTH. Raises SpecError (exit status 2).
    """
    file = str(path)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise SpecError(file, f"file is larger than {MAX_DOCUMENT_BYTES} bytes (the document size budget)")
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
        except RecursionError:
            data = None
            depth = MAX_JSON_SPEC_DEPTH + 1
        else:
            depth = _json_depth(data)
        if depth > MAX_JSON_SPEC_DEPTH:
            raise SpecError(file, f"nested deeper than {MAX_JSON_SPEC_DEPTH} levels (the JSON depth budget)")
        return data, LineIndex.from_text(text)  # JSON is YAML: the same index gives JSON lines
    try:
        data, lines = compose_yaml(text)
    except YamlBudgetError as exc:
        raise SpecError(file, f"YAML over budget: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(
            file,
            f"YAML syntax error: {problem}" + (f" (column {mark.column + 1})" if mark else ""),
            line=mark.line + 1 if mark else None,
        ) from None
    return data, lines
