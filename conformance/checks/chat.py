"""Chat rules: the chat template (present, renders, no sandbox escape), stop tokens and generation settings.

`chat_template.*`, `safety.chat_template` and `generation.eos_consistency` / `generation.config` are static
(no model loaded; the template renders in a sandboxed child process); `generation.stops` loads the model
and replies to chat prompts.
"""

from __future__ import annotations

from typing import Any

from ..errors import CheckError, CheckSkipped
from ..evidence import Evidence
from ..planning import rule_evidence
from ..probes.chat_render import RENDER_CPU_SECONDS, RENDER_OUTPUT_CHARS, ChatTemplateEvidence, label_of
from ..probes.chat_replies import DEFAULT_CHAT_PROMPTS, ChatReplies
from ..probes.eos_ids import EosSources, eos_sources, turn_token
from ..probes.generation_facts import GenerationSettingsEvidence
from ..probes.template_render import CONVERSATIONS, RenderResult
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict
from .common import static_facts

DEFAULT_MAX_CPU_SECONDS = 5.0
DEFAULT_MAX_OUTPUT_CHARS = RENDER_OUTPUT_CHARS
DEFAULT_STOP_TOKENS = 128
TEMPLATE_SOURCES = "chat_template.jinja, additional_chat_templates/, tokenizer_config.json chat_template, chat_template.json, GGUF tokenizer.chat_template"


def _chat(evidence: Evidence) -> ChatTemplateEvidence:
    chat: ChatTemplateEvidence = evidence.get("chat_template", ChatTemplateEvidence)
    return chat


@check("chat_template.present", summary="the model ships a chat template that a chat without tools uses (a default)", probes=("static",), comparisons=())
def present(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when a default chat template is found (`probes.chat_templates` order); fail without one.

    Observed: the templates found (name, source, characters), the default's name, sources a loader ignores,
    and problems (a template source unreadable, oversized or malformed fails too).
    """
    tokenizer = static_facts(evidence).tokenizer
    templates = tokenizer.chat_templates
    observed = templates.to_dict()
    if not templates.templates:
        found = "; ".join(templates.errors) or f"no chat template ({TEMPLATE_SOURCES})"
        if not templates.errors and tokenizer.errors:  # a GGUF header or tokenizer file that could not be read
            found += "; the tokenizer files have errors: " + "; ".join(tokenizer.errors)[:500]
        return Verdict("fail", observed, "a chat template", found)
    default = templates.default_template
    if default is None or templates.errors:
        return Verdict("fail", observed, "a default chat template", "; ".join(templates.errors))
    return Verdict("pass", observed, "a chat template", f"from {label_of(default)}")


@check(
    "chat_template.renders",
    summary="the default chat template renders the bundled conversations in jinja2's sandbox, within CPU-time and output budgets",
    probes=("static", "chat_template"),
    params={
        "max_cpu_seconds": {"type": "number", "minimum": 0.5, "maximum": RENDER_CPU_SECONDS, "description": f"CPU seconds for all renderings, the renderer's start-up (~0.1 s) included (default {DEFAULT_MAX_CPU_SECONDS:g}, 0.5 to {RENDER_CPU_SECONDS:g})"},
        "max_output_chars": {"type": "integer", "minimum": 1, "maximum": RENDER_OUTPUT_CHARS, "description": f"characters one rendering may have (default {DEFAULT_MAX_OUTPUT_CHARS})"},
    },
    comparisons=(),
)
def renders(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when every bundled conversation renders without error, non-empty, within the budgets.

    Observed: each rendering (conversation, generation prompt or not, characters, outcome), the first two
    texts, the CPU seconds and the assistant-turn ending. Skips without a chat template; fails when the
    template was not rendered because `safety.chat_template` found escape attempts.
    """
    chat = _chat(evidence)
    if chat.templates.default_template is None:
        raise CheckSkipped(chat.not_rendered or "no chat template")
    expected = "every bundled conversation renders in the sandbox"
    if chat.rendering is None:
        return Verdict("fail", chat.to_dict(), expected, chat.not_rendered or "not rendered")
    rendering = chat.rendering
    observed = rendering.to_dict()
    max_seconds = float(rule.params.get("max_cpu_seconds", DEFAULT_MAX_CPU_SECONDS))
    max_chars = int(rule.params.get("max_output_chars", DEFAULT_MAX_OUTPUT_CHARS))
    refused_system = _refuses_system_role(rendering.renders)
    problems = [f"{r.name}: {r.kind}: {r.error}" for r in rendering.renders if r.kind != "ok" and r not in refused_system]
    problems += [f"{r.name}: empty rendering" for r in rendering.renders if r.kind == "ok" and not r.chars]
    problems += [f"{r.name}: {r.chars} characters, over {max_chars}" for r in rendering.renders if r.kind == "ok" and r.chars > max_chars]
    if rendering.cpu_seconds > max_seconds:
        problems.append(f"took {rendering.cpu_seconds:.2f} CPU seconds, over {max_seconds:g}")
    if problems:
        return Verdict("fail", observed, expected, "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    note = f"; refuses a system message, as written ({refused_system[0].error})" if refused_system else ""
    return Verdict("pass", observed, expected, f"{len(rendering.renders) - len(refused_system)} conversations in {rendering.cpu_seconds:.2f} CPU seconds{note}")


def _refuses_system_role(renders: list[RenderResult]) -> list[RenderResult]:
    """The renderings that fail only because the template refuses a system message (Gemma's raise_exception).

    Such a template is written that way on purpose; it counts when every conversation with a system message
    fails with a template error, every one without renders, and at least one without exists.
    """
    has_system = {c.name for c in CONVERSATIONS if any(m.get("role") == "system" for m in c.messages)}
    with_system = [r for r in renders if r.name in has_system]
    without = [r for r in renders if r.name not in has_system]
    if with_system and without and all(r.kind == "template" for r in with_system) and all(r.kind == "ok" for r in without):
        return with_system
    return []


@check(
    "safety.chat_template",
    summary="no chat template tries to reach Python objects or attributes the sandbox forbids (judged statically, never rendered outside a sandbox)",
    probes=("static", "chat_template"),
    comparisons=(),
)
def chat_template_safety(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when every template is free of escape attempts; fail naming each construct and its line.

    A template is parsed and walked (`scan_templates.template_escapes`), never rendered for this rule; one
    with escapes is not rendered by any other rule either. Skips without templates; raises CheckError when a
    template cannot be judged (unparseable, over a bound).
    """
    chat = _chat(evidence)
    templates = chat.templates.every_template
    if not templates and not chat.unjudged:
        raise CheckSkipped("no chat template")
    refused = [r for r in (chat.rendering.renders if chat.rendering else []) if r.kind == "security"]
    observed: dict[str, Any] = {"templates": [label_of(t) for t in templates], "escapes": chat.escapes, "unjudged": chat.unjudged, "sandbox_refusals": [r.error for r in refused]}
    if chat.escapes or refused:
        found = [f"{label}: {', '.join(constructs[:5])}" for label, constructs in chat.escapes.items()]
        found += [f"{label_of(chat.templates.default_template)} rendering {r.name}: the sandbox refused: {r.error}" for r in refused[:3] if chat.templates.default_template]
        return Verdict("fail", observed, "no sandbox escape attempt", "; ".join(found))
    if chat.scan_errors or chat.unjudged:
        reasons = [f"{label}: {reason}" for label, reason in chat.scan_errors.items()] + chat.unjudged
        raise CheckError("templates not judged: " + "; ".join(reasons)[:1500])
    return Verdict("pass", observed, "no sandbox escape attempt", f"{len(templates)} template(s) clean")


@check(
    "generation.eos_consistency",
    summary="the token the chat template ends an assistant turn with is a stop id, and eos ids agree across config.json, generation_config.json and the tokenizer",
    probes=("static", "chat_template"),
    comparisons=(),
)
def eos_consistency(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when the end-of-turn token is among the stop ids and every source's eos ids are stop ids.

    The end-of-turn token is the added or special token the default template writes right after an
    assistant message (`eos_ids.turn_token`); stop ids are generation_config.json's `eos_token_id` when the
    file exists (none when it names none: transformers does not fall back to config.json), else
    config.json's; a GGUF file's eos, eot and eom ids. Without a chat template only the agreement is
    judged. Fails listing each problem; raises CheckError when generation_config.json cannot be read, the
    template was not rendered (escapes, errors) or there is no tokenizer to find the token in.
    """
    facts = static_facts(evidence)
    chat = _chat(evidence)
    sources = eos_sources(facts.tokenizer, facts.config)
    if sources.unreadable is not None:
        raise CheckError(f"generation_config.json could not be read, so the stop ids are unknown: {sources.unreadable}")
    observed: dict[str, Any] = {"eos": sources.to_dict()}
    problems = [f"{label} {value!r} is not a token id" for label, value in sources.invalid.items()]
    if not sources.stop_ids:
        problems.append(_no_stop_ids(sources))
    problems += sources.disagreements()
    if chat.templates.default_template is not None:
        if chat.rendering is None or chat.rendering.turn_ending is None:
            raise CheckError(f"the end-of-turn token is unknown: {chat.not_rendered or 'the template was not rendered'}")
        if not facts.tokenizer.added_token_ids:
            raise CheckError("the end-of-turn token is unknown: the model has no tokenizer files naming added or special tokens")
        ending = chat.rendering.turn_ending
        observed["turn_ending"] = ending.text
        if ending.text is None:
            problems.append(f"the template's assistant turn has no ending: {ending.error}")
        else:
            token = turn_token(ending.text, facts.tokenizer.added_token_ids)
            observed["turn_token"] = token.to_dict()
            if token.token_id is None:
                problems.append(str(token.reason))
            elif sources.stop_ids and token.token_id not in sources.stop_ids:
                problems.append(
                    f"the template ends an assistant turn with {token.text!r} (id {token.token_id}), which is not among the "
                    f"{sources.stop_source} stop ids {sources.stop_ids}: generation runs past the end of the answer"
                    + (GGUF_NOTE if sources.gguf else "")
                )
    else:
        observed["turn_ending"] = None
    expected = "the end-of-turn token is a stop id; eos ids agree"
    if problems:
        return Verdict("fail", observed, expected, "; ".join(problems))
    return Verdict("pass", observed, expected)


GGUF_NOTE = " (as transformers and any runtime reading the ids see it; llama.cpp also stops on tokens it recognises by their text)"


def _no_stop_ids(sources: EosSources) -> str:
    """Why generation has no stop id, naming the file it reads them from."""
    if sources.gguf:
        return f"{sources.stop_source} names no eos, eot or eom id: generation never stops on its own"
    if sources.stop_source == "generation_config.json":
        return "generation_config.json names no usable eos_token_id: generate stops only at its length limit (transformers does not fall back to config.json's)"
    return "config.json names no usable eos_token_id and there is no generation_config.json: generation never stops on its own"


@check(
    "generation.config",
    summary="generation_config.json parses and is coherent as transformers validates it (sampling settings without do_sample, max_length past the context...)",
    probes=("static", "generation_settings"),
    comparisons=(),
)
def generation_config(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when generation_config.json has neither errors nor warnings (`probes.generation_settings`).

    Errors are what transformers refuses; warnings its validation's minor issues and a length past the
    context: both fail (give the rule level `should` to make warnings advisory). Skips without the file
    (transformers builds the settings from config.json; a GGUF file has none).
    """
    found: GenerationSettingsEvidence = evidence.get("generation_settings", GenerationSettingsEvidence)
    if not found.settings.present:
        raise CheckSkipped("no generation_config.json: nothing to validate (transformers derives the settings from config.json)")
    observed = found.to_dict()
    expected = "a generation_config.json transformers validates without issues"
    if found.settings.error is not None or found.findings is None:
        return Verdict("fail", observed, expected, f"generation_config.json unreadable: {found.settings.error}")
    findings = found.findings
    problems = [*findings.errors, *(f"`{name}`: {message}" for name, message in findings.warnings.items())]
    if problems:
        return Verdict("fail", observed, expected, "; ".join(problems[:6]) + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""))
    return Verdict("pass", observed, expected)


def _stops_params(rule: Rule) -> dict[str, Any]:
    prompts = rule.params.get("prompts") or list(DEFAULT_CHAT_PROMPTS)
    return {"prompts": list(prompts), "max_new_tokens": int(rule.params.get("max_new_tokens", DEFAULT_STOP_TOKENS))}


@check(
    "generation.stops",
    summary="greedy chat replies (rendered with the model's own template) end with a stop id within max_new_tokens; the share that stops is >= min_rate",
    probes=("static", "chat_template", "load", "chat_replies"),
    params={
        "prompts": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 4096}, "minItems": 1, "maxItems": 64, "description": "user messages, one conversation each (default: 3 bundled prompts)"},
        "max_new_tokens": {"type": "integer", "minimum": 1, "maximum": 2048, "description": f"tokens one reply may take (default {DEFAULT_STOP_TOKENS})"},
        "min_rate": {"type": "number", "minimum": 0, "maximum": 1, "description": "smallest share of replies that must stop (default 1)"},
    },
    comparisons=(),
    probe_params=_stops_params,
)
def stops(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when the share of replies ending with one of the model's stop ids is at least `min_rate`.

    Observed: {rate (0..1), stopped, prompts, stop_ids, replies: [{prompt, tokens, last_id, stopped, text,
    ending}]}. Raises CheckError when the model did not load, has no tokenizer or no renderable template.
    """
    replies = rule_evidence(evidence, rule, "chat_replies", ChatReplies)
    rate = replies.stopped / len(replies.replies) if replies.replies else 0.0
    min_rate = float(rule.params.get("min_rate", 1.0))
    observed = {"rate": rate, "stopped": replies.stopped, "prompts": len(replies.replies), **replies.to_dict()}
    expected = f"rate >= {min_rate:g}"
    if rate < min_rate:
        running = [r for r in replies.replies if not r.stopped]
        shown = "; ".join(f"{r.prompt[:40]!r}: {r.tokens} tokens, ends {r.ending[-50:]!r}" for r in running[:3])
        return Verdict("fail", observed, expected, f"{len(running)}/{len(replies.replies)} replies ran to max_new_tokens {replies.max_new_tokens} without a stop id {replies.stop_ids}: {shown}")
    return Verdict("pass", observed, expected, f"{replies.stopped}/{len(replies.replies)} replies stopped")
