"""The generations probe: greedy completions of a prompt set (for safety.generation_probe)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CheckError, CheckSkipped
from ..probe_registry import ProbeContext, probe
from .load import LoadedModel


@dataclass
class Generations:
    prompts: list[str]
    completions: list[str]
    max_new_tokens: int


def generate_greedy(loaded: LoadedModel, prompts: list[str], max_new_tokens: int) -> Generations:
    import torch

    if loaded.kind != "causal":
        raise CheckSkipped("encoder-only model: generation does not apply")
    tokenizer = loaded.tokenizer
    if tokenizer is None:
        raise CheckError("generation needs the model's tokenizer, and none is shipped")
    completions = []
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        for prompt in prompts:  # one at a time: no padding, so each completion is what a user would see
            inputs = tokenizer(prompt, return_tensors="pt").to(loaded.device)
            output = loaded.model.generate(
                **inputs, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad_id
            )
            completions.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return Generations(prompts=list(prompts), completions=completions, max_new_tokens=max_new_tokens)


@probe("generations", evidence=Generations, depends=("load",), cacheable=True, parameterized=True)
def generations_probe(context: ProbeContext) -> Generations:
    """Greedy completions of the rule's prompts, `max_new_tokens` tokens each."""
    params = context.params
    return generate_greedy(context.evidence.get("load", LoadedModel), list(params["prompts"]), int(params["max_new_tokens"]))
