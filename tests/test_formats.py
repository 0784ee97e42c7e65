"""The weight-format and architecture-source seams: registry, claiming, tensor sizes, counting, a format added by a test."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from conformance.candidate import Candidate
from conformance.digests import sha256_stream, sha256_text
from conformance.formats import registry
from conformance.formats.base import ArchitectureSource, TensorLayout, WeightFormat
from conformance.formats.dtypes import DTYPES, FLOAT_DTYPES, GGML_BLOCK_TYPES, SAFETENSORS_DTYPES, Dtype, element_bits
from conformance.formats.safetensors import SafetensorsFormat
from conformance.formats.tensors import TensorInfo
from conformance.formats.torch_pickle import TorchPickleFormat
from conformance.probes.load_preflight import LoadRefused, plan_load
from conformance.probes.static import probe_static
from conformance.probes.weights import read_weights


def test_registry_names_every_format_once() -> None:
    names = [fmt.name for fmt in registry.WEIGHT_FORMATS]
    assert names.index("safetensors") < names.index("pickle")  # load preference: safetensors before pickles
    assert len(names) == len(set(names))
    assert {"gguf", "onnx", "keras", "tensorflow-h5", "flax-msgpack", "numpy", "tflite"} <= set(names)
    assert isinstance(registry.format_named("safetensors"), SafetensorsFormat)
    with pytest.raises(KeyError, match="unknown weight format 'zarr'"):
        registry.format_named("zarr")


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("model.safetensors", "safetensors"),
        ("MODEL-00001-of-00002.SafeTensors", "safetensors"),
        ("pytorch_model.bin", "pickle"),
        ("model.ckpt", "pickle"),
        ("weights.pickle", "pickle"),
        ("training_args.bin", None),  # trainer settings, not weights
        ("model.gguf", "gguf"),
        ("tf_model.h5", "tensorflow-h5"),
        ("arrays.npz", "numpy"),
        ("arrays.npy", None),  # auxiliary arrays beside the weights: the scan judges them
        ("1_Pooling/model.safetensors", None),  # sub-folders hold adapters and other tools' files
        ("config.json", None),
        ("model.safetensors.index.json", None),
    ],
)
def test_format_claiming(relative: str, expected: str | None) -> None:
    fmt = registry.format_claiming(relative)
    assert (fmt.name if fmt else None) == expected


def test_weight_suffixes_cover_every_claimed_name() -> None:
    suffixes = registry.weight_suffixes()
    assert {".safetensors", ".bin", ".pt", ".gguf", ".onnx", ".npz"} <= set(suffixes)
    assert all(suffix == suffix.lower() and suffix.startswith(".") for suffix in suffixes)


def test_dtype_table_is_the_safetensors_list_and_ggml_block_types() -> None:
    ggml_blocks = {name for name, _, _, _ in GGML_BLOCK_TYPES}
    assert SAFETENSORS_DTYPES == set(DTYPES) - ggml_blocks and not SAFETENSORS_DTYPES & ggml_blocks
    assert ggml_blocks <= FLOAT_DTYPES  # block-quantized weights are parameters
    assert {"F32", "BF16", "F4", "F6_E2M3"} <= FLOAT_DTYPES and not {"I32", "U8", "BOOL", "C64"} & FLOAT_DTYPES
    assert element_bits("F6_E3M2") == 6 and element_bits("BF16") == 16


def test_tensor_logical_elements_apart_from_stored_bytes() -> None:
    assert TensorInfo("w", "BF16", (3, 4), "a").stored_bytes == 24
    assert TensorInfo("w", "F4", (3,), "a").stored_bytes == 2  # sub-byte: half a byte each, rounded up
    assert TensorInfo("s", "F32", (), "a").elements == 1  # a scalar
    assert TensorInfo("w", "NEW", (5,), "a").stored_bytes == 5  # unknown dtype: a byte an element
    # A packed 4-bit tensor: 4096 logical elements in 2048 bytes plus 64 bytes of scales.
    packed = TensorInfo("q", "Q4_X", (64, 64), "a", packed_bytes=2112)
    assert (packed.elements, packed.stored_bytes) == (4096, 2112)


def test_block_dtype_stores_whole_blocks() -> None:
    q4 = Dtype("Q4_0", bits=144, floating=True, block=32)  # GGML: 32 elements in 18 bytes
    assert q4.stored_bytes(64) == 36 and q4.stored_bytes(33) == 36
    assert Dtype("F4", 4, True).stored_bytes(3) == 2


def test_parameters_counted_across_shards_with_a_tied_head_once() -> None:
    fmt = SafetensorsFormat()
    tensors = [
        TensorInfo("model.embed_tokens.weight", "F32", (10, 4), "model-00001-of-00002.safetensors"),
        TensorInfo("model.layers.0.mlp.weight", "BF16", (4, 4), "model-00001-of-00002.safetensors"),
        TensorInfo("model.rotary_emb.inv_freq", "F32", (2,), "model-00002-of-00002.safetensors"),  # a buffer
        TensorInfo("model.norm.mask", "BOOL", (4,), "model-00002-of-00002.safetensors"),  # not a float
        TensorInfo("lm_head.weight", "F32", (10, 4), "model-00002-of-00002.safetensors"),
    ]
    tied = fmt.count_parameters(tensors, {"tie_word_embeddings": True})
    assert tied == {"parameters": 56, "embedding_parameters": 40, "non_embedding_parameters": 16}
    untied = fmt.count_parameters(tensors, {"tie_word_embeddings": False})
    assert untied["parameters"] == 96 and untied["embedding_parameters"] == 80
    assert fmt.count_parameters(tensors, None)["parameters"] == 96  # no config: nothing says they are tied


def _safetensors(tensors: dict[str, tuple[str, list[int], bytes]]) -> bytes:
    header, offset, data = {}, 0, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def test_index_shards_missing_and_present(tmp_path: Path) -> None:
    (tmp_path / "a.safetensors").write_bytes(_safetensors({"w": ("F32", [2], b"\0" * 8)}))
    index = {"weight_map": {"w": "a.safetensors", "v": "gone.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    info = read_weights(Candidate(tmp_path))
    assert info.index_file == "model.safetensors.index.json" and info.tensor_format == "safetensors"
    assert [t.name for t in info.tensors] == ["w"]
    assert info.errors == ["model.safetensors.index.json names missing shard gone.safetensors"]


def test_pickle_files_have_no_tensors_but_a_kind(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")  # a raw pickle: an empty dict
    info = read_weights(Candidate(tmp_path))
    assert info.files == {"pytorch_model.bin": "pickle"} and info.tensors == [] and info.tensor_format is None
    assert TorchPickleFormat().load_names == ("pytorch_model.bin", "pytorch_model.bin.index.json")


def test_load_plan_takes_its_names_from_the_format(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(_safetensors({"w": ("F32", [1], b"\0" * 4)}))
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    plan = plan_load(tmp_path.resolve(), "safetensors")
    assert "model.safetensors" in plan.files and plan.skipped["model.gguf"] == "not part of the load"
    with pytest.raises(LoadRefused, match="gguf weights are not loaded"):
        plan_load(tmp_path.resolve(), "gguf")
    with pytest.raises(LoadRefused, match="unknown weight format"):
        plan_load(tmp_path.resolve(), "zarr")


# A made-up container: one JSON line ({"config": ..., "tensors": [...]}) then the data. Its "Q4_X" tensors are
# block-quantized: 32 elements in 18 bytes, so stored bytes are not elements x a dtype size.
def _write_tnsr(path: Path, tensors: list[dict[str, Any]], config: dict[str, Any]) -> None:
    data = b"".join(b"\0" * t["bytes"] for t in tensors)
    path.write_bytes(json.dumps({"config": config, "tensors": tensors}).encode() + b"\n" + data)


def _tnsr_header(candidate: Candidate, relative: str) -> dict[str, Any]:
    with candidate.open_regular(relative) as handle:
        return json.loads(handle.readline(1 << 20))


class TnsrFormat(WeightFormat):
    name = "tnsr"
    suffixes = (".tnsr",)
    reads_tensors = True
    streams_tensors = True

    def read_tensors(self, candidate: Candidate, relative: str) -> list[TensorInfo]:
        tensors = _tnsr_header(candidate, relative)["tensors"]
        return [TensorInfo(t["name"], t["dtype"], tuple(t["shape"]), relative, packed_bytes=t["bytes"]) for t in tensors]

    def is_parameter(self, tensor: TensorInfo) -> bool:
        return tensor.dtype in ("Q4_X", "F32")  # quantized tensors are parameters here

    def tensor_slices(self, handle: IO[bytes], resolved: Path, slice_bytes: int) -> Iterator[tuple[str, Iterator[Any]]]:
        import torch

        header = json.loads(handle.readline(1 << 20))
        for tensor in header["tensors"]:
            values = torch.zeros(tensor["shape"])
            values.view(-1)[0] = float("nan")  # one NaN per tensor, as a dequantized reader would find it
            yield tensor["name"], iter([values])


class TnsrSource(ArchitectureSource):
    name = "tnsr metadata"

    def present(self, file_names: set[str]) -> bool:
        return any(name.endswith(".tnsr") for name in file_names) and "config.json" not in file_names

    def read_config(self, candidate: Candidate) -> dict[str, Any]:
        names = sorted(name for name in candidate.file_names() if name.endswith(".tnsr"))
        return dict(_tnsr_header(candidate, names[0])["config"])


@pytest.fixture
def tnsr_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(registry, "WEIGHT_FORMATS", [*registry.WEIGHT_FORMATS, TnsrFormat()])
    monkeypatch.setattr(registry, "ARCHITECTURE_SOURCES", [*registry.ARCHITECTURE_SOURCES, TnsrSource()])
    tensors = [
        {"name": "model.embed_tokens.weight", "dtype": "Q4_X", "shape": [64, 32], "bytes": 64 * 18},
        {"name": "model.layers.0.mlp.weight", "dtype": "Q4_X", "shape": [32, 32], "bytes": 32 * 18},
        {"name": "model.norm.weight", "dtype": "F32", "shape": [32], "bytes": 128},
    ]
    config = {"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 4, "vocab_size": 64}
    _write_tnsr(tmp_path / "model.tnsr", tensors, config)
    return tmp_path


def test_a_registered_format_and_source_are_counted_by_the_static_probe(tnsr_folder: Path) -> None:
    facts = probe_static(Candidate(tnsr_folder))
    assert facts.weights.files == {"model.tnsr": "tnsr"} and facts.weights.errors == []
    assert facts.parameters == {"parameters": 64 * 32 + 32 * 32 + 32, "embedding_parameters": 64 * 32, "non_embedding_parameters": 32 * 32 + 32}
    assert facts.weight_bytes == 64 * 18 + 32 * 18 + 128  # the stored bytes, not elements x a dtype size
    assert facts.weight_dtypes == {"F32": 32, "Q4_X": 64 * 32 + 32 * 32}
    assert facts.embedding_rows == 64
    assert facts.config_error is None and facts.architecture["num_layers"] == 1 and facts.architecture["num_key_value_heads"] == 4


def test_a_registered_source_names_itself_in_errors(tnsr_folder: Path) -> None:
    (tnsr_folder / "model.tnsr").write_bytes(b'{"config": [1], "tensors": []}\n')
    facts = probe_static(Candidate(tnsr_folder))
    assert facts.config_error is not None and facts.config_error.startswith("tnsr metadata: ")


def test_a_registered_format_streams_for_the_finiteness_probe(tnsr_folder: Path) -> None:
    from conformance.probes.runtime import probe_finiteness

    facts = probe_finiteness(Candidate(tnsr_folder), ["model.tnsr"])
    assert facts.tensors_checked == 3 and facts.elements_checked == 64 * 32 + 32 * 32 + 32
    assert facts.nonfinite == {"model.embed_tokens.weight": 1, "model.layers.0.mlp.weight": 1, "model.norm.weight": 1}


def test_finiteness_refuses_a_format_that_does_not_stream(tmp_path: Path) -> None:
    from conformance.errors import CheckError
    from conformance.probes.runtime import probe_finiteness

    (tmp_path / "model.onnx").write_bytes(b"\0")
    with pytest.raises(CheckError, match="not in a weight format whose tensors can be streamed"):
        probe_finiteness(Candidate(tmp_path), ["model.onnx"])


def test_sha256_text_and_stream_agree_with_hashlib() -> None:
    assert sha256_text("naïve") == hashlib.sha256("naïve".encode()).hexdigest()
    assert sha256_text("\ud800", errors="surrogatepass") == hashlib.sha256("\ud800".encode("utf-8", "surrogatepass")).hexdigest()
    with pytest.raises(UnicodeEncodeError):
        sha256_text("\ud800")
    data = bytes(range(256)) * 40
    whole = sha256_stream(io.BytesIO(data), 1000)
    assert (whole.hexdigest, whole.bytes_read, whole.stopped) == (hashlib.sha256(data).hexdigest(), len(data), False)
    head = sha256_stream(io.BytesIO(data), 1000, max_bytes=2500)
    assert (head.hexdigest, head.bytes_read) == (hashlib.sha256(data[:2500]).hexdigest(), 2500)
    chunks: list[int] = []
    stopped = sha256_stream(io.BytesIO(data), 1000, on_chunk=lambda count: chunks.append(count) or len(chunks) < 2)
    assert stopped.stopped and stopped.bytes_read == 2000 and chunks == [1000, 1000]


def test_sha256_stream_callback_may_raise() -> None:
    def spend(count: int) -> None:
        raise RuntimeError("budget spent")

    with pytest.raises(RuntimeError, match="budget spent"):
        sha256_stream(io.BytesIO(b"x" * 10), 4, on_chunk=spend)


class Pack8Layout(TensorLayout):
    """A made-up GPTQ-like layout: `<m>.qweight` I32 [in/8, out] (eight 4-bit values an int) and `<m>.scales` F16 [1, out]."""

    name = "pack8"

    def applies(self, config: dict[str, Any] | None) -> bool:
        return (config or {}).get("quantization_config", {}).get("quant_method") == "pack8"

    def logical_tensors(self, tensors: list[TensorInfo], config: dict[str, Any]) -> list[TensorInfo]:
        by_name = {t.name: t for t in tensors}
        folded: list[TensorInfo] = []
        for tensor in tensors:
            if tensor.name.endswith(".scales"):
                continue
            if not tensor.name.endswith(".qweight"):
                folded.append(tensor)
                continue
            module = tensor.name.removesuffix(".qweight")
            scales = by_name[module + ".scales"]
            packed_in, out = tensor.shape
            stored = tensor.stored_bytes + scales.stored_bytes
            folded.append(TensorInfo(module + ".weight", "F16", (out, packed_in * 8), tensor.file, packed_bytes=stored))
        return folded


def test_a_registered_layout_counts_the_unquantized_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "model.safetensors").write_bytes(
        _safetensors({
            "model.layers.0.proj.qweight": ("I32", [4, 16], b"\0" * 4 * 16 * 4),
            "model.layers.0.proj.scales": ("F16", [1, 16], b"\0" * 16 * 2),
            "model.norm.weight": ("F32", [32], b"\0" * 32 * 4),
        })
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": {"quant_method": "pack8", "bits": 4}}))
    as_stored = probe_static(Candidate(tmp_path))
    # Without a layout that reads them, packed integers are an error of the count, never a wrong count.
    assert as_stored.parameters == {} and "quant_method 'pack8'" in (as_stored.parameters_error or "")
    monkeypatch.setattr(registry, "TENSOR_LAYOUTS", [Pack8Layout()])
    folded = probe_static(Candidate(tmp_path))
    assert folded.parameters["parameters"] == 16 * 32 + 32  # the unquantized model's count
    assert folded.weight_bytes == as_stored.weight_bytes == 4 * 16 * 4 + 16 * 2 + 32 * 4  # bytes on disk either way
