"""Chat templates judged by their structure: parsed with jinja2's own parser (never rendered) and walked.

A Jinja template rendered outside a sandbox reaches Python internals through attribute and item lookups
(CVE-2024-34359: `cycler.__init__.__globals__.os`). Text patterns miss lookups whose names are built at
render time (`lipsum['_' ~ '_globals_' ~ '_']`, `'%c%c' % (95, 95)`, `[lipsum]|map(attribute=u~'globals'~u)`),
so the template is parsed and every lookup judged:

- a constant attribute or key starting with `_` (or naming a frame, code or config loader attribute) is dangerous;
- a key that the template builds from strings (concatenation, `%`, `*`, `format`, `join`, `replace`, slices...)
  is dangerous wherever it is used; constant strings are folded first, so `u ~ 'globals' ~ u` with
  `u = '_' * 2` is reported as the key `__globals__`;
- a key taken from a special token (`bos_token`, `additional_special_tokens`...) is dangerous: renderers pass
  these strings from the model's own files (tokenizer_config.json, the GGUF vocabulary);
- a key that is not a constant or an integer on a Jinja global or helper (`lipsum`, `cycler`, `namespace`...)
  or on anything derived from one is dangerous;
- the `attr` filter, and the filters that take an attribute name (`map`, `selectattr`, `sort`, `groupby`,
  `sum`, `unique`, `min`, `max`, `join`...), are dangerous when the name is computed or starts with `_`;
- `include`, `import`, `extends` (they read other templates) and `str.format` fields with lookups are dangerous.

Names assigned in the template (`set`, `for`, macro parameters, namespace attributes) are tracked
flow-insensitively: every value a name may take counts. A set block (`{% set k | f | g %}body{% endset %}`)
takes its filter chain applied to its body and a filter block outputs the same; a filter that is not folded
exactly (every one but `default`, `first`/`last` of a container and the integer filters) makes a computed
string, never a constant. A macro, `caller()` or `self.block()` returns a computed string (its body's text). Source length, node count and depth are bounded.
"""

from __future__ import annotations

import string
import time
from dataclasses import dataclass, field
from typing import Any

MAX_TEMPLATE_CHARS = 256 << 10  # the largest real chat templates are tens of KB; jinja2 parses ~150 KB/s here
MAX_TEMPLATE_NODES = 200_000
MAX_TEMPLATE_DEPTH = 150  # real templates nest < 40; the walk below recurses once per level
MAX_FOLDED_CHARS = 4096  # a constant string longer than this is not folded (it counts as built)
MAX_CONSTS = 64  # distinct constant values tracked per name
MAX_PASSES = 20  # fixed-point passes over the assignments
MAX_REASONS = 10

# Globals of jinja2's default environment, of chat renderers (transformers, llama-cpp-python, vLLM) and of
# web frameworks that render templates (Flask): objects whose attributes lead to Python internals.
HELPERS = frozenset({
    "lipsum", "cycler", "joiner", "namespace", "range", "dict", "self", "config", "request", "session", "g",
    "url_for", "get_flashed_messages", "raise_exception", "strftime_now", "caller", "varargs", "kwargs", "super",
})  # fmt: skip
# Attribute names without a leading underscore that still reach frames, code objects or loaders.
SENSITIVE = frozenset({
    "mro", "gi_frame", "gi_code", "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame", "tb_next",
    "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "func_globals", "func_code", "func_closure", "im_func",
    "im_self", "cell_contents", "from_pyfile", "from_object", "from_envvar",
})  # fmt: skip
# Filters that look an attribute up by a name given as an argument: positional index of that argument.
_ATTRIBUTE_FILTERS = {
    "attr": 0, "selectattr": 0, "rejectattr": 0, "groupby": 0, "sum": 0, "map": None, "sort": 2, "unique": 1,
    "min": 1, "max": 1, "join": 1,
}  # fmt: skip
_INT_FILTERS = frozenset({"length", "count", "int", "float", "abs", "round", "wordcount"})
_LOOP_INTS = frozenset({"index", "index0", "revindex", "revindex0", "length", "depth", "depth0", "first", "last"})

# Kinds of value: a number or boolean; data the renderer passes (messages, tools); a string the template
# built from its own constants; a Jinja helper or anything derived from one; a list, tuple or dict literal
# (its consts are its possible elements); a method of a string.
INT, DATA, BUILT, HELPER, CONTAINER, METHOD = "int", "data", "built", "helper", "container", "method"
# Strings the renderer takes from the model's own files (special tokens from tokenizer_config.json or a GGUF
# vocabulary): the template's author chose them, so a key made from one is as good as a constant they wrote.
MODEL = "model"
_PASS_THROUGH_FILTERS = frozenset({"default", "d", "first", "last", "random", "list", "batch", "slice", "dictsort", "items"})


class TemplateError(ValueError):
    """A template that does not parse, or exceeds a bound (length, nodes, depth)."""


@dataclass(frozen=True)
class _Value:
    """What an expression may evaluate to: kinds (int, data, built string, helper object) and folded constants."""

    kinds: frozenset[str] = frozenset()
    consts: frozenset[Any] = frozenset()

    def join(self, other: _Value) -> _Value:
        consts = self.consts | other.consts
        if len(consts) > MAX_CONSTS:
            return _Value(self.kinds | other.kinds | {BUILT})
        return _Value(self.kinds | other.kinds, consts)


_EMPTY = _Value()


def _v(*kinds: str) -> _Value:
    return _Value(frozenset(kinds))


def _const(value: Any) -> _Value:
    if isinstance(value, str) and len(value) > MAX_FOLDED_CHARS:
        return _v(BUILT)
    if isinstance(value, bool | int | float) or value is None:
        return _v(INT)
    return _Value(frozenset(), frozenset({value}))


def _environment() -> Any:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension

    class GenerationTag(Extension):
        """transformers' `{% generation %}...{% endgeneration %}` (its AssistantTracker): a block, parsed only."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body).set_lineno(lineno)

    # The extensions chat renderers enable ({% break %}, {% continue %}, {% do %}); parse only, never render.
    return jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", GenerationTag])


def template_escapes(source: str) -> list[str]:
    """The constructs of a Jinja template that reach Python internals, each with its line (empty: none found).

    Raises TemplateError if the template does not parse with jinja2's parser or exceeds MAX_TEMPLATE_CHARS,
    MAX_TEMPLATE_NODES or MAX_TEMPLATE_DEPTH. The template is parsed, never compiled or rendered.
    """
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"template of {len(source)} characters is over the {MAX_TEMPLATE_CHARS}-character bound")
    import jinja2

    try:
        tree = _environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template does not parse (line {exc.lineno}): {str(exc)[:200]}") from None
    except RecursionError:
        raise TemplateError("template nests too deeply to parse") from None
    _check_size(tree)
    return _Judge(tree).run()


def _check_size(tree: Any) -> None:
    count = 0
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_TEMPLATE_NODES:
            raise TemplateError(f"template has more than {MAX_TEMPLATE_NODES} syntax nodes")
        if depth > MAX_TEMPLATE_DEPTH:
            raise TemplateError(f"template nests more than {MAX_TEMPLATE_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


@dataclass
class _Judge:
    tree: Any
    names: dict[str, _Value] = field(default_factory=dict)  # every value a template-assigned name may take
    reasons: dict[str, None] = field(default_factory=dict)
    _calls: dict[str, list[Any]] = field(default_factory=dict)  # calls by the name called, for macro parameters
    _macros: set[str] = field(default_factory=set)  # names of the template's macros

    def run(self) -> list[str]:
        from jinja2 import nodes

        for call in self.tree.find_all(nodes.Call):
            if isinstance(call.node, nodes.Name):
                self._calls.setdefault(call.node.name, []).append(call)
        self._macros = {macro.name for macro in self.tree.find_all(nodes.Macro)}
        for _ in range(MAX_PASSES):
            before = dict(self.names)
            self._assignments(nodes)
            if self.names == before:
                break
        else:
            for name in self.names:
                self.names[name] = _v(BUILT, HELPER, DATA)
        self._rules(nodes)
        return list(self.reasons)[:MAX_REASONS]

    # -- values --------------------------------------------------------------------------------

    def _bind(self, name: str, value: _Value) -> None:
        self.names[name] = self.names.get(name, _EMPTY).join(value)

    def _bind_target(self, nodes: Any, target: Any, value: _Value) -> None:
        if isinstance(target, nodes.Name):
            self._bind(target.name, value)
        elif isinstance(target, nodes.NSRef):
            self._bind(f"{target.name}.{target.attr}", value)
        elif isinstance(target, nodes.Tuple):
            for item in target.items:
                self._bind_target(nodes, item, _element(value))

    def _assignments(self, nodes: Any) -> None:
        for node in self.tree.find_all((nodes.Assign, nodes.AssignBlock, nodes.For, nodes.With, nodes.Macro, nodes.CallBlock)):
            if isinstance(node, nodes.Assign):
                self._bind_target(nodes, node.target, self.value(node.node))
                call = node.node
                if isinstance(node.target, nodes.Name) and isinstance(call, nodes.Call) and _names(nodes, call.node, "namespace"):
                    for keyword in call.kwargs:  # namespace(found=false): the attribute's first value
                        self._bind(f"{node.target.name}.{keyword.key}", self.value(keyword.value))
            elif isinstance(node, nodes.AssignBlock):  # `{% set k | f | g %}body{% endset %}`: g(f(body))
                self._bind_target(nodes, node.target, self._chain(nodes, node.filter, self._output(nodes, node.body)))
            elif isinstance(node, nodes.For):
                self._bind_target(nodes, node.target, self._iterate(nodes, node.iter))
            elif isinstance(node, nodes.With):
                for target, value in zip(node.targets, node.values, strict=False):
                    self._bind_target(nodes, target, self.value(value))
            else:  # macro and call-block parameters: data, their defaults, and what each call passes them
                params = [arg.name for arg in node.args]
                for name, default in zip(params[len(params) - len(node.defaults) :], node.defaults, strict=False):
                    self._bind(name, self.value(default))
                for name in params:
                    self._bind(name, _v(DATA))
                for call in self._calls.get(node.name, []) if isinstance(node, nodes.Macro) else []:
                    for index, arg in enumerate(call.args):
                        self._bind(params[index] if index < len(params) else "varargs", self.value(arg))
                    for keyword in call.kwargs:
                        self._bind(keyword.key if keyword.key in params else "kwargs", self.value(keyword.value))
                    for unpacked in (call.dyn_args, call.dyn_kwargs):
                        if unpacked is not None:
                            for name in params:
                                self._bind(name, self.value(unpacked))

    def _output(self, nodes: Any, body: list[Any]) -> _Value:
        parts: list[_Value] = []
        for statement in body:
            if isinstance(statement, nodes.FilterBlock):  # `{% filter f %}body{% endfilter %}` outputs f(body)
                parts.append(self._chain(nodes, statement.filter, self._output(nodes, statement.body)))
                continue
            if not isinstance(statement, nodes.Output):
                return _v(BUILT)
            for item in statement.nodes:
                parts.append(_const(item.data) if isinstance(item, nodes.TemplateData) else self.value(item))
        return _concat(parts)

    def _iterate(self, nodes: Any, iterable: Any) -> _Value:
        if isinstance(iterable, nodes.List | nodes.Tuple):
            result = _EMPTY
            for item in iterable.items:
                result = result.join(self.value(item))
            return result if result.kinds or result.consts else _v(DATA)
        return _element(self.value(iterable))

    def value(self, node: Any) -> _Value:  # noqa: C901 - one case per expression node type
        from jinja2 import nodes

        if isinstance(node, nodes.Const):
            return _const(node.value)
        if isinstance(node, nodes.TemplateData):
            return _const(node.data)
        if isinstance(node, nodes.Name):
            if node.name in self.names:
                return self.names[node.name]
            if node.name in HELPERS or node.name == "loop":
                return _v(HELPER)
            if node.name.endswith(("_token", "_tokens")):  # bos_token, additional_special_tokens...
                return _v(MODEL)
            return _v(DATA)
        if isinstance(node, nodes.NSRef):
            return self.names.get(f"{node.name}.{node.attr}", _v(DATA))
        if isinstance(node, nodes.Getattr):
            if isinstance(node.node, nodes.Name):
                if node.node.name == "loop" and "loop" not in self.names:
                    return _v(INT) if node.attr in _LOOP_INTS else _v(HELPER)
                tracked = self.names.get(f"{node.node.name}.{node.attr}")
                if tracked is not None:
                    return tracked
            return _member(self.value(node.node), method=True)
        if isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Slice):  # a slice of a string is a new string
                base = self.value(node.node)
                return _v(BUILT, *(base.kinds & {HELPER, DATA, CONTAINER})) if base.consts or BUILT in base.kinds else base
            return _member(self.value(node.node), method=False)
        if isinstance(node, nodes.Slice):
            return _v(INT)
        if isinstance(node, nodes.Concat):
            return _concat([self.value(item) for item in node.nodes])
        if isinstance(node, nodes.Add | nodes.Sub | nodes.Mul | nodes.Div | nodes.FloorDiv | nodes.Mod | nodes.Pow):
            return _arithmetic(node, self.value(node.left), self.value(node.right))
        if isinstance(node, nodes.Neg | nodes.Pos):
            inner = self.value(node.node)
            return _v(INT) if not inner.consts and BUILT not in inner.kinds else _v(BUILT)
        if isinstance(node, nodes.Not | nodes.And | nodes.Or | nodes.Compare | nodes.Test):
            if isinstance(node, nodes.And | nodes.Or):  # `a or b` is one of its operands
                return self.value(node.left).join(self.value(node.right))
            return _v(INT)
        if isinstance(node, nodes.CondExpr):
            result = self.value(node.expr1)
            return result.join(self.value(node.expr2)) if node.expr2 is not None else result.join(_v(DATA))
        if isinstance(node, nodes.List | nodes.Tuple):
            result = _v(CONTAINER)
            for item in node.items:
                result = result.join(self.value(item))
            return result
        if isinstance(node, nodes.Dict):
            result = _v(CONTAINER)
            for pair in node.items:
                result = result.join(self.value(pair.key)).join(self.value(pair.value))
            return result
        if isinstance(node, nodes.Filter | nodes.Test):
            return self._filtered(nodes, node)
        if isinstance(node, nodes.Call):
            return self._called(nodes, node)
        return _v(DATA)

    def _chain(self, nodes: Any, chain: Any, subject: _Value) -> _Value:
        """The value of a block's filter chain (`set k | f | g`, `filter f | g`) applied to its body's value.

        jinja2 parses the chain as Filter nodes whose innermost `node` is None (the body goes there when
        rendered); each filter is judged as if its input were `subject`, so an unmodelled filter makes the
        body's constants a computed string, never a constant.
        """
        if chain is None:
            return subject
        filters: list[Any] = []
        while isinstance(chain, nodes.Filter):
            filters.append(chain)
            chain = chain.node
        if chain is not None:  # not a plain chain: judge the unknown input as computed
            subject = _v(BUILT)
        for node in reversed(filters):  # innermost first
            subject = self._filtered(nodes, node, subject)
        return subject

    def _filtered(self, nodes: Any, node: Any, subject: _Value | None = None) -> _Value:
        """`x|f(args)`; `subject` is the value of the filtered input when it is not `node.node` (a block's body)."""
        if node.name in _INT_FILTERS:
            return _v(INT)
        if subject is None and node.node is not None:
            subject = self.value(node.node)
        parts = [subject] if subject is not None else []
        parts += [self.value(arg) for arg in [*node.args, *(k.value for k in node.kwargs)]]
        result = _EMPTY
        for part in parts:
            # default/first/list... return (elements of) their input or arguments; other filters make new strings
            keeps = node.name in _PASS_THROUGH_FILTERS and (node.name in ("default", "d") or CONTAINER in part.kinds or not part.consts)
            result = result.join(part if keeps else _contained(part))
        return result if result.kinds or result.consts else _v(DATA)

    def _called(self, nodes: Any, node: Any) -> _Value:
        callee = node.node
        args = [self.value(arg) for arg in [*node.args, *(k.value for k in node.kwargs)]]
        if isinstance(callee, nodes.Name) and callee.name == "range" and "range" not in self.names:
            return _v(INT)
        if isinstance(callee, nodes.Name) and callee.name == "dict" and "dict" not in self.names and node.kwargs:
            return _v(HELPER, BUILT)  # dict(__globals__=1): keys spelled by the template
        base = self.value(callee)
        # A call returns data, a helper's product, a container's element, or one of its arguments (dict.get's
        # default, cycler's items, joiner's separator); a string method returns a new string.
        result = _Value(base.kinds & {HELPER, DATA, CONTAINER, MODEL}, base.consts if CONTAINER in base.kinds else frozenset())
        # A macro, `caller()` or `self.block()` returns the text its body outputs: a string the template builds
        # (its filter blocks and set blocks included), never a constant key.
        renders = isinstance(callee, nodes.Name) and (callee.name in self._macros or callee.name == "caller")
        renders = renders or isinstance(callee, nodes.Getattr) and _names(nodes, callee.node, "self")
        if METHOD in base.kinds or BUILT in base.kinds or renders:
            result = result.join(_v(BUILT))
        returns_argument = HELPER in base.kinds or CONTAINER in base.kinds or (
            isinstance(callee, nodes.Getattr) and callee.attr in ("get", "pop", "setdefault")
        )
        for arg in args if returns_argument else []:
            result = result.join(arg)
        return result if result.kinds or result.consts else _v(DATA)

    # -- rules ---------------------------------------------------------------------------------

    def _flag(self, node: Any, what: str) -> None:
        self.reasons.setdefault(f"{what} (line {getattr(node, 'lineno', '?')})", None)

    def _rules(self, nodes: Any) -> None:
        for node in self.tree.find_all(nodes.Node):
            if isinstance(node, nodes.Getattr):
                if _bad_name(node.attr):
                    self._flag(node, f"attribute .{node.attr}")
            elif isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Slice):
                self._check_key(nodes, node)
            elif isinstance(node, nodes.Filter):
                self._check_filter(nodes, node)
            elif isinstance(node, nodes.Call):
                self._check_format(nodes, node)
            elif isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
                self._flag(node, f"{type(node).__name__.lower()} of another template")

    def _check_key(self, nodes: Any, node: Any) -> None:
        key = self.value(node.arg)
        for bad in sorted(c for c in key.consts if isinstance(c, str) and _bad_name(c)):
            self._flag(node, f"key {bad!r}")
        if BUILT in key.kinds:
            self._flag(node, "a lookup key built from strings")
        elif MODEL in key.kinds:
            self._flag(node, "a lookup key taken from a special token (a string the model's files set)")
        elif key.kinds - {INT} and HELPER in self.value(node.node).kinds:
            self._flag(node, f"a computed key on {_describe(nodes, node.node)}")

    def _check_filter(self, nodes: Any, node: Any) -> None:
        if node.name not in _ATTRIBUTE_FILTERS:
            return
        names: list[Any] = [k.value for k in node.kwargs if k.key == "attribute"]
        index = _ATTRIBUTE_FILTERS[node.name]
        if node.name == "map" and node.args:
            first = self.value(node.args[0])
            if first.kinds or first.consts != {"attr"}:
                if first.kinds:
                    self._flag(node, "map with a computed filter name")
            else:
                names += node.args[1:2]
        elif index is not None and len(node.args) > index:
            names.append(node.args[index])
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            self._flag(node, f"|{node.name} with unpacked arguments")
        for name in names:
            value = self.value(name)
            if value.kinds - {INT} or not value.consts and not value.kinds:
                self._flag(node, f"|{node.name} with a computed attribute name")
            for const in value.consts:
                if isinstance(const, str) and any(_bad_name(part) for part in const.split(".")):
                    self._flag(node, f"|{node.name} of attribute {const!r}")

    def _check_format(self, nodes: Any, node: Any) -> None:
        callee = node.node
        if not (isinstance(callee, nodes.Getattr) and callee.attr in ("format", "format_map")):
            return
        receiver = self.value(callee.node)
        if receiver.kinds & {BUILT, MODEL}:
            self._flag(node, "a format string built from strings or taken from a special token")
        for const in receiver.consts:
            if isinstance(const, str) and _format_looks_up(const):
                self._flag(node, "a format string field with an attribute or item lookup")


def _names(nodes: Any, node: Any, name: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == name


def _bad_name(name: str) -> bool:
    return name.startswith("_") or name in SENSITIVE


def _format_looks_up(text: str) -> bool:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f]
    except ValueError:
        return True  # str.format would fail too; a malformed field is not a real template's
    return any("." in f or "[" in f for f in fields)


def _describe(nodes: Any, node: Any) -> str:
    while isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Filter | nodes.Call) and getattr(node, "node", None) is not None:
        node = node.node
    return node.name if isinstance(node, nodes.Name) else "a helper object"


def _member(base: _Value, method: bool) -> _Value:
    """The abstract value of `base.name` (method=True) or `base[key]`.

    A helper's stays a helper, data stays data, a container yields its elements, and a string yields a
    method (attribute) or a new string (item).
    """
    kinds = set(base.kinds & {HELPER, DATA, MODEL})
    consts: frozenset[Any] = frozenset()
    if CONTAINER in base.kinds:
        kinds.add(CONTAINER)
        consts = base.consts
    elif base.consts or BUILT in base.kinds:
        kinds.add(METHOD if method else BUILT)
    if not kinds:
        kinds.add(DATA)
    return _Value(frozenset(kinds), consts)


def _contained(value: _Value) -> _Value:
    """A container (list, dict, filter output) of values: strings become built, helpers stay helpers."""
    kinds = set(value.kinds)
    if value.consts:
        kinds.add(BUILT)
    return _v(*kinds)


def _element(value: _Value) -> _Value:
    """An element of an iterated value: a container's are its elements, a string's characters are built."""
    if CONTAINER in value.kinds:
        return value
    kinds = set(value.kinds & {HELPER, DATA, BUILT, MODEL})
    if value.consts:
        kinds.add(BUILT)
    return _v(*kinds) if kinds else _v(DATA)


def _concat(parts: list[_Value]) -> _Value:
    """`a ~ b ~ c`, folded when every part is a single constant."""
    if parts and all(not p.kinds and len(p.consts) == 1 for p in parts):
        text = "".join(str(next(iter(p.consts))) for p in parts)
        return _const(text)
    if all(p.kinds <= {DATA} and not p.consts for p in parts):
        return _v(DATA)
    return _v(BUILT)


def _arithmetic(node: Any, left: _Value, right: _Value) -> _Value:
    from jinja2 import nodes

    if isinstance(node, nodes.Add) and CONTAINER in left.kinds | right.kinds:
        return left.join(right)  # list concatenation
    stringy = left.consts or right.consts or (left.kinds | right.kinds) & {BUILT, MODEL}
    if not stringy:
        return _v(INT) if not (left.kinds | right.kinds) & {DATA} else _v(DATA, INT)
    if not left.kinds and not right.kinds and len(left.consts) == 1 and len(right.consts) == 1 and isinstance(node, nodes.Add):
        a, b = next(iter(left.consts)), next(iter(right.consts))
        if isinstance(a, str) and isinstance(b, str):
            return _const(a + b)
    # `'_' * 2`: the count is an integer constant in the source
    if isinstance(node, nodes.Mul):
        text = next(iter(left.consts), None) if len(left.consts) == 1 and not left.kinds else None
        count = node.right.value if isinstance(node.right, nodes.Const) and isinstance(node.right.value, int) else None
        if isinstance(text, str) and count is not None and 0 <= count and len(text) * count <= MAX_FOLDED_CHARS:
            return _const(text * count)
    return _v(BUILT)


# ---------------------------------------------------------------------------------------------
# Where chat templates live, and their findings
# ---------------------------------------------------------------------------------------------

# JSON files whose `chat_template` transformers reads (tokenizer, processor, image/video processor).
TEMPLATE_JSON_NAMES = frozenset({
    "tokenizer_config.json", "chat_template.json", "processor_config.json", "preprocessor_config.json",
    "video_preprocessor_config.json",
})  # fmt: skip
MAX_TEMPLATE_FILE_BYTES = 64 << 20  # a tokenizer_config.json with an inlined vocabulary is a few MB
MAX_NAMED_TEMPLATES = 1000


def is_template_file(relative: str) -> bool:
    """Whether a file (path relative to the model folder, posix) is one a loader reads chat templates from."""
    base = relative.rsplit("/", 1)[-1]
    return base in TEMPLATE_JSON_NAMES or base.endswith(".jinja")


def templates_in_json(value: Any) -> dict[str, Any]:
    """The chat templates of a parsed JSON file: `chat_template`, or `chat_template[<name or index>]` for named ones.

    `chat_template` is a string, a list of {name, template} (transformers' saved form of named templates)
    or a {name: template} mapping; non-strings are kept so the caller can report them.
    """
    if not isinstance(value, dict) or "chat_template" not in value:
        return {}
    found = value["chat_template"]
    if isinstance(found, list):
        named: dict[str, Any] = {}
        for index, item in enumerate(found[:MAX_NAMED_TEMPLATES]):
            name = item.get("name") if isinstance(item, dict) else None
            template = item.get("template") if isinstance(item, dict) else item
            named[f"chat_template[{name if isinstance(name, str) else index}]"] = template
        return named
    if isinstance(found, dict):
        return {f"chat_template[{k}]": v for k, v in list(found.items())[:MAX_NAMED_TEMPLATES]}
    return {"chat_template": found}


def report_template(acc: Any, member: str | None, key: str, template: Any) -> None:
    """Add the findings of one template to `acc` (scan._FileScan): dangerous for each escape, error if unjudgeable."""
    if template is None:
        return
    if not isinstance(template, str):
        acc.add(member, key, "error", f"chat template is a {type(template).__name__}, not a string")
        return
    if time.monotonic() > acc.deadline:  # a GGUF may hold thousands of templates
        acc.add(member, key, "error", "chat template not checked: the file's scan time budget is spent")
        return
    try:
        escapes = template_escapes(template)
    except TemplateError as exc:
        acc.add(member, key, "error", f"chat template not checked: {exc}")
        return
    if escapes:
        acc.add(
            member, key, "dangerous",
            f"chat template reaches Python internals ({'; '.join(escapes)}): server-side template injection",
            kind="template-injection",
        )  # fmt: skip


def scan_template_file(acc: Any, source: Any, relative: str) -> list[str]:
    """Judge the chat templates of a top-level file named like a template source; returns ["chat-template"] if any.

    `source` is a scan_archives.Source; reads at most MAX_TEMPLATE_FILE_BYTES. `.jinja` files are templates
    themselves; the JSON files are parsed with safe_files.loads_json (depth-bounded).
    """
    from .. import safe_files

    with source.open() as raw:
        data = raw.read(MAX_TEMPLATE_FILE_BYTES + 1)
    if len(data) > MAX_TEMPLATE_FILE_BYTES:
        acc.add(source.member, "", "error", f"template file is over the {MAX_TEMPLATE_FILE_BYTES}-byte bound; not checked")
        return []
    if relative.endswith(".jinja"):
        report_template(acc, source.member, "chat_template", data.decode("utf-8", "replace"))
        return ["chat-template"]
    try:
        templates = templates_in_json(safe_files.loads_json(data, relative))
    except ValueError as exc:
        # Python's json reads deeper nesting than the bound: a loader may still find a template here.
        acc.add(source.member, "", "error", f"not checked for chat templates: {exc}")
        return []
    for key, template in templates.items():
        report_template(acc, source.member, key, template)
    return ["chat-template"] if templates else []
