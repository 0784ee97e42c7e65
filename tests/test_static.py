"""The static path: architecture normalized across families, counts from headers, no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.candidate import Candidate
from conformance.probes.architecture import ARCHITECTURE_FIELDS, config_value, normalize_architecture
from conformance.probes.static import probe_static
from conformance.zoo import parameter_count

# Canonical field -> the attribute transformers' config classes expose for it (through attribute_map).
TRANSFORMERS_ATTRIBUTES = {
    "num_layers": "num_hidden_layers",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "vocab_size": "vocab_size",
}


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_dir", "bert_dir", "minilm_dir"])
def test_normalized_fields_agree_with_transformers_config_classes(fixture: str, request: pytest.FixtureRequest) -> None:
    from transformers import AutoConfig

    folder: Path = request.getfixturevalue(fixture)
    ours = normalize_architecture(json.loads((folder / "config.json").read_text()))
    theirs = AutoConfig.from_pretrained(folder, local_files_only=True)
    for canonical, attribute in TRANSFORMERS_ATTRIBUTES.items():
        assert ours[canonical] == getattr(theirs, attribute), canonical
    assert ours["model_type"] == theirs.model_type
    expected_kv = getattr(theirs, "num_key_value_heads", None) or theirs.num_attention_heads
    assert ours["num_key_value_heads"] == expected_kv
    expected_context = theirs.n_positions if theirs.model_type == "gpt2" else theirs.max_position_embeddings
    assert ours["context_length"] == expected_context


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "n_positions": 1024, "vocab_size": 50257},
         {"num_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "num_key_value_heads": 12, "context_length": 1024, "intermediate_size": 3072}),
        ({"model_type": "t5", "num_layers": 6, "d_model": 512, "num_heads": 8, "d_ff": 2048, "vocab_size": 32128},
         {"num_layers": 6, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 2048, "context_length": None}),
        ({"model_type": "mistral", "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768, "intermediate_size": 14336},
         {"num_key_value_heads": 8, "context_length": 32768, "intermediate_size": 14336}),
        ({"model_type": "falcon", "num_hidden_layers": 32, "hidden_size": 4544, "num_attention_heads": 71, "multi_query": True},
         {"num_key_value_heads": 1}),
        ({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", "num_hidden_layers": 26, "hidden_size": 1152, "num_attention_heads": 4, "num_key_value_heads": 1}},
         {"model_type": "gemma3", "text_model_type": "gemma3_text", "num_layers": 26, "num_key_value_heads": 1}),
    ],
)
def test_family_configs_normalize(config: dict, expected: dict) -> None:
    normalized = normalize_architecture(config)
    for key, value in expected.items():
        assert normalized[key] == value, key
    assert set(ARCHITECTURE_FIELDS) <= set(normalized)


def test_config_value_by_dotted_path() -> None:
    config = {"rope_scaling": {"factor": 8.0, "types": ["a", "b"]}}
    assert config_value(config, "rope_scaling.factor") == 8.0
    assert config_value(config, "rope_scaling.types.1") == "b"
    with pytest.raises(KeyError):
        config_value(config, "rope_scaling.missing")


@pytest.mark.parametrize("fixture", ["llama_dir", "tied_llama_dir", "gpt2_dir", "bert_dir", "sharded_dir", "minilm_dir"])
def test_header_parameter_count_equals_loaded_model(fixture: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(fixture)
    facts = probe_static(Candidate(folder))
    assert facts.parameters["parameters"] == parameter_count(folder)


def test_minilm_facts(minilm_dir: Path) -> None:
    facts = probe_static(Candidate(minilm_dir))
    assert facts.parameters["parameters"] == 22_713_216
    # position_ids is stored (int64) but is a buffer, not a weight: neither counted nor listed.
    assert "embeddings.position_ids" in {t.name for t in facts.weights.tensors}
    assert facts.weight_dtypes == {"F32": 22_713_216}
    assert facts.architecture["num_layers"] == 6 and facts.architecture["hidden_size"] == 384
    assert facts.tokenizer.vocab_size == 30522 == facts.embedding_rows
    assert facts.tokenizer.special_tokens["cls"] == "[CLS]"


def test_sharded_checkpoint_reads_every_shard(sharded_dir: Path, llama_dir: Path) -> None:
    sharded = probe_static(Candidate(sharded_dir))
    single = probe_static(Candidate(llama_dir))
    assert len({t.file for t in sharded.weights.tensors}) > 1
    assert sharded.weights.index_file == "model.safetensors.index.json"
    assert sharded.parameters == single.parameters


STATIC_SPECS = ["baseline-safety", str(Path(__file__).resolve().parent.parent / "benchmarks" / "specs" / "static-70b.yaml")]


@pytest.mark.parametrize("spec", STATIC_SPECS, ids=["baseline-safety", "static-release-rules"])
def test_static_path_imports_no_torch(spec: str, llama_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from conformance.cli import main; "
        f"code = main(['check', {str(llama_dir)!r}, '--spec', {spec!r}, '--out', {str(tmp_path)!r}, '-q']); "
        "print('torch' in sys.modules, 'transformers' in sys.modules, code)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    torch_imported, transformers_imported, _ = output.strip().splitlines()[-1].split()
    assert (torch_imported, transformers_imported) == ("False", "False")


def _library_view(path: Path) -> list[tuple[str, str, tuple[int, ...]]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return sorted((name, handle.get_slice(name).get_dtype(), tuple(handle.get_slice(name).get_shape())) for name in handle.keys())


@pytest.mark.parametrize("kind", ["valid", "huge_header_length", "overlapping_offsets", "truncated", "non_json_header"])
def test_header_reader_agrees_with_the_safetensors_library(kind: str, tmp_path: Path) -> None:
    from conformance.formats.safetensors import read_safetensors_header
    from conformance.zoo import write_bad_safetensors

    path = write_bad_safetensors(tmp_path / f"{kind}.safetensors", kind)
    try:
        expected = _library_view(path)
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(ValueError), path.open("rb") as handle:
            read_safetensors_header(handle, path.name)
    else:
        with path.open("rb") as handle:
            ours = read_safetensors_header(handle, path.name)
        assert sorted((t.name, t.dtype, t.shape) for t in ours) == expected


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_dir", "bert_dir", "sharded_dir", "minilm_dir"])
def test_header_reader_matches_library_on_real_files(fixture: str, request: pytest.FixtureRequest) -> None:
    from conformance.formats.safetensors import read_safetensors_header

    folder: Path = request.getfixturevalue(fixture)
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as handle:
            ours = read_safetensors_header(handle, path.name)
        assert sorted((t.name, t.dtype, t.shape) for t in ours) == _library_view(path)


def test_truncated_and_padded_headers(tmp_path: Path) -> None:
    import struct

    from conformance.formats.safetensors import read_safetensors_header

    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    padded = header + b" " * (-len(header) % 8)
    good = tmp_path / "good.safetensors"
    good.write_bytes(struct.pack("<Q", len(padded)) + padded + b"\0" * 8)
    with good.open("rb") as handle:
        assert [t.name for t in read_safetensors_header(handle, "good")] == ["w"]
    for name, data in {"short": b"\x01\x02", "cut-header": struct.pack("<Q", 500) + header, "extra-data": good.read_bytes() + b"\0"}.items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(data)
        with pytest.raises(ValueError), bad.open("rb") as handle:
            read_safetensors_header(handle, name)


@pytest.mark.parametrize(
    ("vocab", "error"),
    [
        ({"a": 0, "b": 1.0}, "1.0"),  # the tokenizers library reads ids as u32: a float is refused
        ({"a": 0, "b": True}, "True"),
        ({"a": -1}, "-1"),
        ({"a": 2**32}, "4294967296"),
        (["a", "b"], "not a JSON object"),
    ],
)
def test_vocab_json_ids_must_be_token_ids(vocab: object, error: str, tmp_path: Path) -> None:
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    facts = probe_static(Candidate(tmp_path))
    assert facts.tokenizer.vocab_size is None
    assert len(facts.tokenizer.errors) == 1 and error in facts.tokenizer.errors[0]
    assert facts.config_error and "config.json is missing" in facts.config_error  # the other facts read on their own


def test_vocab_txt_is_read_through_safe_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    assert probe_static(Candidate(model)).tokenizer.vocab_size == 3
    (tmp_path / "outside.txt").write_text("a\nb\nc\nd\n")
    (model / "vocab.txt").unlink()
    (model / "vocab.txt").symlink_to(tmp_path / "outside.txt")  # never read: it leaves the folder
    facts = probe_static(Candidate(model))
    assert facts.tokenizer.vocab_size is None and "outside the model folder" in facts.tokenizer.errors[0]
