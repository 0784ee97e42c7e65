"""Where a model's chat templates come from, read as transformers and llama.cpp read them (never rendered here).

transformers 5 (`PreTrainedTokenizerBase.from_pretrained`, `get_chat_template`) takes a tokenizer's
templates from, in this order:

1. `chat_template.jinja` (the template named "default") and every `additional_chat_templates/<name>.jinja`:
   when any of these files exists they replace whatever tokenizer_config.json says;
2. tokenizer_config.json's `chat_template`: a string (the default template), or a list of
   `{"name": ..., "template": ...}` (named templates; a mapping is taken as written);
3. `chat_template.json` (`{"chat_template": ...}`), the legacy file of a processor (multimodal models), which
   a processor reads when the tokenizer has no template.

A GGUF file carries `tokenizer.chat_template` (the default) and `tokenizer.chat_template.<name>` (named).
With named templates and no tools, the one used is "default" (the last one so named, as transformers'
dict keeps the last); templates without a "default" leave a chat with no template (transformers raises
"multiple chat templates with no default"), which `default_template` reports as None with `errors` saying
why. Sources present but not used (tokenizer_config.json's template beside a chat_template.jinja, which
llama.cpp's converter prefers; a processor's chat_template.json) and the templates embedded in GGUF files
beside Hugging Face tokenizer files are kept in `others`: a safety judgement reads every template a tool
may render, not only transformers' choice.

Every template is bounded by `MAX_TEMPLATE_CHARS` (the escape judge's and the renderer's bound) and their
number by `MAX_NAMED_TEMPLATES`; a template that exists but is not read (over a bound, unreadable) is
listed in `unjudged`, so a rule that must see every template can say it did not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..candidate import Candidate
from .scan_templates import MAX_NAMED_TEMPLATES, MAX_TEMPLATE_CHARS

JINJA_FILE = "chat_template.jinja"
TEMPLATES_FOLDER = "additional_chat_templates"
PROCESSOR_FILE = "chat_template.json"
DEFAULT_NAME = "default"
GGUF_KEY = "tokenizer.chat_template"
MAX_TEMPLATE_FILE_BYTES = 64 * 1024 * 1024  # a chat_template.json could inline other processor settings
MAX_TEMPLATE_BYTES = 4 * MAX_TEMPLATE_CHARS  # a template file read: UTF-8 takes at most 4 bytes a character

__all__ = ["ChatTemplate", "ChatTemplateFacts", "add_embedded", "templates_from_folder", "templates_from_gguf"]


@dataclass(frozen=True)
class ChatTemplate:
    """One template: its name ("default" or the named one's), where it was read (file or GGUF key) and its text."""

    name: str
    source: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Name, source and size in characters (the text itself is evidence of the rules that render it)."""
        return {"name": self.name, "source": self.source, "chars": len(self.text)}


@dataclass
class ChatTemplateFacts:
    """The templates a loader would use, the sources found but not used, and every problem found.

    Attributes:
        templates: the used source's templates, in the order written (at most `MAX_NAMED_TEMPLATES`).
        shadowed: sources with templates that the used source replaces ("tokenizer_config.json chat_template").
        others: the templates of shadowed sources and of GGUF files beside Hugging Face tokenizer files.
        unjudged: templates that exist but were not read (over a bound, unreadable), each with the reason.
        errors: unreadable or oversized sources, malformed entries, named templates without a default.
    """

    templates: list[ChatTemplate] = field(default_factory=list)
    shadowed: list[str] = field(default_factory=list)
    others: list[ChatTemplate] = field(default_factory=list)
    unjudged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def default_template(self) -> ChatTemplate | None:
        """The template a chat without tools is rendered with: the last one named "default", else None."""
        defaults = [template for template in self.templates if template.name == DEFAULT_NAME]
        return defaults[-1] if defaults else None

    @property
    def every_template(self) -> list[ChatTemplate]:
        """The used templates, then the others (what a safety judgement must read)."""
        return [*self.templates, *self.others]

    @property
    def sources(self) -> list[str]:
        """The distinct files or GGUF keys the used templates come from."""
        return list(dict.fromkeys(template.source for template in self.templates))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for evidence: templates without their text, the default's name, shadowed sources, errors."""
        default = self.default_template
        return {
            "templates": [template.to_dict() for template in self.templates],
            "default": default.name if default is not None else None,
            "shadowed": self.shadowed,
            "others": [template.to_dict() for template in self.others],
            "unjudged": self.unjudged,
            "errors": self.errors,
        }


def _unread(facts: ChatTemplateFacts, reason: str) -> None:
    """A template that exists but is not kept: an error, and unjudged (each reason recorded once)."""
    if reason not in facts.unjudged and len(facts.unjudged) < MAX_NAMED_TEMPLATES:
        facts.unjudged.append(reason)
        facts.errors.append(reason)


def _keep(facts: ChatTemplateFacts, found: list[ChatTemplate], name: str, source: str, text: Any) -> None:
    """Add one template to `found` when it is a string within bounds; otherwise record why not."""
    where = source if name == DEFAULT_NAME else f"{source} ({name[:80]!r})"
    if not isinstance(text, str):
        facts.errors.append(f"{where}: chat template is a {type(text).__name__}, not a string")
        return
    if len(found) >= MAX_NAMED_TEMPLATES:
        # Named once per file: a GGUF source is "<file> <key>", its file the first word.
        _unread(facts, f"{source.split(' ')[0]}: more than {MAX_NAMED_TEMPLATES} chat templates; the rest are not read")
        return
    if len(text) > MAX_TEMPLATE_CHARS:
        _unread(facts, f"{where}: chat template is {len(text)} characters, over the {MAX_TEMPLATE_CHARS}-character bound")
        return
    found.append(ChatTemplate(name=name, source=source, text=text))


def _from_config_value(facts: ChatTemplateFacts, value: Any, source: str) -> list[ChatTemplate]:
    """Templates of a `chat_template` value: a string, a list of {name, template} or a name -> template mapping."""
    found: list[ChatTemplate] = []
    if isinstance(value, str):
        _keep(facts, found, DEFAULT_NAME, source, value)
    elif isinstance(value, list):
        for index, entry in enumerate(value[: MAX_NAMED_TEMPLATES + 1]):
            if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)):
                facts.errors.append(f"{source}: chat_template entry {index} is not a {{name, template}} object")
                continue
            _keep(facts, found, entry["name"], source, entry.get("template"))
    elif isinstance(value, dict):
        for name, text in list(value.items())[: MAX_NAMED_TEMPLATES + 1]:
            _keep(facts, found, str(name), source, text)
    elif value is not None:
        facts.errors.append(f"{source}: chat_template is a {type(value).__name__}, not a template")
    return found


def _read_text(candidate: Candidate, relative: str, facts: ChatTemplateFacts) -> str | None:
    try:
        raw = candidate.read_bytes(relative, MAX_TEMPLATE_BYTES)
        return raw.decode("utf-8")
    except Exception as exc:  # noqa: BLE001 - an unreadable template file is this fact's error
        _unread(facts, f"{relative} unreadable: {str(exc)[:300] or type(exc).__name__}")
        return None


def _jinja_files(candidate: Candidate, names: set[str], facts: ChatTemplateFacts) -> list[ChatTemplate]:
    found: list[ChatTemplate] = []
    if JINJA_FILE in names:
        text = _read_text(candidate, JINJA_FILE, facts)
        if text is not None:
            _keep(facts, found, DEFAULT_NAME, JINJA_FILE, text)
    prefix = TEMPLATES_FOLDER + "/"
    # transformers globs <folder>/*.jinja: files directly in the folder, sorted here so evidence is stable.
    extra = sorted(name for name in names if name.startswith(prefix) and name.endswith(".jinja") and "/" not in name[len(prefix) :])
    for relative in extra[: MAX_NAMED_TEMPLATES + 1]:
        text = _read_text(candidate, relative, facts)
        if text is not None:
            _keep(facts, found, relative[len(prefix) : -len(".jinja")], relative, text)
    return found


def _processor_file(candidate: Candidate, facts: ChatTemplateFacts) -> list[ChatTemplate]:
    try:
        data = json.loads(candidate.read_bytes(PROCESSOR_FILE, MAX_TEMPLATE_FILE_BYTES))
    except Exception as exc:  # noqa: BLE001
        _unread(facts, f"{PROCESSOR_FILE} unreadable: {str(exc)[:300] or type(exc).__name__}")
        return []
    if not isinstance(data, dict):
        facts.errors.append(f"{PROCESSOR_FILE} is not a JSON object")
        return []
    return _from_config_value(facts, data.get("chat_template"), PROCESSOR_FILE)


def templates_from_folder(candidate: Candidate, names: set[str], tokenizer_config: dict[str, Any] | None) -> ChatTemplateFacts:
    """The chat templates of a Hugging Face folder, in transformers' order of precedence (see the module doc).

    Args:
        candidate: the model folder (files read bounded, through safe_files).
        names: its file names, relative (`Candidate.file_names()`).
        tokenizer_config: tokenizer_config.json as already parsed, or None when absent or unreadable.
    Never raises: problems go to `errors`.
    """
    facts = ChatTemplateFacts()
    ranked: list[tuple[str, list[ChatTemplate]]] = [("chat template files", _jinja_files(candidate, names, facts))]
    if tokenizer_config is not None and "chat_template" in tokenizer_config:
        ranked.append(("tokenizer_config.json chat_template", _from_config_value(facts, tokenizer_config["chat_template"], "tokenizer_config.json")))
    if PROCESSOR_FILE in names:
        ranked.append((PROCESSOR_FILE, _processor_file(candidate, facts)))
    used = next((templates for _, templates in ranked if templates), [])
    facts.templates = used
    facts.shadowed = [label for label, templates in ranked if templates and templates is not used]
    facts.others = [template for _, templates in ranked if templates is not used for template in templates]
    _require_default(facts)
    return facts


def add_embedded(facts: ChatTemplateFacts, embedded: ChatTemplateFacts) -> None:
    """Add a GGUF file's templates (beside Hugging Face tokenizer files) to `facts.others`, with its problems."""
    facts.others += embedded.templates[: max(0, MAX_NAMED_TEMPLATES - len(facts.others))]
    # Unjudged, not errors: the templates a loader uses are what `errors` is about.
    facts.unjudged += [reason for reason in embedded.unjudged if reason not in facts.unjudged][: max(0, MAX_NAMED_TEMPLATES - len(facts.unjudged))]


def templates_from_gguf(metadata: dict[str, Any], relative: str) -> ChatTemplateFacts:
    """The chat templates of a GGUF file's metadata: `tokenizer.chat_template` and `tokenizer.chat_template.<name>`."""
    facts = ChatTemplateFacts()
    found: list[ChatTemplate] = []
    for key, value in metadata.items():
        if key == GGUF_KEY:
            _keep(facts, found, DEFAULT_NAME, f"{relative} {key}", value)
        elif key.startswith(GGUF_KEY + "."):
            _keep(facts, found, key[len(GGUF_KEY) + 1 :], f"{relative} {key}", value)
    facts.templates = found
    _require_default(facts)
    return facts


def _require_default(facts: ChatTemplateFacts) -> None:
    if facts.templates and facts.default_template is None:
        names = ", ".join(repr(template.name[:80]) for template in facts.templates[:10])
        facts.errors.append(f"chat templates {names} but none named 'default': a chat without tools has no template")
