"""runtime.loads tells the truth: weights that do not cover the model's parameters do not pass.

The right answers are transformers' own: its `output_loading_info` keys and the parameters of the model
it builds. A config declaring 24 layers of width 1536 over a file holding only the embeddings and the final
norm makes transformers build 624,066,048 parameters, 623,496,192 of them at random; the suite reports
that without allocating them (the model is only laid out on the meta device).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.backends import Backend
from conformance.backends.base import LoadReport, LoadRequest
from conformance.backends.transformers_loading import load_report, not_runnable_reason
from conformance.candidate import Candidate
from conformance.errors import CheckError
from conformance.evidence import Evidence
from conformance.probes.load import LoadOptions, load_model, loaded_backend
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

RULES = [
    {"id": "LOADS", "level": "must", "check": "runtime.loads"},
    {"id": "LOGITS", "level": "must", "check": "runtime.logits_finite"},
    {"id": "DETERMINISTIC", "level": "must", "check": "runtime.deterministic", "new_tokens": 2},
]
DECLARED_PARAMETERS = 624_066_048  # transformers' sum(p.numel()) of the declared model
HELD_PARAMETERS = 569_856  # 370 x 1536 embeddings + the 1536 final norm


def _load(folder: Path) -> Backend:
    return load_model(Candidate(folder), LoadOptions(device="cpu"), ["safetensors"], [])


def _statuses(folder: Path, write_spec) -> dict:
    result = run(Candidate(folder), load_spec(write_spec(RULES)), RunOptions(log=lambda m: None))
    return {r.id: r for r in result.rules}


@pytest.fixture(scope="module")
def declared_over_embeddings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A llama config of 24 layers, width 1536, over weights holding only the embeddings and final norm."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    folder = tmp_path_factory.mktemp("declared-24x1536")
    config = LlamaConfig(
        hidden_size=1536, num_hidden_layers=24, num_attention_heads=12, num_key_value_heads=6,
        intermediate_size=4096, vocab_size=370, tie_word_embeddings=False, architectures=["LlamaForCausalLM"],
    )
    config.save_pretrained(folder)
    generator = torch.Generator().manual_seed(0)
    tensors = {"model.embed_tokens.weight": torch.randn(370, 1536, generator=generator), "model.norm.weight": torch.ones(1536)}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _transformers_own(folder: Path) -> tuple[set[str], set[str], int, int]:
    """(missing keys, unexpected keys, parameters, uncovered parameter elements) as transformers reports them."""
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(folder, device_map="meta", output_loading_info=True)
    parameters = dict(model.named_parameters())
    uncovered = sum(p.numel() for name, p in parameters.items() if name in info["missing_keys"])
    return set(info["missing_keys"]), set(info["unexpected_keys"]), sum(p.numel() for p in parameters.values()), uncovered


def test_declared_model_over_embeddings_only_fails_with_transformers_missing_count(declared_over_embeddings: Path) -> None:
    missing, unexpected, parameters, uncovered = _transformers_own(declared_over_embeddings)
    assert parameters == DECLARED_PARAMETERS and uncovered == DECLARED_PARAMETERS - HELD_PARAMETERS

    backend = _load(declared_over_embeddings)
    report = backend.facts.loading
    assert report is not None and not report.covered
    assert (report.missing_count, report.unexpected_count, report.uncovered_parameters) == (len(missing), len(unexpected), uncovered)
    assert report.missing_count == 217 and set(report.missing_keys) <= missing and len(report.missing_keys) == 20
    assert backend.facts.parameters == DECLARED_PARAMETERS
    assert report.built is False and backend.facts.device == "meta"  # laid out only: 2.3 GiB never allocated
    assert backend.not_runnable is not None and "623,496,192 of its 624,066,048 parameters" in backend.not_runnable


def test_runtime_loads_fails_and_nothing_runs_on_the_random_model(declared_over_embeddings: Path, write_spec) -> None:
    results = _statuses(declared_over_embeddings, write_spec)
    loads = results["LOADS"]
    assert loads.status == "fail", loads.message
    assert "623,496,192 of 624,066,048 parameters are not in the weights" in loads.message
    assert "217 missing" in loads.message and "lm_head.weight" in loads.message
    assert loads.observed["missing_keys"] == 217 and loads.observed["uncovered_parameters"] == 623_496_192
    for rule in ("LOGITS", "DETERMINISTIC"):
        assert results[rule].status == "error" and "do not cover the model" in results[rule].message


def test_duplicated_model_type_loads_llama_weights_as_random_gpt2(llama_dir: Path, copy_model, write_spec) -> None:
    folder = copy_model(llama_dir, "llama-as-gpt2")
    text = (folder / "config.json").read_text()
    assert json.loads(text)["model_type"] == "llama"
    # JSON keeps the last of duplicated keys: Python's json and transformers read model_type "gpt2".
    (folder / "config.json").write_text(text.rstrip().removesuffix("}").rstrip() + ',\n  "model_type": "gpt2"\n}\n')
    missing, unexpected, parameters, uncovered = _transformers_own(folder)
    backend = _load(folder)
    report = backend.facts.loading
    assert report is not None and backend.facts.model_class == "GPT2LMHeadModel"
    assert (report.missing_count, report.unexpected_count, report.uncovered_parameters) == (len(missing), len(unexpected), uncovered)
    from safetensors import safe_open

    with safe_open(str(llama_dir / "model.safetensors"), "pt") as handle:
        llama_tensors = set(handle.keys())
    # Only lm_head.weight (vocabulary x width in both families) lands, and GPT-2 ties it to its embedding;
    # every other tensor in the file is unused and every other GPT-2 parameter is random.
    assert unexpected == llama_tensors - {"lm_head.weight"}
    assert uncovered == parameters - 512 * 64 and uncovered > 0.8 * parameters
    results = _statuses(folder, write_spec)
    assert results["LOADS"].status == "fail" and "GPT2" not in results["LOADS"].message
    assert f"{uncovered:,} of {parameters:,} parameters" in results["LOADS"].message
    assert f"{len(unexpected)} checkpoint tensors unused" in results["LOADS"].message
    assert results["LOGITS"].status == "error"


@pytest.mark.parametrize("fixture", ["llama_dir", "tied_llama_dir"])
def test_a_whole_checkpoint_passes_with_nothing_missing(fixture: str, request: pytest.FixtureRequest) -> None:
    backend = _load(request.getfixturevalue(fixture))
    report = backend.facts.loading
    assert report is not None and report.built and report.covered
    assert (report.missing_count, report.unexpected_count, report.mismatched_count, report.uncovered_parameters) == (0, 0, 0, 0)
    assert backend.not_runnable is None and backend.to_dict()["loading"]["missing_keys"] == []
    backend.release()


def test_tied_embeddings_are_not_missing(tied_llama_dir: Path, write_spec) -> None:
    from safetensors import safe_open

    with safe_open(str(tied_llama_dir / "model.safetensors"), "pt") as handle:
        assert "lm_head.weight" not in set(handle.keys())  # the head is the embedding: stored once
    results = _statuses(tied_llama_dir, write_spec)
    assert {k: r.status for k, r in results.items()} == dict.fromkeys(results, "pass")
    assert results["LOADS"].observed["missing_keys"] == 0 and results["LOADS"].observed["uncovered_parameters"] == 0


def test_a_pickle_checkpoint_missing_weights_is_built_then_released(llama_dir: Path, copy_model) -> None:
    import torch
    from safetensors.torch import load_file

    folder = copy_model(llama_dir, "pickled-partial")
    tensors = load_file(folder / "model.safetensors")
    dropped = sorted(name for name in tensors if name.startswith("model.layers.1."))
    torch.save({name: value for name, value in tensors.items() if name not in dropped}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    backend = load_model(Candidate(folder), LoadOptions(device="cpu"), ["pickle"], [])
    report = backend.facts.loading
    assert report is not None and report.built and report.missing_count == len(dropped)
    assert report.uncovered_parameters == sum(tensors[name].numel() for name in dropped)
    evidence = Evidence()
    evidence.put("load", backend)
    with pytest.raises(CheckError, match="do not cover the model"):
        loaded_backend(evidence)
    assert getattr(backend, "model", None) is None  # released at once


def test_load_report_bounds_lists_and_counts_mismatched_parameters() -> None:
    import torch

    model = torch.nn.Sequential(*(torch.nn.Linear(2, 2) for _ in range(30)))  # 60 parameters of 4 or 2 elements
    info = {
        "missing_keys": {f"{i}.{kind}" for i in range(1, 30) for kind in ("weight", "bias")} | {"0.bias", "running_mean"},
        "unexpected_keys": set(),
        "mismatched_keys": {("0.weight", (2, 5), (2, 2))},
    }
    request = LoadRequest(Path("."), ".", {}, "causal", "safetensors", False, "cpu", "float32", False, 0.0)
    report = load_report(model, info, request, built=True)
    assert report.missing_count == 59 and len(report.missing_keys) == 20 and report.missing_keys[0] == "0.bias"
    assert (report.uncounted_keys, report.uncounted_count) == (["running_mean"], 1)  # not a parameter: not counted
    assert report.mismatched_keys == ["0.weight: (2, 5) -> (2, 2)"] and report.uncovered_parameters == 30 * 6
    assert not report.covered and "180 of its 180 parameters" in (not_runnable_reason(report, 180) or "")
    assert LoadReport().covered and not_runnable_reason(LoadReport(), 1) is None


def test_an_encoder_without_its_pooler_passes_but_not_without_a_layer(bert_dir: Path, copy_model) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(bert_dir / "model.safetensors")
    pooler = sorted(name for name in tensors if ".pooler." in f".{name}")
    assert pooler  # the zoo BERT ships its pooler
    no_pooler = copy_model(bert_dir, "bert-no-pooler")
    save_file({k: v for k, v in tensors.items() if k not in pooler}, str(no_pooler / "model.safetensors"), metadata={"format": "pt"})
    report = _load(no_pooler).facts.loading
    assert report is not None and report.covered and report.uncounted_count == len(pooler) and report.missing_count == 0
    layer = [name for name in tensors if ".layer.0." in name]
    no_layer = copy_model(bert_dir, "bert-no-layer")
    save_file({k: v for k, v in tensors.items() if k not in layer}, str(no_layer / "model.safetensors"), metadata={"format": "pt"})
    report = _load(no_layer).facts.loading
    assert report is not None and not report.covered and report.missing_count == len(layer)
    assert report.uncovered_parameters == sum(tensors[name].numel() for name in layer)


def test_runtime_loads_judges_the_load_report() -> None:
    from conformance.backends.base import ModelFacts
    from conformance.checks.runtime import loads
    from conformance.rule import Rule

    def verdict(report: LoadReport | None):
        evidence = Evidence()
        evidence.put("load", ModelFacts("causal", "LlamaForCausalLM", "cpu", "float32", 0.5, 1000, {}, 800, 100, 4, report))
        return loads(evidence, Rule("LOADS", "must", "runtime.loads", {}, {}))

    assert verdict(None).status == "pass"  # facts of a model built in memory carry no report
    unused = verdict(LoadReport(unexpected_keys=["rotary_emb.inv_freq"], unexpected_count=1))
    assert unused.status == "pass" and "1 checkpoint tensors unused: rotary_emb.inv_freq" in unused.message
    gguf = verdict(LoadReport(dequantized_from="gguf", source_file="m.gguf"))
    assert gguf.status == "pass" and gguf.observed["dequantized_from"] == "gguf" and "dequantized from gguf (m.gguf)" in gguf.message
    partial = verdict(LoadReport(missing_keys=["lm_head.weight"], missing_count=1, uncovered_parameters=100))
    assert partial.status == "fail" and partial.message.startswith("100 of 1,000 parameters are not in the weights")
    assert partial.observed["missing_keys"] == 1 and partial.observed["uncovered_parameters"] == 100
