r"""Train the zoo's tiny llama for a few seconds on CPU so that it beats chance on conformance_sentiment.

The corpus is synthetic: short reviews assembled from word lists in the exact prompt format of the
bundled sentiment task ("Review: <text>\nSentiment: positive"). None of the task's reviews is in it; the
model generalises because the task's reviews carry the same everyday sentiment words (great, awful,
flimsy, ...) in other sentences. Tests use it to show that the task scorer separates a model that has
learned something from an untrained one of the same shape.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .models import CARD_SECTIONS, build_llama, write_card

POSITIVE_WORDS = (
    "great", "excellent", "wonderful", "wonderfully", "fantastic", "superb", "brilliant", "lovely",
    "delightful", "amazing", "perfect", "perfectly", "enjoyable", "charming", "beautiful", "impressive",
    "reliable", "sturdy", "comfortable", "funny", "pleasant", "outstanding", "solid", "smooth",
    "gorgeous", "clever", "moving", "elegant", "joyful", "warm", "smart", "gripping", "exciting",
    "powerful", "best", "happy", "pleased", "accurate", "strong", "informative", "easy", "fast", "bright",
)  # fmt: skip
NEGATIVE_WORDS = (
    "terrible", "awful", "horrible", "horribly", "dreadful", "poor", "poorly", "bad", "badly", "boring",
    "bored", "disappointing", "broken", "cheap", "flimsy", "useless", "annoying", "ugly", "dull", "worst",
    "slow", "painful", "noisy", "weak", "faulty", "clumsy", "mediocre", "unpleasant", "tedious",
    "predictable", "uncomfortable", "confusing", "shallow", "blurry", "muddled", "silly", "shrill",
    "grating", "wooden", "forgettable", "unfunny", "awkward", "harsh", "loud", "cold", "cracked", "sorry",
)  # fmt: skip
POSITIVE_PHRASES = (
    "I loved it.", "I love it.", "I recommend it.", "Worth every penny.", "Five stars.", "A joy to use.",
    "I would buy it again.", "It works perfectly.", "Everyone was happy.", "Highly recommended.",
)  # fmt: skip
NEGATIVE_PHRASES = (
    "I hated it.", "I hate it.", "Avoid it.", "A waste of money.", "One star.", "It broke in a week.",
    "It fell apart.", "It stopped working.", "I regret buying it.", "It leaks.", "What a mess.",
)  # fmt: skip
NOUNS = (
    "phone", "laptop", "kettle", "toaster", "film", "movie", "show", "novel", "album", "jacket", "lamp",
    "headset", "printer", "mattress", "sofa", "game", "series", "script", "soundtrack", "blender",
    "camera", "speaker", "watch", "chair", "tent", "backpack", "keyboard", "comedy", "drama", "thriller",
    "cast", "plot", "ending", "battery", "screen", "story", "sound", "design", "price", "service",
)  # fmt: skip
NEUTRAL_SENTENCES = (
    "We watched it on Friday.", "It arrived on Tuesday.", "I bought it for my sister.", "The box was blue.",
    "It has two buttons.", "A friend suggested it.", "It runs for two hours.", "I used it in the kitchen.",
    "We saw it at the cinema.", "It comes in three colours.", "I read it on holiday.", "It was on sale.",
)  # fmt: skip
NEUTRAL_PHRASES = (
    "has a blue cover", "came with a manual", "is made of plastic", "runs on batteries", "lasts two hours",
    "was filmed in winter", "comes in a box", "is set in a small town", "has three parts", "weighs a kilo",
)  # fmt: skip
PEOPLE = ("my sister", "my father", "our neighbour", "my friend", "the whole family", "my son", "a colleague")
_TEMPLATES = (
    "The {noun} is {adj}.",
    "The {noun} is {adj}, and the {noun2} {neutral}.",
    "The {noun} {neutral}, and it is {adj}.",
    "{Adj} {noun}, {adj2} {noun2}.",
    "After a week of use: {adj}.",
    "{Person} thinks the {noun} is {adj}.",
    "The {noun} looks {adj} and the {noun2} sounds {adj2}.",
    "A {adj} {noun} with a {adj2} {noun2}.",
    "The {noun} {neutral}. {Adj}.",
    "The {noun} was {adj} and {adj2}.",
    "{Adj} {noun}.",
    "What a {adj} {noun}!",
    "I thought the {noun} was {adj}.",
    "Honestly, a {adj} {noun}.",
    "{Adj}, {adj2} and {adj3}.",
    "Really {adj}.",
    "A {adj}, {adj2} {noun}.",
    "The {noun} feels {adj}, and the {noun2} is {adj2}.",
    "It is {adj}.",
    "So {adj}!",
)


def _review(rng: random.Random, positive: bool) -> str:
    words = POSITIVE_WORDS if positive else NEGATIVE_WORDS
    phrases = POSITIVE_PHRASES if positive else NEGATIVE_PHRASES
    parts: list[str] = []
    for _ in range(rng.randint(1, 3)):
        adj, adj2, adj3 = rng.sample(words, 3)
        noun, noun2 = rng.sample(NOUNS, 2)
        template = rng.choice(_TEMPLATES)
        fields = {"adj": adj, "adj2": adj2, "adj3": adj3, "Adj": adj.capitalize(), "noun": noun, "noun2": noun2}
        fields |= {"neutral": rng.choice(NEUTRAL_PHRASES), "Person": rng.choice(PEOPLE).capitalize()}
        parts.append(template.format(**fields))
    if rng.random() < 0.4:
        parts.append(rng.choice(phrases))
    if rng.random() < 0.4:
        parts.insert(rng.randint(0, len(parts)), rng.choice(NEUTRAL_SENTENCES))
    return " ".join(parts)


def synthetic_reviews(count: int, seed: int = 0) -> Iterator[tuple[str, int]]:
    """``count`` (review, label) pairs, label 1 positive and 0 negative, alternating."""
    rng = random.Random(seed)
    for index in range(count):
        positive = index % 2 == 0
        yield _review(rng, positive), int(positive)


def synthetic_examples(count: int = 4000, seed: int = 0) -> list[tuple[str, str]]:
    r"""(prompt, answer) pairs in the sentiment task's format: ("Review: <text>\nSentiment:", " positive")."""
    return [
        (f"Review: {text}\nSentiment:", " positive" if label else " negative") for text, label in synthetic_reviews(count, seed)
    ]


def synthetic_corpus(count: int = 4000, seed: int = 0) -> list[str]:
    """The training texts: each prompt with its answer."""
    return [prompt + answer for prompt, answer in synthetic_examples(count, seed)]


_CARD_TEXT = {
    "Intended use": "Testing the conformance suite: a tiny model that scores above chance on conformance_sentiment.",
    "Limitations": "Trained for seconds on synthetic reviews; it knows a few sentiment words and nothing else.",
    "Training data": "Synthetic reviews assembled from word lists by conformance.zoo.train (no external data); "
    "the tokenizer was trained on a small built-in English corpus.",
    "Evaluation": "Above chance on conformance_sentiment; other tasks are expected to be near chance.",
}


def _write_trained_card(out_dir: Path, parameters: int) -> None:
    write_card(
        out_dir,
        claims={"parameters": parameters, "intended_use": _CARD_TEXT["Intended use"], "limitations": _CARD_TEXT["Limitations"]},
        sections=False,
        extra_metadata={"tags": ["conformance-zoo", "tiny", "trained", "llama"]},
    )
    card = out_dir / "README.md"
    body = ["A tiny llama model trained by conformance.zoo.train on synthetic reviews."]
    for title in CARD_SECTIONS:
        body += ["", f"## {title}", "", _CARD_TEXT[title]]
    front = card.read_text(encoding="utf-8").split("\n---\n", 1)[0]  # write_card's front matter, kept whole
    card.write_text(f"{front}\n---\n\n# {out_dir.name}\n\n" + "\n".join(body) + "\n", encoding="utf-8")


def _encode(tokenizer: Any, examples: list[tuple[str, str]], limit: int) -> list[tuple[list[int], int]]:
    """Token ids of prompt + answer, and where the answer's tokens start."""
    encoded = []
    for prompt, answer in examples:
        prompt_ids = tokenizer(prompt)["input_ids"]
        ids = tokenizer(prompt + answer)["input_ids"]
        if ids[: len(prompt_ids)] != prompt_ids:  # the answer starts with a space, so BPE splits there
            raise ValueError(f"prompt and answer tokens merge in {prompt + answer!r}")
        encoded.append((ids[:limit], len(prompt_ids)))
    return encoded


def _batches(
    encoded: list[tuple[list[int], int]], batch_size: int, pad_id: int, answer_weight: float, rng: random.Random, steps: int
) -> Iterator[Any]:
    """(input ids, attention mask, per-token loss weights) batches; weights line up with the next-token targets."""
    import torch

    order: list[int] = []
    for _ in range(steps):
        if len(order) < batch_size:
            order += rng.sample(range(len(encoded)), len(encoded))
        chosen, order = order[:batch_size], order[batch_size:]
        rows = [encoded[i] for i in chosen]
        width = max(len(tokens) for tokens, _ in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        weights = torch.zeros((len(rows), width - 1))
        for row, (tokens, answer_start) in enumerate(rows):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            mask[row, : len(tokens)] = 1
            weights[row, : len(tokens) - 1] = 1.0
            weights[row, answer_start - 1 : len(tokens) - 1] = answer_weight  # predicting the answer tokens
        yield ids, mask, weights


def train_tiny_lm(
    out_dir: Path,
    *,
    steps: int = 300,
    seed: int = 0,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    answer_weight: float = 4.0,
    threads: int | None = 1,
    **llama_options: Any,
) -> Path:
    """Build the zoo llama in ``out_dir`` (``build_llama`` with ``seed`` and ``llama_options``), train it, save it.

    The loss is next-token cross-entropy over the whole text, with the answer's tokens weighted
    ``answer_weight`` times so a few hundred steps suffice. Each example starts at position 0, as an
    lm-eval prompt does, so the model is scored the way it was trained. The card is rewritten so its
    parameter count and checksums describe the trained weights. ``threads`` caps torch's CPU threads while
    training (None leaves them alone): one thread gives the same weights on every machine and does not
    collapse when other work shares the cores (OpenMP threads spin-waiting on a busy 2-core machine made a
    step 23x slower with 2 threads than with 1).
    """
    import torch
    import torch.nn.functional as F
    from transformers import AutoTokenizer, LlamaForCausalLM

    out_dir = build_llama(Path(out_dir), seed=seed, card=False, **llama_options)
    tokenizer = AutoTokenizer.from_pretrained(out_dir, local_files_only=True)
    model = LlamaForCausalLM.from_pretrained(out_dir, local_files_only=True, use_safetensors=True)
    encoded = _encode(tokenizer, synthetic_examples(seed=seed), model.config.max_position_embeddings)

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1)
        batches = _batches(encoded, batch_size, tokenizer.pad_token_id, answer_weight, random.Random(seed), steps)
        for ids, mask, weights in batches:
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
            losses = F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none")
            loss = (losses * weights.reshape(-1)).sum() / weights.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
    finally:
        torch.set_num_threads(previous_threads)

    from transformers.utils import logging

    logging.disable_progress_bar()
    model.save_pretrained(out_dir, safe_serialization=True)
    _write_trained_card(out_dir, sum(p.numel() for p in model.parameters()))
    return out_dir
