"""Fuzzing the readers of model-supplied documents: card front matter and config.json.

Whatever the bytes, the reader returns facts (with errors) and never raises, and the result document built
from them is valid JSON that validates against result.schema.json. Inputs are drawn from YAML/JSON fragments
attackers use (anchors and aliases, deep nesting, non-finite and huge numbers, odd keys and types), so most
examples are near-valid documents rather than noise.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.candidate import Candidate
from conformance.card import read_card_in
from conformance.results import json_safe, validate_document
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_SCALARS = st.one_of(
    st.sampled_from([".inf", "-.inf", ".nan", "~", "null", "yes", "no", "1e400", "0x1F", "1_000", "'quoted'", "\"a\\u0000b\"", "!!binary aGk="]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12).map(json.dumps),
)


def _yaml_block(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _SCALARS
    inner = _yaml_block(depth - 1)
    return st.one_of(
        _SCALARS,
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.sampled_from(["license", "a", "b", "model-index", "conformance", "tags", "<<"]), inner, max_size=3).map(
            lambda mapping: "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"
        ),
        inner.map(lambda text: f"&x {text}"),
        st.just("*x"),
    )


_FRONT_MATTER = st.lists(
    st.tuples(st.sampled_from(["license", "language", "tags", "model-index", "conformance", "base_model", "x"]), _yaml_block(3)),
    max_size=6,
).map(lambda pairs: "\n".join(f"{key}: {value}" for key, value in pairs))
_BODY = st.lists(
    st.one_of(st.sampled_from(["# Title", "## Uses  ##", "```", "~~~", "#" * 7 + " no", "# a" + " " * 300 + "b"]), st.text(max_size=40)),
    max_size=8,
).map("\n".join)


@FUZZ
@given(front=_FRONT_MATTER, body=_BODY, fenced=st.booleans())
def test_card_reader_never_raises(front: str, body: str, fenced: bool, tmp_path: Path) -> None:
    folder = tmp_path / "card"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    text = f"---\n{front}\n---\n{body}" if fenced else front + "\n" + body
    (folder / "README.md").write_text(text, encoding="utf-8")
    facts = read_card_in(folder.resolve(), "README.md")
    assert facts.present
    safe = json_safe({"metadata": facts.metadata, "sections": facts.sections, "errors": facts.errors})
    json.dumps(safe, allow_nan=False)  # the result writer's own setting: never raises on what the reader returns


_JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)
_JSON_VALUE = st.recursive(_JSON_LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)
_CONFIG_KEYS = [
    "model_type", "architectures", "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
    "intermediate_size", "vocab_size", "max_position_embeddings", "tie_word_embeddings", "auto_map", "custom_pipelines",
    "text_config", "torch_dtype", "head_dim", "n_embd", "n_layer",
]
STATIC_RULES = [
    {"id": "FORMAT", "level": "must", "check": "safety.weights_format"},
    {"id": "CODE", "level": "must", "check": "safety.remote_code"},
    {"id": "ARCH-TYPE", "level": "must", "check": "architecture.model_type", "equals": "llama"},
    {"id": "ARCH-LAYERS", "level": "must", "check": "architecture.num_layers", "min": 1},
    {"id": "ARCH-CONTEXT", "level": "must", "check": "architecture.context_length", "max": 1_000_000},
    {"id": "PARAMS", "level": "must", "check": "size.parameters", "max": 1.0e9},
    {"id": "TOKENIZER-FITS", "level": "must", "check": "tokenizer.vocab_matches_embeddings"},
]


@pytest.fixture(scope="module")
def static_spec(tmp_path_factory: pytest.TempPathFactory):
    import yaml

    path = tmp_path_factory.mktemp("fuzz-spec") / "static.yaml"
    path.write_text(yaml.safe_dump({"id": "fuzz-static", "version": "1", "rules": STATIC_RULES}))
    return load_spec(path)


@FUZZ
@given(
    overrides=st.dictionaries(st.sampled_from(_CONFIG_KEYS), _JSON_VALUE, max_size=5),
    nesting=st.sampled_from([0, 0, 0, 70, 5000]),
)
def test_config_reader_never_breaks_the_result_document(overrides: dict, nesting: int, llama_dir: Path, static_spec, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(overrides)
    text = json.dumps(config, allow_nan=True)
    if nesting:
        text = text[:-1] + ', "deep": ' + "[" * nesting + "]" * nesting + "}"
    (folder / "config.json").write_text(text)
    result = run(Candidate(folder), static_spec, RunOptions(log=lambda m: None, hash_weights="never"))
    document = result.to_document()
    assert validate_document(document) == []
    json.dumps(document, allow_nan=False)
    statuses = {r.id: r.status for r in result.rules}
    assert statuses["FORMAT"] == "pass"  # the weights are untouched: a bad config never errors the format rule
    for rule in result.rules:
        if rule.status == "pass" and isinstance(rule.observed, float):
            assert math.isfinite(rule.observed)  # a non-finite number never passes a comparison
