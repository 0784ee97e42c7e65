"""generation_config.json judged the way transformers 5.24 validates it, without importing transformers.

`read_generation_settings` reads the file (bounded, through `Candidate.read_json`); `validate_generation_settings`
judges its values with the rules of transformers' `GenerationConfig.__init__` and `GenerationConfig.validate`
(generation/configuration_utils.py), mirrored here as tables:

- **errors** are what transformers refuses: `GenerationConfig.from_pretrained` (which a model's
  `from_pretrained` calls) raises, so the model does not load. `early_stopping` not a bool or "never",
  `max_new_tokens <= 0`, an unknown `cache_implementation`, `assistant_ensemble_weight` outside (0, 1), a
  `compile_config` (JSON cannot hold a `CompileConfig`), a bad `watermarking_config`, `num_return_sequences`
  that greedy search or the beam count cannot give, every forced token also suppressed, a `generate()`
  argument (`streamer`, `logits_processor`, ...) written into the file, a key naming what the load itself
  calls (`validate`, `to_dict`, `update`, ...: `__init__` sets every key as an attribute), and a value
  validate() compares with a number that is not one (`max_new_tokens: "5"`, a list `pad_token_id`: TypeError).
- **warnings** are validate's "minor issues" (`validate(strict=True)` raises on them; a load logs "The
  following generation flags are not valid and may be ignored"): a sampling parameter set while
  `do_sample` is not true, a beam parameter with one beam, a negative `pad_token_id`, cache settings with
  `use_cache` false, extra outputs without `return_dict_in_generate`.

A key the file leaves out is None in transformers 5.24's `GenerationConfig` (its defaults, temperature 1.0,
top_k 50, ..., are filled in only at generate time and never trip a rule), so an absent key is None here.
Python's own semantics are kept where transformers relies on them: `do_sample is not True` (the string "yes"
is not true), `1 == True`, `nan != 1.0`.

This suite adds three rules of its own, and its messages say so: a value of the wrong JSON type (temperature
"0.7", do_sample "yes", num_beams 2.5, NaN or Infinity) is an error naming the key (transformers keeps it as
written and fails or misbehaves only when generating); a token id that is not an int or a list of ints is an
error; `max_length` beyond the model's context, or `max_new_tokens` filling all of it, is a warning
(transformers compares lengths only at generate time).

The file is untrusted: only the fixed keys named here are looked up (a file of 100,000 keys costs no more
than one of ten), nothing recurses into a value, and a value shown in a message is rendered at most
`MAX_SHOWN_CHARS` characters, at most three levels deep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeGuard

from ..candidate import Candidate

GENERATION_CONFIG_FILE = "generation_config.json"
MAX_GENERATION_CONFIG_BYTES = 1024 * 1024  # real ones are < 2 KB
MAX_SHOWN_CHARS = 80  # a value in a message, rendered
MAX_SHOWN_ITEMS = 8  # items of a list or dict rendered before "..."
MAX_SHOWN_DEPTH = 3
MAX_LIST_ITEMS = 10_000  # items of a list examined (real id lists hold 1-100); a longer one is an error here
MAX_SHOWN_INT_BITS = 64  # a larger int is shown by its size (str() of a 5,000-digit int raises)

# transformers 5.24 generation/configuration_utils.py: ALL_CACHE_IMPLEMENTATIONS + ("paged",)
CACHE_IMPLEMENTATIONS = (
    "static", "offloaded_static", "sliding_window", "hybrid", "hybrid_chunked", "offloaded_hybrid",
    "offloaded_hybrid_chunked", "dynamic", "offloaded", "quantized", "paged",
)
EARLY_STOPPING_VALUES = (None, True, False, "never")
# validate() step 3: arguments of generate() that a config must not hold
GENERATE_ONLY_ARGUMENTS = (
    "logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "synced_gpus", "assistant_model",
    "streamer", "negative_prompt_ids", "negative_prompt_attention_mask",
)
# Keys the load cannot take: GenerationConfig.__init__ sets every unknown key as an attribute (unless
# `_from_model_config`), so these replace what from_pretrained then calls (validate, update, to_dict, ...) or
# cannot be set at all (the dunders); found by loading {name: "x"} for each name of the class.
LOAD_PATH_NAMES = (
    "__class__", "__dict__", "__weakref__", "dict_dtype_to_str", "to_dict", "to_diff_dict", "to_json_string", "update",
    "validate",
)
EXTRA_OUTPUT_FLAGS = ("output_attentions", "output_hidden_states", "output_scores", "output_logits")
CACHE_SETTINGS = ("cache_implementation", "cache_config")  # ignored with use_cache false
# WatermarkingConfig.__init__'s parameters and defaults (a dict watermarking_config is built from them)
WATERMARKING_DEFAULTS: dict[str, Any] = {
    "greenlist_ratio": 0.25, "bias": 2.0, "hashing_key": 15485863, "seeding_scheme": "lefthash", "context_width": 1,
}
WATERMARKING_SCHEMES = ("selfhash", "lefthash")

# validate() 2.1: flags only sampling uses, each with the value that does not count as set (None: any value counts)
SAMPLING_ONLY: dict[str, float | int | None] = {
    "temperature": 1.0, "top_p": 1.0, "min_p": None, "top_h": None, "typical_p": 1.0, "top_k": 50,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
}
# validate() 2.2: flags only beam search uses, with the value that does not count as set
BEAM_ONLY: dict[str, Any] = {"early_stopping": False, "length_penalty": 1.0}
# every attribute validate() can list as a minor issue
MINOR_RULES = (*SAMPLING_ONLY, *BEAM_ONLY, "pad_token_id", *CACHE_SETTINGS, *EXTRA_OUTPUT_FLAGS)

SAMPLING_MESSAGE = (
    "`do_sample` is not set to `True`. However, `{name}` is set to `{value}` -- this flag is only used in "
    "sample-based generation modes. You should set `do_sample=True` or unset `{name}`."
)
BEAM_MESSAGE = (
    "`num_beams` is set to {beams}. However, `{name}` is set to `{value}` -- this flag is only used in "
    "beam-based generation modes. You should set `num_beams>1` or unset `{name}`."
)
# keys validate() compares with a number: any other JSON type raises TypeError at load (suppress_tokens, put in
# a set, raises on a number instead)
COMPARED_AT_LOAD = ("max_new_tokens", "assistant_ensemble_weight", "pad_token_id", "num_return_sequences")
LOAD_TYPE_ERROR = "(transformers fails to load the file: validate() raises TypeError on it)"
OWN_RULE = "(a rule of this suite: transformers keeps the value as written and fails or misbehaves only when generating)"

# The JSON type each known key must have (this suite's rule); null is always allowed (transformers' None).
BOOL_KEYS = (
    "do_sample", "use_cache", "renormalize_logits", "remove_invalid_values", "token_healing", "is_assistant",
    "disable_compile", "low_memory", "use_mtp", "return_dict_in_generate", *EXTRA_OUTPUT_FLAGS,
)
INT_KEYS = (
    "max_length", "max_new_tokens", "min_length", "min_new_tokens", "num_beams", "top_k", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "num_return_sequences", "num_assistant_tokens", "prompt_lookup_num_tokens",
    "max_matching_ngram_size", "assistant_early_exit", "assistant_lookbehind", "target_lookbehind",
    "max_cache_len", "num_beam_groups", "prefill_chunk_size",
)
NUMBER_KEYS = (
    "temperature", "top_p", "min_p", "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff", "repetition_penalty",
    "encoder_repetition_penalty", "length_penalty", "guidance_scale", "max_time", "assistant_confidence_threshold",
    "assistant_ensemble_weight", "diversity_penalty", "penalty_alpha",
)
TOKEN_ID_KEYS = ("bos_token_id", "eos_token_id", "decoder_start_token_id", "forced_bos_token_id", "forced_eos_token_id")
# pad_token_id is one id: validate() compares it with 0, so a list raises TypeError at load
TOKEN_LIST_KEYS = ("suppress_tokens", "begin_suppress_tokens")


@dataclass
class GenerationSettings:
    """generation_config.json as read from the model folder.

    Attributes:
        present: the folder holds generation_config.json.
        data: its parsed object; None when absent or unreadable.
        error: why it could not be used (unreadable, unsafe, over `MAX_GENERATION_CONFIG_BYTES`, not JSON,
            not a JSON object); None when read.
    """

    present: bool
    data: dict[str, Any] | None = None
    error: str | None = None


def read_generation_settings(candidate: Candidate) -> GenerationSettings:
    """Read the candidate's generation_config.json, at most `MAX_GENERATION_CONFIG_BYTES`; never raises.

    Transformers falls back to a generation config made from config.json when this file is not valid JSON;
    the suite reports the file instead (`error`), since the model author meant it to be read.
    """
    if GENERATION_CONFIG_FILE not in set(candidate.file_names()):
        return GenerationSettings(present=False)
    try:
        data = candidate.read_json(GENERATION_CONFIG_FILE, MAX_GENERATION_CONFIG_BYTES)
    except Exception as exc:  # noqa: BLE001 - any failure to read is this file's error, never the run's
        return GenerationSettings(present=True, error=str(exc)[:500] or type(exc).__name__)
    if not isinstance(data, dict):
        return GenerationSettings(present=True, error=f"{GENERATION_CONFIG_FILE} is not a JSON object but {_json_kind(data)}")
    return GenerationSettings(present=True, data=data)


@dataclass
class GenerationFindings:
    """What `validate_generation_settings` found.

    Attributes:
        errors: what transformers refuses at load (or this suite's type rules), each "`attr`: message".
        warnings: attribute -> message: validate's minor issues, and this suite's context rule.
    """

    errors: list[str] = field(default_factory=list)
    warnings: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The findings as plain JSON: {"errors": [...], "warnings": {attr: message}}."""
        return {"errors": list(self.errors), "warnings": dict(self.warnings)}


def validate_generation_settings(data: dict[str, Any], context_length: int | None) -> GenerationFindings:
    """Judge generation_config.json's values as transformers 5.24's `GenerationConfig` does, plus this suite's rules.

    Args:
        data: the parsed generation_config.json (untrusted: any JSON values, any number of keys).
        context_length: the model's context in positions, or None when unknown (the length rule is then skipped).

    Returns:
        The findings; at most one error per attribute (transformers' own first, then the type rule).
    """
    errors: dict[str, str] = {}
    warnings: dict[str, str] = {}
    if not isinstance(data, dict):
        return GenerationFindings(errors=[f"`{GENERATION_CONFIG_FILE}`: must hold a JSON object, not {_json_kind(data)}"])
    values = {key: data.get(key) for key in _examined_keys()}
    _single_values(values, errors, warnings)
    _combinations(values, _output_flags(data), errors, warnings)
    _unknown_keys(data, errors)
    _types(values, errors)
    _context(values, context_length, warnings)
    return GenerationFindings(errors=[f"`{name}`: {message}" for name, message in errors.items()], warnings=warnings)


def _examined_keys() -> tuple[str, ...]:
    """Every key a rule reads: a fixed set, so the file's own key count never matters."""
    return (
        *BOOL_KEYS, *INT_KEYS, *NUMBER_KEYS, *TOKEN_ID_KEYS, "pad_token_id", *TOKEN_LIST_KEYS, "early_stopping",
        "cache_implementation", "cache_config", "compile_config", "watermarking_config", "_from_model_config",
    )


def _single_values(values: dict[str, Any], errors: dict[str, str], warnings: dict[str, str]) -> None:
    """validate() 1.1-1.4: each attribute alone (errors), and a negative pad id (a minor issue)."""
    early_stopping = values["early_stopping"]
    if not _hashable(early_stopping) or early_stopping not in EARLY_STOPPING_VALUES:
        errors["early_stopping"] = f"must be a boolean or 'never', but is {_show(early_stopping)}."
    max_new_tokens = values["max_new_tokens"]
    if _is_number(max_new_tokens) and max_new_tokens <= 0:
        errors["max_new_tokens"] = f"must be greater than 0, but is {_show(max_new_tokens)}."
    weight = values["assistant_ensemble_weight"]
    if _is_number(weight) and not 0.0 < weight < 1.0:
        errors["assistant_ensemble_weight"] = f"must be in the open interval `(0.0, 1.0)`, but is {_show(weight)}."
    pad = values["pad_token_id"]
    if _is_number(pad) and pad < 0:
        warnings["pad_token_id"] = (
            f"`pad_token_id` should be positive but got {_show(pad)}. This will cause errors when batch generating, "
            "if there is padding."
        )
    cache = values["cache_implementation"]
    if cache is not None and cache not in CACHE_IMPLEMENTATIONS:
        errors["cache_implementation"] = (
            f"Invalid `cache_implementation` ({_show(cache)}). Choose one of: {', '.join(CACHE_IMPLEMENTATIONS)}."
        )
    if values["compile_config"] is not None:
        errors["compile_config"] = (
            f"must be an instance of `CompileConfig`, which JSON cannot hold; transformers refuses "
            f"{_json_kind(values['compile_config'])} at load."
        )
    watermark_error = _watermarking_error(values["watermarking_config"])
    if watermark_error is not None:
        errors["watermarking_config"] = watermark_error


def _watermarking_error(config: Any) -> str | None:
    """WatermarkingConfig.from_dict then validate(): why transformers refuses `config`, or None."""
    if config is None:
        return None
    if not isinstance(config, dict):
        return f"must be an object of WatermarkingConfig's keys, not {_json_kind(config)}."
    unknown = next((key for key in config if key not in WATERMARKING_DEFAULTS), None)
    if unknown is not None:
        return f"WatermarkingConfig has no parameter {_show(unknown)} (it takes {', '.join(WATERMARKING_DEFAULTS)})."
    settings = {**WATERMARKING_DEFAULTS, **config}
    if not _hashable(settings["seeding_scheme"]) or settings["seeding_scheme"] not in WATERMARKING_SCHEMES:
        return f"`seeding_scheme` should be one of {WATERMARKING_SCHEMES} but found {_show(settings['seeding_scheme'])}."
    ratio, width = settings["greenlist_ratio"], settings["context_width"]
    if not _is_number(ratio) or not 0.0 <= ratio <= 1.0:
        return f"`greenlist_ratio` should be in range between 0.0 and 1.0 but found {_show(ratio)}."
    if not _is_number(width) or not width >= 1:
        return f"`context_width` should be a positive integer but found {_show(width)}."
    return None


def _output_flags(data: dict[str, Any]) -> dict[str, Any]:
    """The extra-output flags validate() reads, with their values: the class's four, or the file's own list.

    A file may replace the class attribute `extra_output_flags` (a key is set as an attribute unless
    `_from_model_config`); a list of names is then what validate() iterates.
    """
    flags = data.get("extra_output_flags")
    if data.get("_from_model_config") or not _short_list(flags) or not all(isinstance(flag, str) for flag in flags):
        flags = EXTRA_OUTPUT_FLAGS
    return {name: data.get(name) for name in flags}


def _combinations(values: dict[str, Any], output_flags: dict[str, Any], errors: dict[str, str], warnings: dict[str, str]) -> None:
    """validate() 2.1-2.7: attributes that contradict one another."""
    if values["do_sample"] is not True:
        for name, neutral in SAMPLING_ONLY.items():
            value = values[name]
            if value is not None and (neutral is None or value != neutral):
                warnings[name] = SAMPLING_MESSAGE.format(name=name, value=_show(value))
    beams = values["num_beams"]
    if beams is None or beams == 1:
        for name, neutral in BEAM_ONLY.items():
            value = values[name]
            if value is not None and (value is not neutral if isinstance(neutral, bool) else value != neutral):
                warnings[name] = BEAM_MESSAGE.format(beams=_show(beams), name=name, value=_show(value))
    sequences = values["num_return_sequences"]
    if _is_number(sequences) and sequences > 1:
        if beams is None or beams == 1:
            if not values["do_sample"]:
                errors["num_return_sequences"] = (
                    "Greedy methods (do_sample != True) without beam search do not support `num_return_sequences` "
                    f"different than 1 (got {_show(sequences)})."
                )
        elif _is_number(beams) and sequences > beams:
            errors["num_return_sequences"] = f"({_show(sequences)}) has to be smaller or equal to `num_beams` ({_show(beams)})."
    if values["use_cache"] is False:
        for name in CACHE_SETTINGS:
            if values[name] is not None:
                warnings[name] = (
                    f"You have not set `use_cache` to `True`, but {name} is set to {_show(values[name])}. "
                    f"{name} will have no effect."
                )
    if values["return_dict_in_generate"] is not True:
        for name, value in output_flags.items():
            if value is True:
                warnings[name] = (
                    f"`return_dict_in_generate` is NOT set to `True`, but `{name}` is. When `return_dict_in_generate` "
                    f"is not `True`, `{name}` is ignored."
                )
    _forced_and_suppressed(values, errors)


def _forced_and_suppressed(values: dict[str, Any], errors: dict[str, str]) -> None:
    """validate() 2.7: every forced bos/eos token also suppressed sets all logits to -inf (transformers refuses it)."""
    suppressed = values["suppress_tokens"]
    if not _short_list(suppressed) or not all(_hashable(item) for item in suppressed):
        return  # absent, or a shape the type rule reports
    suppressed_set = set(suppressed)
    for name in ("forced_bos_token_id", "forced_eos_token_id"):
        forced = values[name]
        if isinstance(forced, int):
            forced_set = {forced}
        elif _short_list(forced) and all(_hashable(item) for item in forced):
            forced_set = set(forced)
        else:
            continue
        if forced_set and forced_set <= suppressed_set:
            errors[name] = (
                f"Every token in `{name}` ({_show(sorted(forced_set, key=repr))}) is also in `suppress_tokens`: all "
                "logits become -inf at the forcing step and generation crashes."
            )


def _unknown_keys(data: dict[str, Any], errors: dict[str, str]) -> None:
    """validate() 3 (a generate() argument written into the file) and the names the load cannot take.

    Transformers keeps unknown keys as attributes only when `_from_model_config` is not truthy, so only then
    does it see (and refuse) them.
    """
    if data.get("_from_model_config"):
        return
    for name in LOAD_PATH_NAMES:
        if name in data:
            errors[name] = (
                f"names an attribute of `GenerationConfig` that loading it sets over or calls; transformers fails to "
                f"load the file ({_show(name)} cannot be a key)."
            )
    flags = data.get("extra_output_flags", EXTRA_OUTPUT_FLAGS)
    attributes = set(_examined_keys())  # an attribute getattr() finds: one transformers sets, or a key of the file
    names_flags = _short_list(flags) and all(
        isinstance(flag, str) and (flag in attributes or flag in data) for flag in flags
    )
    if "extra_output_flags" in data and data.get("return_dict_in_generate") is not True and not names_flags:
        errors["extra_output_flags"] = (
            "replaces the class's list of output flags, which validate() iterates and reads; transformers fails to "
            f"load the file with it set to {_show(flags)}."
        )
    for name in GENERATE_ONLY_ARGUMENTS:
        if name in data:
            errors[name] = (
                f"Argument `{name}` is not a valid argument of `GenerationConfig`. It should be passed to `generate()` "
                "(or a pipeline) directly."
            )


def _types(values: dict[str, Any], errors: dict[str, str]) -> None:
    """This suite's rule: each known key holds the JSON type generation needs (null always allowed)."""
    for name in BOOL_KEYS:
        _require(values[name], name, isinstance(values[name], bool), "must be true or false", errors)
    for name in INT_KEYS:
        _require(values[name], name, type(values[name]) is int, "must be an integer", errors)
    for name in NUMBER_KEYS:
        value = values[name]
        finite = _is_number(value) and not isinstance(value, bool) and (not isinstance(value, float) or math.isfinite(value))
        _require(value, name, finite, "must be a finite number", errors)
    for name in TOKEN_ID_KEYS:
        holds = _is_ids(values[name], single_allowed=True)
        _require(values[name], name, holds, "must be a token id (an integer) or a list of them", errors)
    pad = values["pad_token_id"]
    _require(pad, "pad_token_id", type(pad) is int, "must be a token id (an integer)", errors)
    for name in TOKEN_LIST_KEYS:
        holds = _is_ids(values[name], single_allowed=False)
        _require(values[name], name, holds, "must be a list of token ids (integers)", errors)
    early_stopping = values["early_stopping"]
    holds = isinstance(early_stopping, bool) or early_stopping == "never"
    _require(early_stopping, "early_stopping", holds, 'must be true, false or "never"', errors)
    cache = values["cache_implementation"]
    _require(cache, "cache_implementation", isinstance(cache, str), "must be a string", errors)


def _require(value: Any, name: str, holds: bool, expected: str, errors: dict[str, str]) -> None:
    """Record a type error for `name` unless it is null, the type `holds`, or transformers already refused it.

    The message says whether transformers itself refuses the value (validate() compares it with a number
    and raises TypeError at load) or only this suite does.
    """
    if value is None or holds or name in errors:
        return
    if isinstance(value, list) and len(value) > MAX_LIST_ITEMS:
        errors[name] = f"holds {len(value)} items, more than the {MAX_LIST_ITEMS} this suite examines {OWN_RULE}."
        return
    refused = name in COMPARED_AT_LOAD and not _is_number(value) or name == "suppress_tokens" and not _settable(value)
    why = LOAD_TYPE_ERROR if refused else OWN_RULE
    errors[name] = f"{expected}, but is {_json_kind(value)} {_show(value)} {why}."


def _context(values: dict[str, Any], context_length: int | None, warnings: dict[str, str]) -> None:
    """This suite's rule: a length the model's context cannot hold (transformers checks lengths only when generating)."""
    if context_length is None:
        return
    max_length, max_new_tokens = values["max_length"], values["max_new_tokens"]
    if type(max_length) is int and max_length > context_length:
        warnings["max_length"] = (
            f"`max_length` is {max_length}, beyond the model's context of {context_length} positions: generation "
            "past the context runs out of positions (a rule of this suite)."
        )
    if type(max_new_tokens) is int and max_new_tokens >= context_length:
        warnings["max_new_tokens"] = (
            f"`max_new_tokens` is {max_new_tokens}, at or beyond the model's context of {context_length} positions, "
            "which leaves no position for the prompt (a rule of this suite)."
        )


def _is_number(value: Any) -> bool:
    """A value Python compares with numbers without TypeError: int, float, or bool (transformers relies on it)."""
    return isinstance(value, (int, float))


def _settable(value: Any) -> bool:
    """A value Python's set() takes: a string, a list of hashable items, or an object (its keys)."""
    return isinstance(value, (str, dict)) or _short_list(value) and all(_hashable(item) for item in value)


def _hashable(value: Any) -> bool:
    """A JSON value usable in a set: anything but a list or an object."""
    return not isinstance(value, (list, dict))


def _is_ids(value: Any, single_allowed: bool) -> bool:
    """An int (when `single_allowed`) or a list of ints; bools are not ids."""
    if single_allowed and type(value) is int:
        return True
    return _short_list(value) and all(type(item) is int for item in value)


def _short_list(value: Any) -> TypeGuard[list[Any]]:
    """A list of at most `MAX_LIST_ITEMS` items: the only lists a rule looks inside."""
    return isinstance(value, list) and len(value) <= MAX_LIST_ITEMS


def _json_kind(value: Any) -> str:
    """The JSON kind of a parsed value, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number" if not isinstance(value, float) or math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, dict):
        return f"an object of {len(value)} key{'' if len(value) == 1 else 's'}"
    return type(value).__name__


def _show(value: Any) -> str:
    """`value` as a message shows it: str() for scalars as transformers formats them, bounded in length and depth."""
    text = _render(value, 0)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _render(value: Any, depth: int) -> str:
    """A bounded rendering: strings cut to `MAX_SHOWN_CHARS`, `MAX_SHOWN_ITEMS` items, `MAX_SHOWN_DEPTH` levels."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return str(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= MAX_SHOWN_INT_BITS else f"<an integer of {value.bit_length()} bits>"
    if isinstance(value, str):
        return repr(value[:MAX_SHOWN_CHARS]) + ("..." if len(value) > MAX_SHOWN_CHARS else "")
    if isinstance(value, (list, dict)):
        if depth >= MAX_SHOWN_DEPTH:
            return "[...]" if isinstance(value, list) else "{...}"
        more = ", ..." if len(value) > MAX_SHOWN_ITEMS else ""
        if isinstance(value, dict):
            pairs = islice(value.items(), MAX_SHOWN_ITEMS)
            return "{" + ", ".join(f"{_render(key, depth + 1)}: {_render(item, depth + 1)}" for key, item in pairs) + more + "}"
        return "[" + ", ".join(_render(item, depth + 1) for item in value[:MAX_SHOWN_ITEMS]) + more + "]"
    return type(value).__name__
