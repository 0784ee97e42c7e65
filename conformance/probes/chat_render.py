"""The chat probe: every chat template judged for sandbox escapes, and the default one rendered in a sandbox.

Order matters for safety: each template is first walked statically (`scan_templates.template_escapes`,
never rendered); a template with an escape attempt is never handed to a renderer, not even the sandboxed
one. The default template, when clean, renders the bundled conversations in a child process under CPU,
memory and output budgets (`template_render`), the way transformers' `apply_chat_template` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..probe_registry import ProbeContext, probe
from .chat_templates import ChatTemplate, ChatTemplateFacts
from .scan_templates import TemplateError, template_escapes
from .static import StaticFacts
from .template_render import ChatRendering, render_chat_template

# Hard caps of one rendering (a rule's own limits are judged on what was measured, within these).
RENDER_CPU_SECONDS = 5.0
RENDER_OUTPUT_CHARS = 65_536  # of one conversation's rendering; real ones are a few hundred characters
RENDER_MEMORY_BYTES = 1 << 30
# Characters of all a model's templates the escape judge walks (about 2 s a 256 KiB template here): real
# models ship a few templates of tens of KB; past this the rest are unjudged, never silently passed.
MAX_JUDGED_CHARS = 1 << 20

__all__ = ["ChatTemplateEvidence", "label_of"]


def label_of(template: ChatTemplate) -> str:
    """How messages name a template: its source, with its name when it is not the default."""
    return template.source if template.name == "default" else f"{template.source} [{template.name}]"


@dataclass
class ChatTemplateEvidence:
    """What the chat probe found.

    Attributes:
        templates: the template facts (sources, names, errors), texts included.
        escapes: template label -> the escape constructs found (each naming its line), for every template.
        scan_errors: template label -> why it could not be judged (unparseable, over a bound).
        unjudged: templates that exist but were not read or walked (over a bound, unreadable), with why.
        judged: how many templates were walked.
        rendering: the default template's renderings and turn ending; None when it was not rendered.
        not_rendered: why the default template was not rendered (none, escapes, unjudged, refused), else None.
    """

    templates: ChatTemplateFacts
    escapes: dict[str, list[str]] = field(default_factory=dict)
    scan_errors: dict[str, str] = field(default_factory=dict)
    unjudged: list[str] = field(default_factory=list)
    judged: int = 0
    rendering: ChatRendering | None = None
    not_rendered: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for evidence (template texts left out)."""
        return {
            "templates": self.templates.to_dict(),
            "escapes": self.escapes,
            "scan_errors": self.scan_errors,
            "unjudged": self.unjudged,
            "judged": self.judged,
            "rendering": self.rendering.to_dict() if self.rendering is not None else None,
            "not_rendered": self.not_rendered,
        }


def judge_and_render(facts: StaticFacts) -> ChatTemplateEvidence:
    """Scan every template of `facts`; render the default one in the sandbox when every template is clean.

    Every template is walked: the used ones, those of sources a loader ignores and those embedded in GGUF
    files (`ChatTemplateFacts.every_template`), up to `MAX_JUDGED_CHARS` in all. A template with escapes
    anywhere in the model, or one left unjudged, keeps the default from being rendered too: the files come
    from one publisher, and a clean default beside a hostile named template is not a model to run.
    """
    templates = facts.tokenizer.chat_templates
    evidence = ChatTemplateEvidence(templates=templates, unjudged=list(templates.unjudged))
    walked = 0
    for template in templates.every_template:
        label = label_of(template)
        walked += len(template.text)
        if walked > MAX_JUDGED_CHARS:
            evidence.unjudged.append(f"{label}: not judged, the model's templates exceed {MAX_JUDGED_CHARS} characters in all")
            continue
        try:
            found = template_escapes(template.text)
        except TemplateError as exc:
            evidence.scan_errors[label] = str(exc)[:500]
            continue
        evidence.judged += 1
        if found:
            evidence.escapes[label] = found
    default = templates.default_template
    if default is None:
        evidence.not_rendered = "; ".join(templates.errors) or "the model has no chat template"
    elif evidence.escapes:
        evidence.not_rendered = "not rendered: safety.chat_template found sandbox escape attempts"
    elif evidence.scan_errors or evidence.unjudged:
        reasons = [*evidence.scan_errors.values(), *evidence.unjudged]
        evidence.not_rendered = "not rendered: a template could not be judged (" + "; ".join(reasons)[:1000] + ")"
    else:
        _render(evidence, default.text, facts)
    return evidence


def template_special_tokens(facts: StaticFacts) -> dict[str, str]:
    """Role -> text of the special tokens a template is given (a GGUF id outside the vocabulary, "<id N>", left out)."""
    return {role: text for role, text in facts.tokenizer.special_tokens.items() if not text.startswith("<id ")}


def _render(evidence: ChatTemplateEvidence, template: str, facts: StaticFacts) -> None:
    """Render `template` in the sandbox; a request the renderer refuses (a special token over its bound) is why not."""
    try:
        evidence.rendering = render_chat_template(
            template,
            template_special_tokens(facts),
            max_cpu_seconds=RENDER_CPU_SECONDS,
            max_output_chars=RENDER_OUTPUT_CHARS,
            max_memory_bytes=RENDER_MEMORY_BYTES,
        )
    except (TypeError, ValueError) as exc:
        evidence.not_rendered = f"not rendered: {str(exc)[:500]}"


@probe("chat_template", evidence=ChatTemplateEvidence, depends=("static",))
def chat_template_probe(context: ProbeContext) -> ChatTemplateEvidence:
    """Every chat template scanned for escapes; the default rendered in the sandbox when all are clean."""
    return judge_and_render(context.evidence.get("static", StaticFacts))
