"""The four kinds of model the runtime rules know, and how config.json says which one a model is.

A kind decides the Auto class a backend loads and what each runtime rule does with the model:

| kind                 | what it is         | transformers class          | forward output             |
|----------------------|--------------------|-----------------------------|----------------------------|
| `causal`             | decoder-only LM    | AutoModelForCausalLM        | next-token logits          |
| `encoder`            | encoder-only       | AutoModel (the bare encoder)| last hidden state          |
| `seq2seq`            | encoder-decoder LM | AutoModelForSeq2SeqLM       | decoder logits             |
| `image-text-to-text` | multimodal LM      | AutoModelForImageTextToText | next-token logits (text)   |

The names `causal` and `encoder` are the ones result documents have always carried, so an older document
still reads as it did. The choice (`model_kind`) reads config.json only and imports neither torch nor
transformers:

1. a class in `architectures` that transformers' own auto mapping for the family names as one of its
   heads (`conformance.families`' `head_classes`: LlavaForConditionalGeneration is llava's
   image-text-to-text class, T5ForConditionalGeneration t5's seq2seq one); a class that is several heads
   at once (Gemma 3's) is image-text-to-text before seq2seq before causal;
2. else a class-name suffix that names one kind (`ForCausalLM`, `ForMaskedLM`, `ForSeq2SeqLM`,
   `ForImageTextToText`, `ForVision2Seq`, `EncoderModel`; `LMHeadModel` is causal unless the config is
   `is_encoder_decoder`, as T5's old `T5WithLMHeadModel`), when the family has that head (Fuyu's
   `FuyuForCausalLM` is image-text-to-text in transformers);
3. else (`ForConditionalGeneration`, a bare `Model`, no `architectures`): the family's one head when it
   has one; an image-text-to-text head with a `vision_config` or a `ForConditionalGeneration` class;
   `is_encoder_decoder` (absent keys take the family's default, so T5 without the key is still
   encoder-decoder); a seq2seq head without a causal one; without a family entry, a `vision_config`
   beside a `text_config`; an encoder family (BERT and its kin); causal otherwise, as it always was.
"""

from __future__ import annotations

from typing import Any

from ..families import family, with_family_defaults

CAUSAL = "causal"
ENCODER = "encoder"
SEQ2SEQ = "seq2seq"
IMAGE_TEXT_TO_TEXT = "image-text-to-text"

# kind -> the words a reason or a README uses for it.
KIND_NAMES: dict[str, str] = {
    CAUSAL: "decoder-only",
    ENCODER: "encoder-only",
    SEQ2SEQ: "encoder-decoder",
    IMAGE_TEXT_TO_TEXT: "image-text-to-text",
}
# Kinds that generate text (greedy generation, speed, tasks apply); an encoder has no LM head.
GENERATIVE_KINDS = frozenset({CAUSAL, SEQ2SEQ, IMAGE_TEXT_TO_TEXT})

ENCODER_MODEL_TYPES = frozenset(
    {"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta", "mpnet", "camembert", "modernbert"}
)
# Class-name suffixes that name one kind; checked in order (ForCausalLM before LMHeadModel).
_SUFFIX_KINDS: tuple[tuple[str, str], ...] = (
    ("ForCausalLM", CAUSAL),
    ("ForImageTextToText", IMAGE_TEXT_TO_TEXT),
    ("ForVision2Seq", IMAGE_TEXT_TO_TEXT),
    ("ForSeq2SeqLM", SEQ2SEQ),
    ("ForMaskedLM", ENCODER),
    ("EncoderModel", ENCODER),
)
# The family table's heads (`conformance.families`, from transformers' auto mappings) as kinds.
HEAD_KINDS: dict[str, str] = {
    "causal-lm": CAUSAL,
    "seq2seq-lm": SEQ2SEQ,
    "masked-lm": ENCODER,
    "image-text-to-text": IMAGE_TEXT_TO_TEXT,
}
MAX_ARCHITECTURES = 16  # names read from `architectures` (a real config lists one)


def kind_name(kind: str) -> str:
    """The words for `kind` ("encoder-decoder" for seq2seq); an unknown kind is returned as it is."""
    return KIND_NAMES.get(kind, kind)


def _architecture_kinds(architectures: list[str], encoder_decoder: bool) -> set[str]:
    """Kinds the class names' suffixes name (empty when none does: ForConditionalGeneration, a bare Model)."""
    kinds: set[str] = set()
    for name in architectures:
        suffix_kind = next((kind for suffix, kind in _SUFFIX_KINDS if name.endswith(suffix)), None)
        if suffix_kind is None and name.endswith("LMHeadModel"):
            suffix_kind = SEQ2SEQ if encoder_decoder else CAUSAL
        if suffix_kind is not None:
            kinds.add(suffix_kind)
    return kinds


def _preferred(kinds: set[str]) -> str:
    """One kind of several a family's class serves (Gemma 3's is both its causal-LM and its image-text-to-text class)."""
    return next(kind for kind in (IMAGE_TEXT_TO_TEXT, SEQ2SEQ, CAUSAL, ENCODER) if kind in kinds)


def model_kind(config: dict[str, Any]) -> str:
    """The kind (CAUSAL, ENCODER, SEQ2SEQ or IMAGE_TEXT_TO_TEXT) of the model config.json describes.

    Args:
        config: config.json as read (a dict; bad values are ignored, never raised on).

    Returns:
        The kind, chosen as the module docstring says; CAUSAL when nothing says otherwise.
    """
    raw = config.get("architectures")
    names = [name for name in raw[:MAX_ARCHITECTURES] if isinstance(name, str)] if isinstance(raw, list) else []
    written_type = config.get("model_type")
    model_type = written_type if isinstance(written_type, str) else None  # a list or dict names no family
    entry = family(model_type) if model_type is not None else None
    try:  # absent keys take the family's defaults (T5Config's is_encoder_decoder is True; nested configs too)
        filled = with_family_defaults(config)
    except (TypeError, ValueError):
        filled = dict(config)
    encoder_decoder = filled.get("is_encoder_decoder") is True
    vision = isinstance(filled.get("vision_config"), dict)
    head_classes: dict[str, str] = dict(getattr(entry, "head_classes", None) or {}) if entry is not None else {}
    head_kinds = {HEAD_KINDS[head] for head in (entry.heads if entry is not None else ()) if head in HEAD_KINDS}
    # 1. transformers' own auto mapping names the class: its kind is the head that maps to it.
    exact = {HEAD_KINDS[head] for head, name in head_classes.items() if head in HEAD_KINDS and name in names}
    if exact:
        return _preferred(exact)
    # 2. a class-name suffix names one kind, and the family has that head (or the table does not say).
    named = _architecture_kinds(names, encoder_decoder)
    if len(named) == 1:
        kind = named.pop()
        if not head_kinds or kind in head_kinds or kind == ENCODER:
            return kind
    # 3. the family's heads, the config's own flags, then the encoder families; causal otherwise.
    if len(head_kinds) == 1:
        return head_kinds.pop()
    if IMAGE_TEXT_TO_TEXT in head_kinds and (vision or any(name.endswith("ForConditionalGeneration") for name in names)):
        return IMAGE_TEXT_TO_TEXT
    if encoder_decoder:  # Whisper too: AutoModelForSeq2SeqLM then refuses it by name, never a half model
        return SEQ2SEQ
    if SEQ2SEQ in head_kinds and CAUSAL not in head_kinds:
        return SEQ2SEQ
    if entry is None and vision and isinstance(filled.get("text_config"), dict):
        return IMAGE_TEXT_TO_TEXT
    if model_type in ENCODER_MODEL_TYPES or head_kinds == {ENCODER}:
        return ENCODER
    return CAUSAL
