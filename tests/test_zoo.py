"""The zoo builds tiny, loadable, deterministic models and hostile folders, offline."""

from __future__ import annotations

import json
import os
import pickletools
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub, even by accident
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from conformance import zoo

ROOT = Path(__file__).resolve().parents[1]
VOCAB_SIZE = 512


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("zoo")
    return {
        "llama": zoo.build_llama(base / "llama"),
        "gpt2": zoo.build_gpt2(base / "gpt2"),
        "bert": zoo.build_bert(base / "bert"),
        "sharded": zoo.build_sharded_llama(base / "sharded"),
    }


def _front_matter(readme: Path) -> dict:
    from huggingface_hub import ModelCard

    return ModelCard.load(readme).data.to_dict()


def markdown_headings(text: str) -> list[str]:
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def _safetensors_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as handle:
        return list(handle.keys())


def test_importing_the_zoo_stays_light() -> None:
    code = "import sys, conformance.zoo; print(sorted({'torch', 'transformers', 'tokenizers'} & set(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
@pytest.mark.parametrize("vocab_size", [300, 512, 3000])  # 3000 is past what the corpus can teach
def test_tokenizer_has_exactly_the_requested_vocab(tmp_path: Path, kind: str, vocab_size: int) -> None:
    from transformers import AutoTokenizer

    out = zoo.train_tokenizer(tmp_path, kind, vocab_size)  # type: ignore[arg-type]
    expected_files = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    assert expected_files <= {p.name for p in out.iterdir()}
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert len(tokenizer) == vocab_size
    ids = tokenizer("The quick brown fox!")["input_ids"]
    assert max(ids) < vocab_size and tokenizer.unk_token_id not in ids
    if kind == "wordpiece":
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert tokenizer.mask_token == "[MASK]"
    else:
        assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_tokenizer_training_is_reproducible(tmp_path: Path, kind: str) -> None:
    first = zoo.train_tokenizer(tmp_path / "a", kind) / "tokenizer.json"  # type: ignore[arg-type]
    second = zoo.train_tokenizer(tmp_path / "b", kind) / "tokenizer.json"  # type: ignore[arg-type]
    assert first.read_bytes() == second.read_bytes()


def test_tokenizer_refuses_a_vocab_below_its_alphabet(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base alphabet"):
        zoo.train_tokenizer(tmp_path, "bpe", 100)


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert", "sharded"])
def test_models_load_offline_and_match_their_card(built: dict[str, Path], name: str) -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    folder = built[name]
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    auto = AutoModel if name == "bert" else AutoModelForCausalLM
    model = auto.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert len(tokenizer) == config.vocab_size == VOCAB_SIZE

    claims = _front_matter(folder / "README.md")["conformance"]
    assert claims["parameters"] == sum(p.numel() for p in model.parameters()) == zoo.parameter_count(folder)
    assert claims["architecture"]["num_layers"] == 2 and claims["architecture"]["hidden_size"] == 64
    weights = sorted(p.name for p in folder.glob("*.safetensors"))
    assert sorted(claims["checksums"]) == weights
    assert all(claims["checksums"][w] == zoo.sha256_file(folder / w) for w in weights)


def test_card_front_matter_is_complete_and_fits_the_schema(built: dict[str, Path]) -> None:
    import jsonschema

    readme = built["llama"] / "README.md"
    metadata = _front_matter(readme)
    assert metadata["license"] == "apache-2.0" and metadata["language"] == ["en"]
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "text-generation"
    assert metadata["conformance"]["architecture"] == {
        "model_type": "llama",
        "num_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": VOCAB_SIZE,
        "context_length": 256,
        "intermediate_size": 128,
    }
    assert metadata["conformance"]["intended_use"] and metadata["conformance"]["limitations"]
    schema = json.loads((ROOT / "specs/schema/card.schema.json").read_text())
    jsonschema.validate(metadata, schema)
    assert markdown_headings(readme.read_text()) == ["llama", *zoo.CARD_SECTIONS]
    assert _front_matter(built["bert"] / "README.md")["pipeline_tag"] == "feature-extraction"


def test_card_claims_can_be_made_wrong_and_sections_dropped(tmp_path: Path) -> None:
    folder = zoo.build_gpt2(tmp_path / "gpt2", card=False)
    readme = zoo.write_card(
        folder,
        license="mit",
        sections=["Limitations"],
        claims={"parameters": 7, "architecture": {"num_layers": 99}, "intended_use": None},
        extra_metadata={"datasets": ["none"]},
    )
    metadata = _front_matter(readme)
    claims = metadata["conformance"]
    assert (metadata["license"], metadata["datasets"]) == ("mit", ["none"])
    assert claims["parameters"] == 7 and "intended_use" not in claims
    assert claims["architecture"]["num_layers"] == 99 and claims["architecture"]["hidden_size"] == 64
    assert markdown_headings(readme.read_text()) == ["gpt2", "Limitations"]

    # Without a parameters override the card measures the saved model itself.
    zoo.write_card(folder, sections=False)
    assert _front_matter(readme)["conformance"]["parameters"] == zoo.parameter_count(folder)
    assert markdown_headings(readme.read_text()) == ["gpt2"]


def test_gpt2_saves_its_tied_embedding_once(built: dict[str, Path]) -> None:
    keys = _safetensors_keys(built["gpt2"] / "model.safetensors")
    assert "transformer.wte.weight" in keys
    assert not any(key.startswith("lm_head") for key in keys)


def test_sharded_llama_has_an_index_and_several_shards(built: dict[str, Path]) -> None:
    folder = built["sharded"]
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(shards) > 2 and not (folder / "model.safetensors").exists()
    assert set(index["weight_map"].values()) == {p.name for p in shards}
    assert sorted(index["weight_map"]) == sorted(_safetensors_keys(built["llama"] / "model.safetensors"))


def test_builds_are_deterministic_per_seed(built: dict[str, Path], tmp_path: Path) -> None:
    original = zoo.sha256_file(built["llama"] / "model.safetensors")
    again = zoo.build_llama(tmp_path / "again", card=False)
    other = zoo.build_llama(tmp_path / "other", card=False, seed=1)
    assert zoo.sha256_file(again / "model.safetensors") == original
    assert zoo.sha256_file(other / "model.safetensors") != original


def test_build_options_reach_the_saved_model(tmp_path: Path) -> None:
    folder = zoo.build_llama(tmp_path / "tied", tie_word_embeddings=True, dtype="bfloat16", vocab_size=300)
    header_length = struct.unpack("<Q", (folder / "model.safetensors").read_bytes()[:8])[0]
    header = json.loads((folder / "model.safetensors").read_bytes()[8 : 8 + header_length])
    assert "lm_head.weight" not in header
    assert {entry["dtype"] for key, entry in header.items() if key != "__metadata__"} == {"BF16"}
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == 300


def _pickle_globals(payload: bytes) -> list[str]:
    return [str(arg) for op, arg, _ in pickletools.genops(payload) if op.name == "GLOBAL"]


@pytest.mark.parametrize("zip_format", [False, True])
def test_pickle_bomb_is_armed_but_never_fired(tmp_path: Path, zip_format: bool) -> None:
    canary = tmp_path / "canary"
    folder = zoo.build_pickle_bomb(tmp_path / "bomb", canary, zip_format=zip_format)
    weights = folder / "pytorch_model.bin"
    assert (folder / "config.json").is_file() and not list(folder.glob("*.safetensors"))
    if zip_format:
        with zipfile.ZipFile(weights) as archive:
            names = archive.namelist()
            payload = archive.read(next(n for n in names if n.endswith("data.pkl")))
        assert any(n.endswith("/version") for n in names)  # the rest of the torch checkpoint is intact
    else:
        payload = weights.read_bytes()
    # Inspect the opcodes statically: unpickling would be the very thing the bomb punishes.
    assert _pickle_globals(payload) == ["builtins open"]
    assert str(canary) in [arg for _, arg, _ in pickletools.genops(payload)]
    assert not canary.exists()


def test_remote_code_model_asks_for_code_it_never_gets(tmp_path: Path) -> None:
    folder = zoo.build_remote_code_model(tmp_path / "remote")
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_evil.EvilModel"
    assert "raise RuntimeError" in (folder / "modeling_evil.py").read_text()
    assert _safetensors_keys(folder / "model.safetensors")
    assert "modeling_evil" not in sys.modules


BAD_SAFETENSORS = ["huge_header_length", "overlapping_offsets", "truncated", "non_json_header"]


@pytest.mark.parametrize("kind", BAD_SAFETENSORS)
def test_bad_safetensors_are_rejected_by_the_reference_reader(tmp_path: Path, kind: str) -> None:
    from safetensors import SafetensorError, safe_open

    path = zoo.write_bad_safetensors(tmp_path / f"{kind}.safetensors", kind)  # type: ignore[arg-type]
    with pytest.raises(SafetensorError), safe_open(path, framework="numpy"):
        pass


def test_hand_built_valid_safetensors_is_accepted(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = zoo.write_bad_safetensors(tmp_path / "valid.safetensors", "valid")
    with safe_open(path, framework="numpy") as handle:
        assert handle.get_tensor("a").tolist() == [[1.0, 2.0], [3.0, 4.0]]
        assert handle.metadata() == {"format": "pt"}


@pytest.mark.parametrize("kind", ["missing", "corrupt", "wrong_type"])
def test_corrupt_config_keeps_valid_weights(tmp_path: Path, kind: str) -> None:
    folder = zoo.build_corrupt_config(tmp_path / kind, kind)  # type: ignore[arg-type]
    assert _safetensors_keys(folder / "model.safetensors")
    config = folder / "config.json"
    if kind == "missing":
        assert not config.exists()
    elif kind == "corrupt":
        with pytest.raises(json.JSONDecodeError):
            json.loads(config.read_text())
    else:
        assert isinstance(json.loads(config.read_text()), list)
