"""The generations probe: greedy completions of a prompt set (for safety.generation_probe)."""

from __future__ import annotations

from dataclasses import dataclass

from ..backends import Backend
from ..errors import CheckError, CheckSkipped
from ..probe_registry import ProbeContext, probe
from .kinds import ENCODER
from .load import loaded_backend


@dataclass
class Generations:
    """Greedy completions: `completions[i]` is the decoded text generated after `prompts[i]` (at most `max_new_tokens` tokens)."""

    prompts: list[str]
    completions: list[str]
    max_new_tokens: int


def generate_greedy(backend: Backend, prompts: list[str], max_new_tokens: int) -> Generations:
    """Each prompt completed greedily (up to `max_new_tokens`, stopping at the model's end of sequence).

    Prompts run one at a time: no padding, so each completion is what a user would see. An
    encoder-decoder model reads the prompt with its encoder and writes the completion with its decoder;
    an image-text-to-text model gets the text prompt alone. Raises CheckSkipped for an encoder-only model
    and CheckError when the model ships no tokenizer.
    """
    if backend.kind == ENCODER:
        raise CheckSkipped("encoder-only model: generation does not apply")
    if not backend.has_tokenizer:
        raise CheckError("generation needs the model's tokenizer, and none is shipped")
    completions = []
    for prompt in prompts:
        new_tokens = backend.generate(backend.encode(prompt), max_new_tokens)
        completions.append(backend.decode(new_tokens.tolist()[0]))
    return Generations(prompts=list(prompts), completions=completions, max_new_tokens=max_new_tokens)


@probe("generations", evidence=Generations, depends=("load",), cacheable=True, parameterized=True)
def generations_probe(context: ProbeContext) -> Generations:
    """Greedy completions of the rule's prompts, `max_new_tokens` tokens each."""
    params = context.params
    return generate_greedy(loaded_backend(context.evidence), list(params["prompts"]), int(params["max_new_tokens"]))
