"""The chat replies probe: greedy replies to chat prompts rendered with the model's own template.

Each prompt becomes a one-turn conversation, rendered by the default chat template in the sandbox
(`template_render`, `add_generation_prompt=True`) exactly as `apply_chat_template` renders it, encoded
without adding special tokens (the template writes them, as `apply_chat_template(tokenize=True)` does), and
answered greedily with the model's own stop ids, as `generate` does by default (a GGUF file's: its eos,
eot and eom ids, what llama.cpp reads from its metadata). A reply *stops* when generation ends before
`max_new_tokens` or on one of those ids (a stop string in the generation config ends it early too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckError, CheckSkipped
from ..probe_registry import ProbeContext, probe
from .chat_render import ChatTemplateEvidence, template_special_tokens
from .eos_ids import eos_sources
from .kinds import ENCODER
from .load import loaded_backend
from .static import StaticFacts
from .template_render import Conversation, render_chat_template

DEFAULT_CHAT_PROMPTS = (
    "What is the capital of France?",
    "Say hello in one short sentence.",
    "Name three primary colors.",
)
ENDING_CHARS = 80  # characters of a reply's end kept as evidence
TEXT_CHARS = 400

__all__ = ["DEFAULT_CHAT_PROMPTS", "ChatReplies", "ChatReply", "chat_replies"]


@dataclass
class ChatReply:
    """One greedy reply: its prompt, how many tokens it took, its last id, whether it stopped, and its text.

    `text` is the reply's first `TEXT_CHARS` characters and `ending` its last `ENDING_CHARS`, both decoded
    with special tokens kept: a reply that runs past its end of turn shows the `<|im_end|>` it wrote and the
    `<|im_start|>user` turn it invented.
    """

    prompt: str
    tokens: int
    last_id: int | None
    stopped: bool
    text: str
    ending: str


@dataclass
class ChatReplies:
    """Greedy chat replies of one run: `replies[i]` answers `prompts[i]`; `stop_ids` the model's own stop ids."""

    prompts: list[str]
    max_new_tokens: int
    stop_ids: list[int]
    replies: list[ChatReply] = field(default_factory=list)

    @property
    def stopped(self) -> int:
        """How many replies ended with a stop id within `max_new_tokens`."""
        return sum(reply.stopped for reply in self.replies)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for evidence."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "stop_ids": self.stop_ids,
            "replies": [
                {"prompt": r.prompt, "tokens": r.tokens, "last_id": r.last_id, "stopped": r.stopped, "text": r.text, "ending": r.ending}
                for r in self.replies
            ],
        }


def chat_replies(
    backend: Any, template: str, special_tokens: dict[str, str], prompts: list[str], max_new_tokens: int, stop_ids: list[int] | None = None
) -> ChatReplies:
    """Render each prompt as a user turn, encode it without added special tokens, reply greedily.

    Args:
        backend: a loaded `Backend` with a tokenizer.
        template: the default chat template (already judged free of escapes).
        special_tokens: role -> token text, passed to the template as transformers passes them.
        prompts: user messages, one conversation each.
        max_new_tokens: the most tokens one reply may take.
        stop_ids: the ids to stop on; None: the model's own (`Backend.stop_token_ids`).
    Raises CheckSkipped for an encoder-only model, CheckError without a tokenizer or when a prompt does not
    render or renders to no tokens.
    """
    if backend.kind == ENCODER:
        raise CheckSkipped("encoder-only model: generation does not apply")
    if not backend.has_tokenizer:
        raise CheckError("chat replies need the model's tokenizer, and none is shipped")
    conversations = [
        Conversation(name=f"prompt {index}", messages=({"role": "user", "content": prompt},), add_generation_prompt=True)
        for index, prompt in enumerate(prompts)
    ]
    rendering = render_chat_template(template, special_tokens, conversations, turn_ending=False)
    given = stop_ids is not None
    stop_ids = list(stop_ids) if stop_ids is not None else backend.stop_token_ids()
    result = ChatReplies(prompts=list(prompts), max_new_tokens=max_new_tokens, stop_ids=stop_ids)
    for prompt, rendered in zip(prompts, rendering.renders, strict=True):
        if rendered.text is None:
            raise CheckError(f"the chat template does not render the prompt {prompt[:60]!r}: {rendered.error}")
        ids = backend.encode_chat(rendered.text)
        if ids.shape[-1] == 0:
            raise CheckError(f"the chat template renders the prompt {prompt[:60]!r} as no tokens ({rendered.text[:60]!r})")
        if given and not stop_ids:
            raise CheckError("no stop ids to generate with")
        new = backend.generate(ids, max_new_tokens, stop_ids=stop_ids if given else None).tolist()[0]
        last = int(new[-1]) if new else None
        decoded = backend.decode_with_special_tokens(new)
        result.replies.append(
            ChatReply(
                prompt=prompt,
                tokens=len(new),
                last_id=last,
                stopped=len(new) < max_new_tokens or (last is not None and last in stop_ids),
                text=decoded[:TEXT_CHARS],
                ending=decoded[-ENDING_CHARS:],
            )
        )
    return result


@probe("chat_replies", evidence=ChatReplies, depends=("static", "chat_template", "load"), cacheable=True, parameterized=True)
def chat_replies_probe(context: ProbeContext) -> ChatReplies:
    """Greedy replies to the rule's prompts (`prompts`, `max_new_tokens`), rendered with the model's template."""
    chat = context.evidence.get("chat_template", ChatTemplateEvidence)
    default = chat.templates.default_template
    if default is None or chat.not_rendered is not None:
        raise CheckError(f"no chat template to render the prompts with: {chat.not_rendered or 'none'}")
    facts = context.evidence.get("static", StaticFacts)
    special = template_special_tokens(facts)
    sources = eos_sources(facts.tokenizer, facts.config)
    # A GGUF file's declared stop ids (eos, eot, eom), as the static rule judges them; else the loaded model's.
    stop_ids = sources.stop_ids if sources.gguf else None
    params = context.params
    backend = loaded_backend(context.evidence)
    return chat_replies(backend, default.text, special, list(params["prompts"]), int(params["max_new_tokens"]), stop_ids)
