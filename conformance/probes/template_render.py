"""Chat templates rendered the way transformers renders them, in a limited child process.

A chat template is code from the candidate model. `render_chat_template` renders it on a bundled set of
tool-free conversations (`CONVERSATIONS`) in a child process (`_render_child.py`, started by file path as
`python -I`, importing jinja2 and the standard library only) that mirrors transformers 5.24's renderer:
jinja2's `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with the `{% generation %}`
tag, `loopcontrols`, transformers' `tojson` filter and its `raise_exception`, `strftime_now`, `dict` and
`namespace` globals; each template is called with `messages`, `add_generation_prompt`, `tools=None`,
`documents=None` and the special-token texts as `apply_chat_template` passes them (`bos_token`, `eos_token`,
`unk_token`, `sep_token`, `pad_token`, `cls_token`, `mask_token`).

Budgets, so a hostile or broken template costs a bounded amount and never takes the caller down:

- CPU seconds (`max_cpu_seconds`, all renders of a call together): the child's own CPU clock stops a render
  (kind "time"), and RLIMIT_CPU kills the child a second after it; a verdict never depends on how busy the
  machine is. The parent's wall-clock timeout (`10 x budget + 30 s`, WALL_TIMEOUT_*) is only a backstop, reported as "time" too.
- output characters (`max_output_chars` per render): the rendering is streamed and stopped past it, and `*`
  and `**` refuse a longer result before computing it (kind "output");
- memory (`max_memory_bytes`, RLIMIT_AS): MemoryError is kind "memory";
- the child cannot grow files, open descriptors or (not running as root) start processes.

The end of an assistant turn (`TurnEnding`) is read from the same child: the text the template writes right
after an assistant message's content, which `generation.eos_consistency` maps to a token id.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .scan_templates import MAX_TEMPLATE_CHARS

CHILD_SCRIPT = Path(__file__).with_name("_render_child.py")
KINDS = ("ok", "template", "security", "time", "memory", "output", "process")
# The texts apply_chat_template passes by name (transformers 5's SPECIAL_TOKENS_ATTRIBUTES, `<role>_token`).
SPECIAL_TOKEN_ROLES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
ERROR_CHARS = 500
STDERR_CHARS = 200  # of the last line a dead renderer wrote to stderr, quoted in its renders' errors
TURN_ENDING_CHARS = 200
EVIDENCE_TEXT_CHARS = 2048
EVIDENCE_TEXTS = 2  # renders whose text the evidence keeps
MAX_SPECIAL_TOKEN_CHARS = 4096
# The parent's wall-clock backstop, WALL_TIMEOUT_FACTOR x the CPU budget + WALL_TIMEOUT_EXTRA_S: generous, since
# the CPU budget (the child's own clock) is what decides; a child past it is killed and its renders are "time".
WALL_TIMEOUT_FACTOR = 10.0
WALL_TIMEOUT_EXTRA_S = 30.0
MARK = "CONFORMANCE-END-OF-TURN-PROBE"  # an assistant message's content, found again in the rendering
_SYSTEM = "You are a helpful assistant."
_QUESTION = "What is the capital of France?"
_ANSWER = "The capital of France is Paris."


@dataclass(frozen=True)
class Conversation:
    """One bundled conversation: tool-free messages and whether the generation prompt is asked for."""

    name: str
    messages: tuple[dict[str, str], ...]
    add_generation_prompt: bool


def _both(name: str, *messages: tuple[str, str]) -> tuple[Conversation, Conversation]:
    chat = tuple({"role": role, "content": content} for role, content in messages)
    return Conversation(name, chat, False), Conversation(f"{name}+generation-prompt", chat, True)


CONVERSATIONS: tuple[Conversation, ...] = (
    *_both("system+user", ("system", _SYSTEM), ("user", _QUESTION)),
    *_both("user", ("user", "Hello! How are you?")),
    *_both("multi-turn", ("user", "What is 2 + 2?"), ("assistant", "2 + 2 = 4."), ("user", "And 3 + 3?")),
    *_both("assistant-final", ("system", _SYSTEM), ("user", _QUESTION), ("assistant", _ANSWER)),
)


@dataclass
class RenderResult:
    """One conversation's rendering.

    Attributes:
        name, add_generation_prompt: the conversation's.
        text: the rendering (None on error), at most `max_output_chars` characters.
        chars: characters rendered (the text's length; on error, those rendered before it).
        kind: "ok", or why it failed: "template" (a TemplateError: `raise_exception`, undefined, syntax; or a
            Python error such as RecursionError), "security" (jinja2's SecurityError: the sandbox refused an
            attribute or call), "time" (the CPU budget), "memory", "output" (the output budget), "process"
            (the child process died or answered garbage).
        error: one line (at most 500 characters) naming the cause, with the template line when known.
    """

    name: str
    add_generation_prompt: bool
    text: str | None
    chars: int
    kind: str
    error: str | None


@dataclass
class TurnEnding:
    """What a template writes right after an assistant message's content.

    Attributes:
        text: at most 200 characters after the content (None when it could not be read).
        error: why it could not be read (e.g. "the template drops the assistant's content").
        generation_prompt_is_prefix: whether rendering [system, user] with the generation prompt is a prefix of
            rendering [system, user, assistant] without it (the header the prompt writes is the one an
            assistant turn gets); None when either did not render. Recorded, not judged.
    """

    text: str | None
    error: str | None
    generation_prompt_is_prefix: bool | None


@dataclass
class ChatRendering:
    """Every render of one template: the conversations', the turn ending, the child's CPU seconds."""

    renders: list[RenderResult]
    turn_ending: TurnEnding | None
    cpu_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for evidence: each render's name, flag, size, kind, error; the first two texts (<= 2048 chars)."""
        renders = []
        for index, result in enumerate(self.renders):
            entry: dict[str, Any] = {"name": result.name, "add_generation_prompt": result.add_generation_prompt,
                                     "chars": result.chars, "kind": result.kind, "error": result.error}  # fmt: skip
            if index < EVIDENCE_TEXTS and result.text is not None:
                entry["text"] = result.text[:EVIDENCE_TEXT_CHARS]
                entry["text_truncated"] = len(result.text) > EVIDENCE_TEXT_CHARS
            renders.append(entry)
        turn = asdict(self.turn_ending) if self.turn_ending is not None else None
        return {"renders": renders, "turn_ending": turn, "cpu_seconds": round(self.cpu_seconds, 3)}


def template_kwargs(special_tokens: dict[str, str]) -> dict[str, str]:
    """The special-token keyword arguments apply_chat_template passes: `{role}_token` -> text for its named roles.

    Raises TypeError for a text that is not a string and ValueError for one over MAX_SPECIAL_TOKEN_CHARS.
    """
    kwargs = {}
    for role in SPECIAL_TOKEN_ROLES:
        text = special_tokens.get(role)
        if text is None:
            continue
        if not isinstance(text, str):
            raise TypeError(f"special token {role!r} is a {type(text).__name__}, not a string")
        if len(text) > MAX_SPECIAL_TOKEN_CHARS:
            raise ValueError(f"special token {role!r} is {len(text)} characters, over {MAX_SPECIAL_TOKEN_CHARS}")
        kwargs[f"{role}_token"] = text
    return kwargs


def _turn_jobs() -> list[dict[str, Any]]:
    """The renders the turn ending is read from: with a system message, then without (templates refusing one)."""
    jobs = []
    for head in ([{"role": "system", "content": _SYSTEM}], []):
        question = [*head, {"role": "user", "content": _QUESTION}]
        answered = [*question, {"role": "assistant", "content": MARK}]
        twice = [*answered, {"role": "user", "content": "And of Italy?"}, {"role": "assistant", "content": MARK}]
        jobs += [{"messages": answered, "add_generation_prompt": False},
                 {"messages": twice, "add_generation_prompt": False},
                 {"messages": question, "add_generation_prompt": True}]  # fmt: skip
    return jobs


def _turn_ending(results: list[dict[str, Any]]) -> TurnEnding:
    """The turn ending from `_turn_jobs`' results (three per variant): the first variant showing the mark wins."""
    first_error = None
    for answered, twice, prompted in (results[0:3], results[3:6]):
        twice_marked = twice["kind"] == "ok" and MARK in twice["text"]
        if answered["kind"] == "ok" and MARK in answered["text"] and (
            answered["text"][answered["text"].rindex(MARK) + len(MARK) :].strip() or not twice_marked
        ):
            text = answered["text"]
            ending = text[text.rindex(MARK) + len(MARK) :]
        elif twice_marked:
            # A template that drops the last assistant's content, or writes nothing after the last turn (GLM-4
            # closes a turn by starting the next one, `<|user|>`): the text after the first of two answers.
            text = twice["text"]
            ending = text[text.index(MARK) + len(MARK) :]
        else:
            first_error = first_error or (
                f"the assistant turn did not render ({answered['kind']}): {answered['error']}" if answered["kind"] != "ok"
                else "the template drops the assistant's content"
            )  # fmt: skip
            continue
        is_prefix = None
        if answered["kind"] == "ok" and prompted["kind"] == "ok":
            is_prefix = answered["text"].startswith(prompted["text"])
        return TurnEnding(text=ending[:TURN_ENDING_CHARS], error=None, generation_prompt_is_prefix=is_prefix)
    return TurnEnding(text=None, error=_bounded(first_error or "no turn ending"), generation_prompt_is_prefix=None)


def _bounded(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 3] + "..."


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name if returncode < 0 else f"exit status {returncode}"
    except ValueError:
        return f"signal {-returncode}"


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_child(request: dict[str, Any], jobs: int, max_cpu_seconds: float, max_output_chars: int) -> tuple[list[dict[str, Any]], float]:
    """Each job's result dict (kind, text, chars, error) and the child's CPU seconds; a dead child's jobs failed."""
    stdin = json.dumps(request, ensure_ascii=True)
    wall_timeout_s = WALL_TIMEOUT_FACTOR * max_cpu_seconds + WALL_TIMEOUT_EXTRA_S
    # ensure_ascii writes a character as at most 12 bytes (a surrogate pair of \uXXXX escapes)
    max_stdout_bytes = jobs * (12 * max_output_chars + 4 * ERROR_CHARS + 256) + 4096
    cpu_before_s = _children_cpu_seconds()
    failure: tuple[str, str] | None = None
    with tempfile.TemporaryDirectory(prefix="conformance-render-") as workdir:
        try:
            done = subprocess.run(
                [sys.executable, "-I", str(CHILD_SCRIPT)], input=stdin.encode("ascii"), capture_output=True,
                timeout=wall_timeout_s, cwd=workdir, check=False,
            )  # fmt: skip
            stdout, stderr, returncode = done.stdout, done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            stdout, stderr, returncode = exc.stdout or b"", b"", None
            failure = ("time", f"the renderer ran past its {wall_timeout_s:g} s wall-clock backstop and was killed")
    cpu_seconds = _children_cpu_seconds() - cpu_before_s  # overwritten by the child's own figure when it reports one
    if len(stdout) > max_stdout_bytes:
        stdout, failure = b"", ("process", f"the renderer wrote {len(stdout)} bytes, over the {max_stdout_bytes}-byte bound")
    results: dict[int, dict[str, Any]] = {}
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            failure = failure or ("process", "the renderer wrote a line that is not JSON")
            break
        if not isinstance(record, dict):
            continue
        if "cpu_seconds" in record and isinstance(record["cpu_seconds"], int | float):
            cpu_seconds = float(record["cpu_seconds"])
        elif isinstance(record.get("job"), int) and record.get("kind") in KINDS:
            results[record["job"]] = record
    if failure is None and len(results) < jobs:
        if returncode == -signal.SIGXCPU:
            failure = ("time", f"the renderer was stopped by its {max_cpu_seconds:g} s CPU limit (SIGXCPU)")
        else:
            last_words = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] if stderr else []
            said = f": {last_words[0][:STDERR_CHARS]}" if last_words else ""
            failure = ("process", f"the renderer ended ({_signal_name(returncode or 0)}) before reporting every render{said}")
    filled = []
    for index in range(jobs):
        record = results.get(index)
        if record is None or not _well_formed(record, max_output_chars):
            kind, error = failure or ("process", "the renderer did not report this render")
            record = {"kind": kind, "text": None, "chars": 0, "error": error}
        filled.append(record)
    return filled, max(cpu_seconds, 0.0)


def _well_formed(record: dict[str, Any], max_output_chars: int) -> bool:
    text, error, chars = record.get("text"), record.get("error"), record.get("chars")
    if not isinstance(chars, int) or (error is not None and not isinstance(error, str)):
        return False
    if record["kind"] == "ok":
        return isinstance(text, str) and len(text) <= max_output_chars
    return text is None


def _refused(conversations: tuple[Conversation, ...] | list[Conversation], reason: str, turn_ending: bool) -> ChatRendering:
    renders = [RenderResult(c.name, c.add_generation_prompt, None, 0, "template", reason) for c in conversations]
    turn = TurnEnding(None, f"not rendered: {reason}", None) if turn_ending else None
    return ChatRendering(renders=renders, turn_ending=turn, cpu_seconds=0.0)


def render_chat_template(
    template: str,
    special_tokens: dict[str, str],
    conversations: tuple[Conversation, ...] | list[Conversation] = CONVERSATIONS,
    *,
    turn_ending: bool = True,
    max_cpu_seconds: float = 5.0,
    max_output_chars: int = 65536,
    max_memory_bytes: int = 1 << 30,
) -> ChatRendering:
    """Render `template` on each conversation (and the turn-ending conversations) in one limited child process.

    Args:
        template: the chat template's source (untrusted). Not a string, or over scan_templates'
            MAX_TEMPLATE_CHARS (256 KiB): refused before any process starts, every render kind "template".
        special_tokens: role ("bos", "eos", ...) -> token text, passed as `bos_token=`... like transformers.
        conversations: what to render (default the bundled set).
        turn_ending: also read what the template writes after an assistant message (`TurnEnding`).
        max_cpu_seconds: CPU seconds for all renders of the call together (the child's clock).
        max_output_chars: characters one rendering may have.
        max_memory_bytes: the child's address space (RLIMIT_AS).

    Returns:
        ChatRendering with one RenderResult per conversation, in order.

    Raises:
        TypeError, ValueError: a special-token text that is not a bounded string, or a budget that is not positive.
    """
    if max_cpu_seconds <= 0 or max_output_chars <= 0 or max_memory_bytes <= 0:
        raise ValueError("render budgets must be positive")
    kwargs = template_kwargs(special_tokens)
    conversations = tuple(conversations)
    if not isinstance(template, str):
        return _refused(conversations, f"the chat template is a {type(template).__name__}, not a string", turn_ending)
    if len(template) > MAX_TEMPLATE_CHARS:
        reason = f"the chat template is {len(template)} characters, over the {MAX_TEMPLATE_CHARS}-character bound"
        return _refused(conversations, reason, turn_ending)
    jobs = [{"messages": [dict(m) for m in c.messages], "add_generation_prompt": c.add_generation_prompt} for c in conversations]
    turn_jobs = _turn_jobs() if turn_ending else []
    request = {"template": template, "jobs": jobs + turn_jobs, "template_kwargs": kwargs, "max_cpu_seconds": max_cpu_seconds,
               "max_output_chars": max_output_chars, "max_memory_bytes": max_memory_bytes}  # fmt: skip
    results, cpu_seconds = _run_child(request, len(jobs) + len(turn_jobs), max_cpu_seconds, max_output_chars)
    renders = [
        RenderResult(c.name, c.add_generation_prompt, r["text"], r["chars"], r["kind"], r["error"] and _bounded(r["error"]))
        for c, r in zip(conversations, results, strict=False)
    ]
    return ChatRendering(renders=renders, turn_ending=_turn_ending(results[len(jobs) :]) if turn_ending else None, cpu_seconds=cpu_seconds)
