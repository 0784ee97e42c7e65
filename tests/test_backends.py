"""The backend seam: the contract, the registry, the one prefix/pad token choice, facts computed once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy
import pytest

from conformance.backends import BACKENDS, Activations, Backend, LoadRequest, ModelFacts, TransformersBackend, backend_class
from conformance.backends.special_tokens import PRECEDENCE, prefix_token_id
from conformance.candidate import Candidate
from conformance.errors import CheckError, CheckSkipped
from conformance.probes.generations import generate_greedy
from conformance.probes.load import LoadOptions, load_model, model_facts
from conformance.probes.runtime import PROBE_TEXT, probe_determinism, probe_forward

# --- a backend without torch models ---------------------------------------------------------------


class FakeBackend(Backend):
    """Characters as token ids; "generation" counts up from the last prompt id; logits are fixed numbers."""

    name = "fake"

    def __init__(self, kind: str = "causal", logits: numpy.ndarray | None = None, tokenizer: bool = True) -> None:
        self.kind, self.device, self.dtype, self.load_seconds = kind, "cpu", "float32", 0.0
        self.architecture = {"vocab_size": 128, "context_length": 256}  # one token per character: the probe text fits
        self.facts = ModelFacts(kind, "Fake", "cpu", "float32", 0.0, 10, {}, 8, 2, 4)
        self._tokenizer = tokenizer
        self._logits = logits
        self.calls: list[tuple[str, Any]] = []
        self.releases = 0

    @classmethod
    def resolve_device(cls, requested: str) -> str:
        return "cpu"

    @classmethod
    def load(cls, request: LoadRequest) -> FakeBackend:
        return cls(request.kind)

    @property
    def has_tokenizer(self) -> bool:
        return self._tokenizer

    def encode(self, text: str) -> numpy.ndarray:
        return numpy.array([[ord(char) % 128 for char in text]])

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def random_tokens(self, rows: int, length: int, seed: int, vocab_size: int | None = None) -> numpy.ndarray:
        return numpy.random.default_rng(seed).integers(0, vocab_size or 128, (rows, length))

    def prefix_token_id(self) -> int:
        return 1

    def forward(self, ids: Any) -> Activations:
        self.calls.append(("forward", ids.shape))
        rows, length = ids.shape
        values = self._logits if self._logits is not None else numpy.full((rows, length, 4), 0.5, dtype=numpy.float32)
        return Activations("logits" if self.kind == "causal" else "last_hidden_state", values)

    def prefill(self, ids: Any) -> Any:
        return self.generate(ids, 1, min_new_tokens=1)

    def generate(self, ids: Any, max_new_tokens: int, *, min_new_tokens: int = 0, stop_ids: Sequence[int] | None = None) -> numpy.ndarray:
        self.calls.append(("generate", (max_new_tokens, min_new_tokens)))
        start = ids[:, -1:] + 1
        return (start + numpy.arange(max_new_tokens)) % 128

    def lm_eval_model(self, batch_size: int) -> Any:
        raise NotImplementedError

    def lm_eval_settings(self, lm: Any) -> dict[str, Any]:
        return {}

    def weights_bytes(self) -> int:
        return 40

    def release(self) -> None:
        self.releases += 1


def test_the_contract_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        Backend()  # type: ignore[abstract]

    class WithoutGenerate(Backend):
        def forward(self, ids: Any) -> Activations:
            raise NotImplementedError

    with pytest.raises(TypeError, match="generate"):
        WithoutGenerate()  # type: ignore[abstract]
    required = {"resolve_device", "load", "has_tokenizer", "encode", "decode", "random_tokens", "prefix_token_id", "forward", "prefill", "generate", "lm_eval_model", "lm_eval_settings", "weights_bytes", "release"}
    assert set(Backend.__abstractmethods__) == required
    assert isinstance(FakeBackend(), Backend)  # a complete subclass instantiates


def test_determinism_and_forward_probes_run_on_a_backend_without_torch_models() -> None:
    backend = FakeBackend()
    facts = probe_determinism(backend, 5)
    expected = [(ord(PROBE_TEXT[-1]) + 1 + i) % 128 for i in range(5)]
    assert facts.identical and facts.first == facts.second == expected
    assert backend.calls == [("generate", (5, 5)), ("generate", (5, 5))]  # fixed length: min = max

    logits = numpy.zeros((1, 3, 2), dtype=numpy.float32)
    logits[0, 0, 0], logits[0, 1, 1], logits[0, 2, 0] = numpy.nan, -7.5, numpy.inf
    forward = probe_forward(FakeBackend(logits=logits))
    assert (forward.output, forward.shape, forward.finite, forward.nonfinite_count, forward.max_abs) == ("logits", [1, 3, 2], False, 2, 7.5)

    encoder = FakeBackend(kind="encoder")
    facts = probe_determinism(encoder, 5)
    assert facts.method == "two forward passes, bitwise" and facts.identical
    assert [name for name, _ in encoder.calls] == ["forward", "forward"]


def test_without_a_tokenizer_the_probe_input_is_seeded_random_ids() -> None:
    backend = FakeBackend(tokenizer=False)
    probe_forward(backend)
    assert backend.calls == [("forward", (1, 16))]


def test_generations_probe_runs_on_a_backend_without_torch_models() -> None:
    generations = generate_greedy(FakeBackend(), ["ab", "x"], 3)
    assert generations.completions == ["cde", "yz{"]
    with pytest.raises(CheckSkipped, match="encoder-only"):
        generate_greedy(FakeBackend(kind="encoder"), ["ab"], 3)
    with pytest.raises(CheckError, match="tokenizer"):
        generate_greedy(FakeBackend(tokenizer=False), ["ab"], 3)


def test_speed_probe_runs_on_a_backend_without_torch_models() -> None:
    pytest.importorskip("torch")  # the CPU timer and the environment record torch's version
    from conformance.probes.speed import measure_speed, speed_params

    backend = FakeBackend()
    params = speed_params({"workload": {"batch_size": 2, "prompt_tokens": 8, "new_tokens": 4}, "measurement": {"warmup_runs": 1, "min_runs": 2, "min_seconds": 0.0}})
    speed = measure_speed(backend, params)
    assert speed.runs >= 2 and speed.peak_memory_bytes is not None and speed.peak_memory_bytes >= 40
    assert ("generate", (4, 4)) in backend.calls and ("generate", (1, 1)) in backend.calls
    with pytest.raises(CheckError, match="context length is 256"):
        measure_speed(backend, speed_params({"workload": {"batch_size": 1, "prompt_tokens": 255, "new_tokens": 2}}))


def test_load_facts_are_served_live_or_cached() -> None:
    backend = FakeBackend()
    assert model_facts(backend) is backend.facts and model_facts(backend.facts) is backend.facts
    assert backend.to_dict() == backend.facts.to_dict()


def test_releasing_the_evidence_releases_the_live_backend_once() -> None:
    """Memory comes back when the evidence lets go of the model, not whenever the object is collected."""
    from conformance.evidence import Evidence

    backend, evidence = FakeBackend(), Evidence()
    evidence.put("load", backend)
    evidence.put("plain", {"value": 1})
    evidence.release("load")
    evidence.release("load")  # the summary left behind has nothing to release
    evidence.release("plain")
    assert backend.releases == 1
    assert evidence.peek("load") == backend.facts.to_dict() and evidence.peek("plain") == {"value": 1}


# --- choosing a backend ---------------------------------------------------------------------------


def test_backends_are_chosen_by_name() -> None:
    assert BACKENDS["transformers"] is TransformersBackend  # a new backend adds an entry; this one stays
    assert backend_class("transformers") is TransformersBackend and LoadOptions().backend == "transformers"
    with pytest.raises(CheckError, match=r"unknown backend 'gguf' \(known: transformers\)"):
        backend_class("gguf")


def test_the_load_probe_loads_through_the_chosen_backend(llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requests: list[LoadRequest] = []

    class Recording(FakeBackend):
        @classmethod
        def load(cls, request: LoadRequest) -> FakeBackend:
            requests.append(request)
            assert sorted(path.name for path in request.folder.iterdir())  # the staging folder, while it exists
            return cls(request.kind)

    monkeypatch.setitem(BACKENDS, "fake", Recording)
    loaded = load_model(Candidate(llama_dir), LoadOptions(backend="fake"), ["safetensors"], [])
    assert isinstance(loaded, Recording)
    (request,) = requests
    assert (request.kind, request.weights_format, request.has_tokenizer, request.device) == ("causal", "safetensors", True, "cpu")
    assert request.model_path == str(llama_dir) and request.folder != llama_dir and not request.folder.exists()


def test_importing_the_backends_imports_no_inference_library() -> None:
    code = "import sys, conformance.backends; print(sorted(m for m in ('torch', 'transformers', 'lm_eval', 'numpy') if m in sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


# --- the one prefix/pad token choice -----------------------------------------------------------------

SOURCES = ("tokenizer", "config", "generation_config")


@pytest.mark.parametrize("rank", range(len(PRECEDENCE)))
def test_each_source_wins_over_every_later_one(rank: int) -> None:
    """Rank r set to 100 + r, every later source set too: rank r's id is chosen; earlier ones unset."""
    namespaces = {source: SimpleNamespace() for source in SOURCES}
    for later, (source, attribute) in enumerate(PRECEDENCE[rank:], start=rank):
        setattr(namespaces[source], attribute, 100 + later)
    assert prefix_token_id(**namespaces) == 100 + rank


def test_the_documented_order() -> None:
    assert PRECEDENCE == (
        ("tokenizer", "bos_token_id"),
        ("tokenizer", "eos_token_id"),
        ("config", "bos_token_id"),
        ("config", "eos_token_id"),
        ("tokenizer", "pad_token_id"),
        ("generation_config", "bos_token_id"),
        ("generation_config", "eos_token_id"),
        ("config", "pad_token_id"),
        ("generation_config", "pad_token_id"),
    )


@pytest.mark.parametrize(
    ("value", "chosen"),
    [([7, 8], 7), ((9,), 9), ([], None), (True, None), (-1, None), (None, None), ("2", None), (0, 0), (5, 5)],
)
def test_lists_give_their_first_id_and_non_ids_are_skipped(value: object, chosen: int | None) -> None:
    assert prefix_token_id(config=SimpleNamespace(eos_token_id=value)) == (0 if chosen is None else chosen)
    assert prefix_token_id(config=SimpleNamespace(eos_token_id=value, pad_token_id=3)) == (3 if chosen is None else chosen)


def tiny_tokenizer(**special: str) -> Any:
    """A real (fast) transformers tokenizer over six words, with the given special tokens."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {word: index for index, word in enumerate(["<unk>", "<s>", "</s>", "<pad>", "hello", "world"])}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", **special)


@pytest.mark.parametrize(
    ("special", "config", "generation", "expected"),
    [
        ({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, {"bos_token_id": 5}, {}, 1),  # Llama-style: BOS
        ({"bos_token": "</s>", "eos_token": "</s>"}, {}, {}, 2),  # GPT-2-style: BOS is EOS
        ({"eos_token": "</s>", "pad_token": "<pad>"}, {"bos_token_id": 4}, {}, 2),  # tokenizer EOS before config BOS
        ({"pad_token": "<pad>"}, {"bos_token_id": None, "eos_token_id": [5, 4]}, {}, 5),  # config EOS list
        ({"pad_token": "<pad>"}, {"bos_token_id": None, "eos_token_id": None}, {"eos_token_id": 4}, 3),  # tokenizer PAD
        ({}, {"bos_token_id": None, "eos_token_id": None, "pad_token_id": 5}, {"bos_token_id": 4}, 4),  # generation config
        ({}, {"bos_token_id": None, "eos_token_id": None}, {}, 0),  # nothing named: 0
    ],
)
def test_precedence_on_real_tokenizers_and_configs(special: dict, config: dict, generation: dict, expected: int) -> None:
    transformers = pytest.importorskip("transformers")
    tokenizer = tiny_tokenizer(**special)
    model_config = transformers.PretrainedConfig(**config)
    generation_config = transformers.GenerationConfig(**generation)
    assert prefix_token_id(tokenizer, model_config, generation_config) == expected


# --- the transformers backend -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama() -> TransformersBackend:
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64, vocab_size=64)
    model = LlamaForCausalLM(config).eval()
    return TransformersBackend(model, None, "causal", "cpu", "float32", 0.0, {"vocab_size": 64, "context_length": 2048})


def test_facts_are_computed_once_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=32)).eval()
    walks = []
    original = type(model).parameters

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        walks.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "parameters", counting)
    backend = TransformersBackend(model, None, "causal", "cpu", "float32", 0.25, {"num_layers": 1})
    at_load = len(walks)
    assert at_load > 0
    for _ in range(5):
        facts = backend.facts
        backend.to_dict()
        model_facts(backend)
    assert len(walks) == at_load  # access walks nothing
    assert facts.parameters == sum(p.numel() for p in original(model)) and facts.model_class == "LlamaForCausalLM"
    assert facts.architecture == {"num_layers": 1, "head_dim": model.config.head_dim} and facts.element_bytes == 4


def test_generate_returns_the_new_tokens_and_fixes_the_length(tiny_llama: TransformersBackend) -> None:
    ids = tiny_llama.random_tokens(2, 5, seed=3)
    assert tuple(ids.shape) == (2, 5) and int(ids.max()) < 64
    assert tiny_llama.random_tokens(2, 5, seed=3).tolist() == ids.tolist()  # seeded
    first = int(tiny_llama.prefill(ids)[0, -1])
    own_eos = tiny_llama.model.generation_config.eos_token_id
    tiny_llama.model.generation_config.eos_token_id = first
    try:
        stopped = tiny_llama.generate(ids[:1], 6)
        fixed = tiny_llama.generate(ids[:1], 6, min_new_tokens=6)
        own_stop = tiny_llama.generate(ids[:1], 6, stop_ids=[63 if first != 63 else 62])
    finally:
        tiny_llama.model.generation_config.eos_token_id = own_eos
    assert stopped.tolist() == [[first]]  # stops at the model's own end of sequence
    assert tuple(fixed.shape) == (1, 6) and first not in fixed.tolist()[0]
    assert own_stop.tolist()[0][0] == first  # other stop ids: the old EOS is an ordinary token
    with pytest.raises(ValueError, match="stop_ids"):
        tiny_llama.generate(ids, 2, stop_ids=[])


def test_every_probe_passes_the_one_pad_id(tiny_llama: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes.speed import measure_speed, speed_params

    seen: list[Any] = []
    original = tiny_llama.model.generate

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["pad_token_id"])
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_llama.model, "generate", recording)
    probe_determinism(tiny_llama, 3)
    measure_speed(tiny_llama, speed_params({"workload": {"batch_size": 1, "prompt_tokens": 4, "new_tokens": 2}, "measurement": {"warmup_runs": 0, "min_runs": 2, "min_seconds": 0.0}}))
    assert seen and set(seen) == {tiny_llama.prefix_token_id()} == {tiny_llama.model.config.bos_token_id}


def test_forward_gives_float32_numpy_values(tiny_llama: TransformersBackend) -> None:
    activations = tiny_llama.forward(tiny_llama.random_tokens(1, 4, seed=0))
    assert activations.name == "logits" and activations.values.shape == (1, 4, 64) and activations.values.dtype == numpy.float32
    assert tiny_llama.context_length() == 2048 and tiny_llama.weights_bytes() > 0


def test_release_drops_the_model_and_keeps_the_facts() -> None:
    pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=32))
    backend = TransformersBackend(model, None, "causal", "cpu", "float32", 0.0)
    facts = backend.facts
    backend.release()
    assert backend.model is None and backend.facts is facts
