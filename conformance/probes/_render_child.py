"""The child process that renders an untrusted chat template (run by file path, never imported by the package).

`template_render.render_chat_template` starts `python -I <this file>` and writes one JSON request to its
stdin: `{"template", "jobs": [{"messages", "add_generation_prompt"}], "template_kwargs", "max_cpu_seconds",
"max_output_chars", "max_memory_bytes"}`. This process imports jinja2 and the standard library only (so a
template never runs beside the package, torch or transformers), then limits itself before compiling the
template (`apply_limits`): address space, CPU seconds, file size 0, no new file descriptors, no new
processes. Each job's result is written to stdout as one JSON line as soon as it is known, so a process
that dies part-way still reports the renders before it; the last line holds the CPU seconds used.

The environment mirrors transformers 5.24's `_cached_compile_jinja_template`
(`transformers/utils/chat_template_utils.py`): `ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols])`, its `tojson` filter and its
`raise_exception`, `strftime_now`, `dict` and `namespace` globals, their semantics copied here. Two
additions bound a render without changing what a well-behaved template renders: `*` and `**` refuse a
result longer than the output budget (`'a' * 10**9` would allocate a gigabyte before any output is
counted), and a CPU-time alarm (`ITIMER_PROF`) stops a render that spends the call's CPU budget.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import resource
import signal
import sys
import time
from collections.abc import Generator
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ERROR_CHARS = 500  # one error line, as RenderResult.error keeps it
MIN_JINJA2 = (3, 1, 6)  # older releases have known sandbox escapes; transformers refuses them
OPEN_FILES = 3  # stdin, stdout, stderr: no descriptor can be opened beyond them
TEMPLATE_FILE = "<template>"  # the file name jinja2 gives the frames of a template compiled from a string
# Modules jinja2 imports inside functions (its traceback rewriting, the lexer's string escapes, the
# `wordwrap`, `pprint` filters and `lipsum`): imported before the limits, after which no file can be opened.
PRELOADED = ("jinja2.debug", "jinja2.constants", "encodings.unicode_escape", "encodings.raw_unicode_escape",
             "textwrap", "pprint")  # fmt: skip


class OverBudget(BaseException):
    """The render spent the call's CPU budget (a BaseException: no `except Exception` in jinja2 catches it)."""


class OutputBudget(Exception):
    """A `*` or `**` whose result would be longer than the output budget."""


class _Alarm:
    """Raises OverBudget from the CPU-time signal, only while a render runs (never in the reporting code)."""

    armed = False

    @classmethod
    def fire(cls, signum: int, frame: Any) -> None:
        """Signal handler for SIGPROF: interrupt the render in progress."""
        if cls.armed:
            cls.armed = False
            raise OverBudget


def apply_limits(max_cpu_seconds: float, max_memory_bytes: int) -> None:
    """Limit this process: address space, CPU, file size, descriptors, processes.

    CPU: the budget from now, then SIGXCPU a second later and SIGKILL a second after that. No file may grow,
    no descriptor be opened, no process started. The hard limits are lowered too, so nothing in the process can
    raise them again. RLIMIT_NPROC does not bind a process running as root; the sandbox itself forbids the calls that would fork.
    """
    cpu_soft_s = math.ceil(time.process_time() + max_cpu_seconds) + 1
    limits = [
        (resource.RLIMIT_AS, max_memory_bytes),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, OPEN_FILES),
        (resource.RLIMIT_NPROC, 0),
    ]
    for kind, value in limits:
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):  # a limit the system does not let us set: the others still hold
            pass
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_soft_s, cpu_soft_s + 1))
    except (ValueError, OSError):
        pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE then fails instead of killing us


class _GenerationTag(jinja2.ext.Extension):
    """transformers' `{% generation %}...{% endgeneration %}` tag (its AssistantTracker), rendered as its body."""

    tags = {"generation"}

    def parse(self, parser: Any) -> Any:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller: Any) -> str:
        return str(caller())


def _raise_exception(message: Any) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
    # transformers' override of jinja2's tojson: no HTML escaping, json.dumps options exposed
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: Any) -> str:
    return datetime.now().strftime(format)


class TemplateDict:
    """transformers' `dict` global: calls and `fromkeys` only, no attribute of the real dict type."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class TemplateNamespace(jinja2.utils.Namespace):
    """transformers' `namespace` global: jinja2's Namespace refusing names that start with an underscore."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 (jinja2's signature trick: `namespace(self=...)` works)
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"Chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}. "
                "Please rename the attribute."
            )


def _result_chars(operator: str, left: Any, right: Any) -> int:
    """The length of `left * right` or `left ** right` (characters, items or decimal digits), before computing it."""
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                return len(sequence) * max(count, 0)
        if isinstance(left, int) and isinstance(right, int):
            return math.ceil((left.bit_length() + right.bit_length()) * math.log10(2))
        return 0
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        return math.ceil(left.bit_length() * right * math.log10(2))
    return 0


class RenderEnvironment(ImmutableSandboxedEnvironment):
    """transformers' sandbox with `*` and `**` bounded by the output budget."""

    intercepted_binops = frozenset({"*", "**"})
    max_output_chars = 1 << 16

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """`left operator right`, refused (OutputBudget) when its result would exceed `max_output_chars`."""
        chars = _result_chars(operator, left, right)
        if chars > self.max_output_chars:
            raise OutputBudget(
                f"'{operator}' would make a result of {chars} characters or items, "
                f"over the {self.max_output_chars}-character output budget"
            )
        return super().call_binop(context, operator, left, right)


def environment(max_output_chars: int) -> RenderEnvironment:
    """The rendering environment (transformers' filters and globals, our output bound)."""
    env = RenderEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols])
    env.max_output_chars = max_output_chars
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env


def _version(text: str) -> tuple[int, ...]:
    """A release number as integers: "3.1.6" -> (3, 1, 6); a part's trailing letters ("0rc1") are dropped."""
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(int(digits or 0))
    return tuple(parts)


def _template_line(exc: BaseException) -> int | None:
    """The template line a render error was raised at (jinja2 rewrites its traceback to the template's lines)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == TEMPLATE_FILE:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 3] + "..."


def _error(kind: str, exc: BaseException, prefix: str = "") -> dict[str, Any]:
    line = getattr(exc, "lineno", None) or _template_line(exc)
    where = f"line {line}: " if line else ""
    message = str(exc) if not isinstance(exc, RecursionError) else "maximum recursion depth exceeded"
    return {"kind": kind, "text": None, "error": _one_line(f"{prefix}{where}{type(exc).__name__}: {message}")}


def _render(template: Any, job: dict[str, Any], kwargs: dict[str, Any], max_output_chars: int) -> dict[str, Any]:
    """One job rendered with the template streamed, stopped past `max_output_chars`. Raises OverBudget."""
    pieces: list[str] = []
    chars = 0
    stream: Generator[str, None, None] = template.generate(
        messages=job["messages"], tools=None, documents=None, add_generation_prompt=job["add_generation_prompt"], **kwargs
    )
    try:
        for piece in stream:
            chars += len(piece)
            if chars > max_output_chars:
                return {"kind": "output", "text": None, "chars": chars,
                        "error": f"the rendering passed the {max_output_chars}-character output budget"}  # fmt: skip
            pieces.append(piece)
    except jinja2.exceptions.SecurityError as exc:
        return {**_error("security", exc), "chars": chars}
    except OutputBudget as exc:
        return {"kind": "output", "text": None, "chars": chars, "error": _one_line(str(exc))}
    except MemoryError:
        pieces.clear()
        return {"kind": "memory", "text": None, "chars": chars, "error": "the render ran out of its memory budget"}
    except Exception as exc:  # TemplateError (raise_exception, undefined), RecursionError, a Python error of the template
        return {**_error("template", exc), "chars": chars}
    finally:
        stream.close()
    text = "".join(pieces)
    return {"kind": "ok", "text": text, "chars": len(text), "error": None}


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=True) + "\n")
    sys.stdout.flush()


def _compile(env: RenderEnvironment, source: str, budget_s: float) -> tuple[Any, dict[str, Any] | None]:
    """The compiled template, or None and the error every job reports (compiling counts in the CPU budget)."""
    if _version(jinja2.__version__) < MIN_JINJA2:  # transformers refuses these too
        return None, {"kind": "process", "text": None,
                      "error": f"jinja2 {jinja2.__version__} has known sandbox escapes: not rendered (3.1.6 or later needed)"}  # fmt: skip
    try:
        signal.setitimer(signal.ITIMER_PROF, budget_s)
        _Alarm.armed = True
        template = env.from_string(source)
        _Alarm.armed = False
        return template, None
    except OverBudget:
        return None, {"kind": "time", "text": None, "error": f"compiling the template spent the {budget_s:g} s CPU budget"}
    except MemoryError:
        return None, {"kind": "memory", "text": None, "error": "compiling the template ran out of its memory budget"}
    except Exception as exc:  # TemplateSyntaxError (with its line), RecursionError while compiling
        return None, _error("template", exc, "the template does not compile: ")
    finally:
        _Alarm.armed = False
        signal.setitimer(signal.ITIMER_PROF, 0)


def main() -> None:
    """Read the request from stdin, limit the process, render every job, write one JSON line per job."""
    request = json.loads(sys.stdin.read())
    budget_s = float(request["max_cpu_seconds"])
    max_output_chars = int(request["max_output_chars"])
    for name in PRELOADED:
        importlib.import_module(name)
    _strftime_now("%c %Z")  # reads the time zone file now, while files can still be opened
    start_s = time.process_time()
    apply_limits(budget_s, int(request["max_memory_bytes"]))
    signal.signal(signal.SIGPROF, _Alarm.fire)
    env = environment(max_output_chars)
    template, compile_error = _compile(env, request["template"], budget_s)
    for index, job in enumerate(request["jobs"]):
        left_s = budget_s - (time.process_time() - start_s)
        if compile_error is not None:
            result = {**compile_error, "chars": 0}
        elif left_s <= 0:
            result = {"kind": "time", "text": None, "chars": 0,
                      "error": f"not rendered: the renders before it spent the {budget_s:g} s CPU budget"}  # fmt: skip
        else:
            try:
                signal.setitimer(signal.ITIMER_PROF, left_s)
                _Alarm.armed = True
                result = _render(template, job, request["template_kwargs"], max_output_chars)
                _Alarm.armed = False
            except OverBudget:
                result = {"kind": "time", "text": None, "chars": 0, "error": f"the render spent the {budget_s:g} s CPU budget"}
            finally:
                _Alarm.armed = False
                signal.setitimer(signal.ITIMER_PROF, 0)
        _emit({"job": index, **result})
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _emit({"cpu_seconds": usage.ru_utime + usage.ru_stime})


if __name__ == "__main__":
    main()
