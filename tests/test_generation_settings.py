"""generation_config.json judged as transformers 5.24's GenerationConfig validates it (probes/generation_settings.py).

The agreement tests run transformers itself on every configuration: `GenerationConfig.from_dict` (what a
model's `from_pretrained` calls on generation_config.json), then `validate(strict=True)`, whose ValueError
lists each "minor issue" as "- `attr`: ...". A configuration transformers refuses must be an error here (one
not marked as this suite's own rule), and the attributes it lists must be exactly the warnings here.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.candidate import Candidate
from conformance.probes.generation_settings import (
    MAX_GENERATION_CONFIG_BYTES,
    MAX_LIST_ITEMS,
    MAX_SHOWN_CHARS,
    MINOR_RULES,
    OWN_RULE,
    GenerationFindings,
    read_generation_settings,
    validate_generation_settings,
)

transformers = pytest.importorskip("transformers")
GenerationConfig = transformers.GenerationConfig


@pytest.fixture(autouse=True)
def quiet_transformers() -> Iterator[None]:
    """Keep transformers' own logging ("The following generation flags are not valid ...") out of the output."""
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity(logging.CRITICAL + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    transformers_logging.set_verbosity(level)


def transformers_outcome(data: dict[str, Any]) -> tuple[bool, set[str]]:
    """(refused, minor-issue attributes): what transformers does with `data` as generation_config.json."""
    try:
        config = GenerationConfig.from_dict(data)
        hash(config)  # from_pretrained hashes the config it loaded (to_json_string): part of the load
        config.validate(strict=True)
    except ValueError as exc:
        if str(exc).startswith("GenerationConfig is invalid"):
            return False, set(re.findall(r"^- `(\w+)`", str(exc), re.MULTILINE))
        return True, set()
    except Exception:  # noqa: BLE001 - a TypeError or AttributeError at load refuses the file just the same
        return True, set()
    return False, set()


def transformers_errors(findings: GenerationFindings) -> list[str]:
    """Our errors that claim transformers refuses the file (not this suite's own type rule)."""
    return [error for error in findings.errors if OWN_RULE not in error]


def assert_agrees(data: dict[str, Any]) -> tuple[set[str], set[str], bool]:
    """Assert our findings on `data` match transformers'; return (our warned attrs, theirs, refused)."""
    refused, minor = transformers_outcome(data)
    findings = validate_generation_settings(data, None)
    if refused:
        assert transformers_errors(findings), f"transformers refuses {data!r}; we found {findings.to_dict()}"
    else:
        assert not transformers_errors(findings), f"transformers loads {data!r}; we refuse it: {findings.errors}"
        assert set(findings.warnings) == minor, data
    return set(findings.warnings), minor, refused


def test_sampling_flags_set_for_greedy_decoding_are_the_warnings_transformers_lists() -> None:
    data = {"do_sample": False, "temperature": 0.7, "top_p": 0.9}
    findings = validate_generation_settings(data, 2048)
    assert findings.errors == []
    assert set(findings.warnings) == {"temperature", "top_p"} == transformers_outcome(data)[1]
    assert findings.warnings["temperature"].startswith(
        "`do_sample` is not set to `True`. However, `temperature` is set to `0.7` -- this flag is only used in sample-based"
    )


def test_max_new_tokens_of_zero_is_an_error_as_in_transformers() -> None:
    findings = validate_generation_settings({"max_new_tokens": 0}, None)
    assert findings.errors == ["`max_new_tokens`: must be greater than 0, but is 0."]
    assert transformers_outcome({"max_new_tokens": 0}) == (True, set())


def test_a_length_beyond_the_context_is_the_suites_own_warning() -> None:
    findings = validate_generation_settings({"max_length": 4096}, 2048)
    assert findings.errors == [] and list(findings.warnings) == ["max_length"]
    assert "4096" in findings.warnings["max_length"] and "2048" in findings.warnings["max_length"]
    assert "a rule of this suite" in findings.warnings["max_length"]
    assert transformers_outcome({"max_length": 4096}) == (False, set())  # transformers checks lengths only when generating
    assert validate_generation_settings({"max_length": 2048}, 2048).warnings == {}
    assert validate_generation_settings({"max_length": 4096}, None).warnings == {}  # context unknown: no rule
    assert list(validate_generation_settings({"max_new_tokens": 2048}, 2048).warnings) == ["max_new_tokens"]
    assert validate_generation_settings({"max_new_tokens": 2047}, 2048).warnings == {}


@pytest.mark.parametrize(
    ("data", "key", "refused_by_transformers"),
    [
        ({"temperature": "0.7", "do_sample": True}, "temperature", False),
        ({"do_sample": "yes"}, "do_sample", False),
        ({"num_beams": 2.5}, "num_beams", False),
        ({"top_p": math.nan, "do_sample": True}, "top_p", False),
        ({"temperature": math.inf, "do_sample": True}, "temperature", False),
        ({"top_k": 50.0}, "top_k", False),
        ({"eos_token_id": "2"}, "eos_token_id", False),
        ({"bos_token_id": [1, "x"]}, "bos_token_id", False),
        ({"eos_token_id": True}, "eos_token_id", False),
        ({"pad_token_id": [0]}, "pad_token_id", True),  # validate() compares it with 0: TypeError
        ({"max_new_tokens": "5"}, "max_new_tokens", True),
        ({"suppress_tokens": 3}, "suppress_tokens", True),
    ],
)
def test_a_value_of_the_wrong_json_type_is_an_error_naming_its_key(
    data: dict[str, Any], key: str, refused_by_transformers: bool
) -> None:
    findings = validate_generation_settings(data, None)
    assert [error.split(":")[0] for error in findings.errors] == [f"`{key}`"]
    assert (OWN_RULE not in findings.errors[0]) is refused_by_transformers
    assert transformers_outcome(data)[0] is refused_by_transformers


def test_good_settings_have_no_findings() -> None:
    data = {
        "bos_token_id": 1, "eos_token_id": [2, 0], "pad_token_id": 2, "do_sample": True, "temperature": 0.2,
        "top_p": 0.9, "top_k": 40, "max_new_tokens": 256, "repetition_penalty": 1.1, "transformers_version": "4.42.3",
    }
    assert validate_generation_settings(data, 8192) == GenerationFindings()
    assert transformers_outcome(data) == (False, set())


# Every minor issue transformers' validate() has, and every hard error it raises, with configurations that
# must not trip them; each row is checked against transformers itself.
AGREEMENT_TABLE: list[dict[str, Any]] = [
    {"do_sample": False, "temperature": 0.7, "top_p": 0.9},
    {
        "temperature": 0.6, "top_p": 0.95, "min_p": 0.05, "top_h": 0.3, "typical_p": 0.8, "top_k": 20,
        "epsilon_cutoff": 3e-4, "eta_cutoff": 1e-3,
    },
    {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "min_p": 0.05, "top_h": 0.3, "typical_p": 0.8, "top_k": 20},
    {"temperature": 1.0, "top_p": 1.0, "top_k": 50, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0},
    {"num_beams": 1, "early_stopping": True, "length_penalty": 2.0},
    {"early_stopping": "never"},
    {"num_beams": 4, "early_stopping": True, "length_penalty": 2.0},
    {"early_stopping": "always"},
    {"pad_token_id": -1},
    {"max_new_tokens": 0},
    {"max_new_tokens": -5},
    {"cache_implementation": "static"},
    {"cache_implementation": "rolling"},
    {"use_cache": False, "cache_implementation": "dynamic", "cache_config": {"backend": "quanto"}},
    {"output_scores": True, "output_attentions": True, "output_hidden_states": True, "output_logits": True},
    {"output_scores": True, "return_dict_in_generate": True},
    {"num_return_sequences": 2},
    {"num_return_sequences": 2, "do_sample": True},
    {"num_return_sequences": 5, "num_beams": 4},
    {"num_return_sequences": 4, "num_beams": 4},
    {"assistant_ensemble_weight": 1.0},
    {"assistant_ensemble_weight": 0.5},
    {"compile_config": {"fullgraph": True}},
    {"watermarking_config": {"seeding_scheme": "selfhash", "greenlist_ratio": 0.5}},
    {"watermarking_config": {"seeding_scheme": "middlehash"}},
    {"watermarking_config": {"greenlist_ratio": 1.5}},
    {"watermarking_config": {"context_width": 0}},
    {"watermarking_config": {"salt": 1}},
    {"suppress_tokens": [2, 7], "forced_eos_token_id": 2},
    {"suppress_tokens": [2, 7], "forced_eos_token_id": [2, 3]},
    {"streamer": None},
    {"logits_processor": [], "_from_model_config": True},
    {"validate": True},
    {"extra_output_flags": 1},
    {"do_sample": "yes", "temperature": 0.7},  # "yes" is not True: transformers warns (and this suite errors)
]


@pytest.mark.parametrize("data", AGREEMENT_TABLE, ids=[json.dumps(row)[:60] for row in AGREEMENT_TABLE])
def test_findings_agree_with_transformers(data: dict[str, Any]) -> None:
    assert_agrees(data)


def test_the_agreement_table_covers_every_minor_issue() -> None:
    listed = set().union(*(transformers_outcome(row)[1] for row in AGREEMENT_TABLE))
    assert listed == set(MINOR_RULES)


def test_findings_agree_with_transformers_for_every_attribute_name_and_kind_of_value() -> None:
    """Every attribute (and method) name of GenerationConfig, alone, with values of each JSON kind."""
    names = sorted(set(dir(GenerationConfig)) | set(vars(GenerationConfig())))
    values: list[Any] = [1, 0, -1, 2.5, True, False, "x", None, [1], [[1]], {"a": 1}, math.nan]
    refused_count = 0
    for name in names:
        for value in values:
            refused_count += assert_agrees({name: value})[2]
    assert refused_count > 100  # the sweep reaches transformers' refusals, not only accepted files


def test_reading_generation_config_json(tmp_path: Path) -> None:
    assert read_generation_settings(Candidate(tmp_path)).present is False
    (tmp_path / "generation_config.json").write_text('{"do_sample": false, "temperature": NaN}')
    settings = read_generation_settings(Candidate(tmp_path))
    assert settings.present and settings.error is None and settings.data is not None
    assert validate_generation_settings(settings.data, None).errors[0].startswith("`temperature`: must be a finite number")
    (tmp_path / "generation_config.json").write_text("[1, 2]")
    settings = read_generation_settings(Candidate(tmp_path))
    assert settings.present and settings.data is None and settings.error is not None and "not a JSON object" in settings.error
    (tmp_path / "generation_config.json").write_text("{not json")
    assert "not valid JSON" in str(read_generation_settings(Candidate(tmp_path)).error)
    (tmp_path / "generation_config.json").write_text('{"a": "' + "x" * MAX_GENERATION_CONFIG_BYTES + '"}')
    settings = read_generation_settings(Candidate(tmp_path))
    assert settings.data is None and settings.error is not None


def test_a_link_out_of_the_folder_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "outside.json"
    secret.write_text('{"do_sample": true}')
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "generation_config.json").symlink_to(secret)
    settings = read_generation_settings(Candidate(folder))
    assert settings.present and settings.data is None and settings.error is not None


def nested(depth: int) -> list[Any]:
    """A list nested `depth` levels, built without recursion."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_hostile_settings_are_judged_with_bounded_messages() -> None:
    many_keys = {f"key{index}": index for index in range(100_000)}
    huge_text = "x" * 10_000_000
    hostile: list[dict[str, Any]] = [
        {**many_keys, "temperature": 0.7},
        {"temperature": huge_text, "early_stopping": huge_text, "cache_implementation": huge_text, huge_text: 1},
        {"eos_token_id": nested(100_000), "suppress_tokens": nested(100_000), "early_stopping": nested(100_000)},
        {"watermarking_config": {**many_keys}, "extra_output_flags": [huge_text] * 1000, "temperature": nested(100_000)},
        {"temperature": 10**5000, "max_new_tokens": -(10**5000), "pad_token_id": -(10**5000)},
        {"suppress_tokens": list(range(MAX_LIST_ITEMS)), "forced_eos_token_id": 5},
        {"eos_token_id": list(range(200_000)), "suppress_tokens": list(range(200_000)), "forced_eos_token_id": 5},
    ]
    # Only fixed keys are read and nothing recurses, so each takes milliseconds; no wall-clock bound is
    # asserted (a shared machine may be slow), the findings' size is.
    results = [validate_generation_settings(data, 2048) for data in hostile]
    for findings in results:
        document = json.dumps(findings.to_dict())
        assert len(document) < 8_000
        assert all(len(message) < 2 * MAX_SHOWN_CHARS + 400 for message in [*findings.errors, *findings.warnings.values()])
    assert list(results[0].warnings) == ["temperature"] and results[0].errors == []
    assert {error.split(":")[0] for error in results[2].errors} == {"`eos_token_id`", "`suppress_tokens`", "`early_stopping`"}
    assert "an integer of" in results[4].warnings["temperature"]
    assert [error.split(":")[0] for error in results[5].errors] == ["`forced_eos_token_id`"]
    assert [error.split(":")[0] for error in results[6].errors] == ["`eos_token_id`", "`suppress_tokens`"]
    assert all(f"more than the {MAX_LIST_ITEMS}" in error for error in results[6].errors)
