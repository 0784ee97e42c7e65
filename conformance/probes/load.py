"""The load probe: one safe model load per model and run, shared by every runtime probe.

transformers' Auto classes with trust_remote_code=False always; safetensors preferred; a pickle-based
weights file only with weights_only=True and only after the serialization scan cleared it. The loader
reads a staging folder of verified files only (load_preflight): nothing outside the model folder is opened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..candidate import Candidate
from ..errors import CheckError
from ..probe_registry import ProbeContext, probe
from .load_preflight import LoadRefused, staged_folder

ENCODER_MODEL_TYPES = frozenset({"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta", "mpnet", "camembert", "modernbert"})


@dataclass
class LoadOptions:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device_map_auto: bool = False  # accelerate's device_map="auto" for models larger than one device


@dataclass
class ModelFacts:
    """What rules need to know of a loaded model, as plain data: kept in the evidence and the cache."""

    kind: str
    model_class: str
    device: str
    dtype: str
    load_seconds: float
    parameters: int
    architecture: dict[str, Any]  # normalized fields plus head_dim
    matmul_body: int  # ≥2-D weights but embeddings and the LM head (roofline)
    matmul_head: int  # the LM head's weight
    element_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "class": self.model_class,
            "device": self.device,
            "dtype": self.dtype,
            "load_seconds": round(self.load_seconds, 4),
            "parameters": self.parameters,
            "architecture": self.architecture,
            "matmul_body": self.matmul_body,
            "matmul_head": self.matmul_head,
            "element_bytes": self.element_bytes,
        }


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    kind: str  # "causal" | "encoder"
    device: str  # where inputs go: "cpu", "cuda:0"
    dtype: str  # torch dtype name of the weights, e.g. "float32"
    load_seconds: float
    architecture: dict[str, Any] = field(default_factory=dict)

    @property
    def facts(self) -> ModelFacts:
        from .roofline import model_matmul_parameters

        config = getattr(self.model, "config", None)
        architecture = dict(self.architecture)
        # head_dim is not in the common vocabulary but some families (Gemma, Qwen3) set it apart from h / H.
        architecture["head_dim"] = getattr(config, "head_dim", None)
        matmul = model_matmul_parameters(self.model)
        return ModelFacts(
            kind=self.kind,
            model_class=type(self.model).__name__,
            device=self.device,
            dtype=self.dtype,
            load_seconds=self.load_seconds,
            parameters=int(sum(p.numel() for p in self.model.parameters())),
            architecture=architecture,
            matmul_body=matmul.body,
            matmul_head=matmul.head,
            element_bytes=int(next(self.model.parameters()).element_size()),
        )

    def to_dict(self) -> dict[str, Any]:
        return self.facts.to_dict()


def model_facts(value: Any) -> ModelFacts:
    """The load probe's evidence as facts, whether it holds the live model or cached facts."""
    return value.facts if isinstance(value, LoadedModel) else value


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CheckError(f"device {requested} requested but no CUDA device is available")
        return "cuda:0" if requested == "cuda" else requested
    if requested != "cpu":
        raise CheckError(f"unknown device {requested!r} (auto, cpu, cuda, cuda:N)")
    return "cpu"


def model_kind(config: dict[str, Any]) -> str:
    architectures = " ".join(config.get("architectures") or [])
    if "CausalLM" in architectures or "LMHeadModel" in architectures:
        return "causal"
    if config.get("model_type") in ENCODER_MODEL_TYPES or config.get("is_encoder_decoder"):
        return "encoder"
    return "causal"


def _torch_dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        return "auto" if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def load_model(candidate: Candidate, options: LoadOptions, weights_formats: list[str], scan_flagged: list[str]) -> LoadedModel:
    """Load once; refuse flagged or unscanned pickles, remote code, and anything but local files.

    Raises CheckError with the reason: "not loaded: ..." when a file the load would open is outside the
    folder, not a regular file or named unsafely (load_preflight.plan_load), "load failed: ..." otherwise.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # our own progress lines say what is happening

    use_safetensors = "safetensors" in weights_formats
    if not use_safetensors:
        if "pickle" not in weights_formats:
            raise CheckError("no loadable weights (neither safetensors nor a scanned PyTorch checkpoint)")
        if scan_flagged:
            raise CheckError(f"not loaded: the serialization scan flagged {', '.join(scan_flagged)}")
    try:
        config = candidate.config
    except ValueError as exc:
        raise CheckError(f"not loaded: {exc}") from None
    if config.get("auto_map"):
        raise CheckError("not loaded: the model needs its own code (auto_map); remote code is never trusted")
    device = resolve_device(options.device)
    kind = model_kind(config)
    started = time.perf_counter()
    common: dict[str, Any] = {"trust_remote_code": False, "local_files_only": True}
    try:
        # The loader reads a staging folder holding only the verified files (load_preflight explains why).
        with staged_folder(candidate.path, "safetensors" if use_safetensors else "pickle") as folder:
            hf_config = AutoConfig.from_pretrained(folder, **common)
            auto_class = AutoModelForCausalLM if kind == "causal" else AutoModel
            model = auto_class.from_pretrained(
                folder,
                config=hf_config,
                dtype=_torch_dtype(options.dtype, device),
                use_safetensors=use_safetensors,
                device_map="auto" if options.device_map_auto else None,
                **common,
            )
            # transformers loads .bin files with torch.load(weights_only=True) since 4.50+ / torch 2.6.
            if not options.device_map_auto:
                model = model.to(device)
            model.eval()
            tokenizer = AutoTokenizer.from_pretrained(folder, **common) if _has_tokenizer(candidate) else None
        _name_after_the_candidate(model, tokenizer, str(candidate.path))
    except LoadRefused as exc:
        raise CheckError(f"not loaded: {exc}") from None
    except CheckError:
        raise
    except Exception as exc:  # transformers raises many types for bad configs and weights
        raise CheckError(f"load failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    first = next(model.parameters())
    from .architecture import normalize_architecture

    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        kind=kind,
        device=str(first.device) if options.device_map_auto else device,
        dtype=str(first.dtype).removeprefix("torch."),
        load_seconds=time.perf_counter() - started,
        architecture=normalize_architecture(config),
    )


def _name_after_the_candidate(model: Any, tokenizer: Any, path: str) -> None:
    """Loaded objects name the model folder, not the staging folder that is gone once loaded."""
    if getattr(model, "config", None) is not None:
        model.config._name_or_path = path
    if tokenizer is not None:
        tokenizer.name_or_path = path


def _has_tokenizer(candidate: Candidate) -> bool:
    names = set(candidate.file_names())
    return bool(names & {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model"})


@probe("load", evidence=ModelFacts, depends=("static", "scan"), cacheable=True, summary=model_facts)
def load_probe(context: ProbeContext) -> LoadedModel:
    """The loaded model (cached and kept after the run as its ModelFacts)."""
    static = context.evidence.get("static")
    scan = context.evidence.get("scan")
    return load_model(context.candidate, context.options.load, static.weights.formats, scan.flagged_files)
