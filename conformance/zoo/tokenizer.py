"""Train tiny tokenizers offline on a built-in English corpus.

The vocabulary size is always exactly ``vocab_size``: learning stops at ``vocab_size`` and, if the corpus
runs out of tokens to learn first (past about 1,300 BPE or 1,050 WordPiece tokens), the gap is filled with
``<reserved_N>`` special tokens, as Llama 3 reserves tokens. A ``vocab_size`` below the base alphabet
plus special tokens (260 for BPE, about 80 for WordPiece) is a ``ValueError``.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

TokenizerKind = Literal["bpe", "wordpiece"]

BPE_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
WORDPIECE_SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A release engineer checks every model before it is published.",
    "Small language models can still write surprisingly fluent sentences.",
    "The weather today is sunny with a light breeze from the west.",
    "She baked fresh bread and shared it with all of her neighbours.",
    "Trains leave the central station every fifteen minutes on weekdays.",
    "Our team measured latency, throughput and peak memory on each device.",
    "The museum opens at nine o'clock and closes late on Fridays.",
    "He forgot his umbrella, so he waited under the bridge for the rain to stop.",
    "Mathematics describes patterns; physics tests them against the world.",
    "Please remember to water the tomatoes before you leave for work.",
    "The library lends books, maps, music and even a few old telescopes.",
    "Children laughed as the kite climbed higher above the green hills.",
    "A careful reviewer reads the specification twice and the code three times.",
    "Coffee, tea or juice? Breakfast is served until half past ten.",
    "The orchestra tuned their instruments while the audience found their seats.",
    "Birds migrate south in autumn and return when the days grow longer.",
    "Never trust a file just because its name looks familiar.",
    "The committee approved the budget after a long and lively debate.",
    "Sailors once navigated by the stars, the sun and a trusty compass.",
    "This movie was wonderful, and I would happily watch it again.",
    "That restaurant was terrible: the soup was cold and the service slow.",
    "The new bicycle lane makes the morning commute safer for everyone.",
    "Volcanoes form where molten rock rises through cracks in the crust.",
    "Her garden is full of roses, lavender, mint and tall sunflowers.",
    "In 1969, astronauts first walked on the surface of the moon.",
    "Backups are boring until the day you desperately need one.",
    "The farmer sold apples, pears and plums at the Saturday market.",
    "Good documentation answers the question before anyone asks it.",
    "Snow covered the mountain pass, so the hikers turned back early.",
    "The detective noticed a muddy footprint beside the open window.",
    "Every benchmark should state its workload, hardware and units.",
    "My grandmother tells wonderful stories about her childhood by the sea.",
    "Electric cars are quiet, but their tyres still make a gentle hum.",
    "The recipe needs two eggs, a cup of flour and a pinch of salt.",
    "Students gathered in the hall to hear the visiting professor speak.",
    "A tiny random model is perfect for testing, useless for answers.",
    "Lighthouses warned ships about rocks hidden beneath the waves.",
    "The cat slept all afternoon in a warm patch of sunlight.",
    "Is it true that honey never spoils if it is stored properly?",
    "What a day! The parcel arrived at 08:45, two hours early (and slightly damp).",
    "Prices rose 3% in May; analysts had expected 2.5% or less.",
)

# Combinatorial templates add 10,000 sentences of varied words: enough for about 1,300 learned BPE tokens and
# 1,050 WordPiece tokens. Larger vocabularies are topped up with reserved tokens.
_SUBJECTS = (
    "the engineer",
    "a curious child",
    "my neighbour",
    "the old captain",
    "our teacher",
    "a quiet student",
    "the young doctor",
    "every gardener",
    "the baker",
    "a tired traveller",
)
_VERBS = ("found", "painted", "carried", "described", "repaired", "borrowed", "admired", "forgot", "measured", "photographed")
_OBJECTS = (
    "a silver key",
    "the wooden boat",
    "seven yellow lanterns",
    "an ancient map",
    "the broken clock",
    "twelve purple umbrellas",
    "a jar of honey",
    "the heavy suitcase",
    "three marble statues",
    "a bundle of letters",
)
_PLACES = (
    "in the kitchen",
    "beside the harbour",
    "under the staircase",
    "near the village square",
    "inside the greenhouse",
    "behind the observatory",
    "at the railway museum",
    "across the frozen lake",
    "on the northern balcony",
    "during the thunderstorm",
)


def corpus() -> Iterator[str]:
    """Yield the built-in training text: hand-written sentences, then templated ones."""
    yield from SENTENCES
    for subject, verb, obj, place in itertools.product(_SUBJECTS, _VERBS, _OBJECTS, _PLACES):
        yield f"{subject.capitalize()} {verb} {obj} {place}."


def _build_bpe(vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = [BPE_SPECIAL_TOKENS[k] for k in ("unk_token", "bos_token", "eos_token", "pad_token")]
    tokenizer = Tokenizer(models.BPE(unk_token=BPE_SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    # The full byte alphabet makes every string encodable, so <unk> is never produced.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    return tokenizer


def _build_wordpiece(vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    # tokenizers' WordPieceTrainer breaks frequency ties in hash-map order, so its vocabulary changes from
    # run to run. Ranking whole words and word endings ourselves keeps the zoo byte-for-byte reproducible.
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = Counter(word for text in corpus() for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in words for c in word})
    base = [*WORDPIECE_SPECIAL_TOKENS.values(), *chars, *(f"##{c}" for c in chars)]
    candidates: Counter[str] = Counter()
    for word, count in words.items():
        if len(word) > 1:
            candidates[word] += count
        for length in range(2, min(len(word), 5)):
            candidates[f"##{word[-length:]}"] += count
    ranked = sorted(candidates, key=lambda token: (-candidates[token], token))
    tokens = base + ranked[: max(0, vocab_size - len(base))]

    tokenizer = Tokenizer(
        models.WordPiece(
            {token: i for i, token in enumerate(tokens)},
            unk_token=WORDPIECE_SPECIAL_TOKENS["unk_token"],
            continuing_subword_prefix="##",
        )
    )
    tokenizer.add_special_tokens(list(WORDPIECE_SPECIAL_TOKENS.values()))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(t, tokens.index(t)) for t in ("[CLS]", "[SEP]")],
    )
    return tokenizer


def train_tokenizer(
    out_dir: Path,
    kind: TokenizerKind,
    vocab_size: int = 512,
    *,
    model_max_length: int | None = None,
) -> Path:
    """Train a ``kind`` tokenizer of exactly ``vocab_size`` tokens and save it in transformers layout.

    Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json into ``out_dir``.
    """
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    if kind == "bpe":
        tokenizer, special_tokens = _build_bpe(vocab_size), BPE_SPECIAL_TOKENS
    elif kind == "wordpiece":
        tokenizer, special_tokens = _build_wordpiece(vocab_size), WORDPIECE_SPECIAL_TOKENS
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected 'bpe' or 'wordpiece'")

    trained = tokenizer.get_vocab_size(with_added_tokens=True)
    if trained > vocab_size:
        raise ValueError(f"vocab_size={vocab_size} is below the {kind} base alphabet size ({trained})")
    # The corpus ran out of merges: fill up so model embedding rows and tokenizer ids agree exactly.
    tokenizer.add_special_tokens([AddedToken(f"<reserved_{i}>", special=True) for i in range(vocab_size - trained)])

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {} if model_max_length is None else {"model_max_length": model_max_length}
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special_tokens, **extra)
    fast.save_pretrained(str(out_dir))
    # transformers 5 no longer writes this file, but older loaders and card tools still look for it.
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=2) + "\n")
    return out_dir
