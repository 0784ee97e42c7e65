"""The load probe: one safe model load per model and run, shared by every runtime probe.

What may be loaded is decided here: safetensors preferred; a pickle-based weights file only after the
serialization scan cleared it; never a model that needs its own code (auto_map). The backend
(`LoadOptions.backend`, `conformance.backends`) then loads from a staging folder of verified files only
(load_preflight), so nothing outside the model folder is opened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..backends import DEFAULT_BACKEND, Backend, LoadRequest, ModelFacts, backend_class
from ..candidate import Candidate
from ..errors import CheckError
from ..evidence import Evidence
from ..probe_registry import ProbeContext, probe
from .load_preflight import LoadRefused, staged_folder

ENCODER_MODEL_TYPES = frozenset({"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta", "mpnet", "camembert", "modernbert"})
TOKENIZER_FILES = frozenset({"tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model"})


@dataclass
class LoadOptions:
    """How the run loads each model: device, weights dtype, accelerate's device map, and the backend."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device_map_auto: bool = False  # accelerate's device_map="auto" for models larger than one device
    backend: str = DEFAULT_BACKEND  # a name in conformance.backends.BACKENDS


def model_facts(value: Any) -> ModelFacts:
    """The load probe's evidence as facts, whether it holds the live backend or cached facts."""
    return value.facts if isinstance(value, Backend) else value


def loaded_backend(evidence: Evidence) -> Backend:
    """The live backend the load probe holds; CheckError when the load failed or only its facts are kept."""
    backend: Backend = evidence.get("load", (Backend,))
    return backend


def model_kind(config: dict[str, Any]) -> str:
    """The model's kind from config.json: causal for *CausalLM / *LMHeadModel, encoder for encoder families.

    Anything else is treated as causal.
    """
    architectures = " ".join(config.get("architectures") or [])
    if "CausalLM" in architectures or "LMHeadModel" in architectures:
        return "causal"
    if config.get("model_type") in ENCODER_MODEL_TYPES or config.get("is_encoder_decoder"):
        return "encoder"
    return "causal"


def load_model(candidate: Candidate, options: LoadOptions, weights_formats: list[str], scan_flagged: list[str]) -> Backend:
    """Load once; refuse flagged or unscanned pickles, remote code, and anything but local files.

    Returns the loaded backend (`options.backend`), its facts computed. Raises CheckError with the reason:
    "not loaded: ..." when a file the load would open is outside the folder, not a regular file or named
    unsafely (load_preflight.plan_load), "load failed: ..." when the library fails.
    """
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
    backend = backend_class(options.backend)
    device = backend.resolve_device(options.device)
    weights_format = "safetensors" if use_safetensors else "pickle"
    started = time.perf_counter()
    try:
        # The loader reads a staging folder holding only the verified files (load_preflight explains why).
        with staged_folder(candidate.path, weights_format) as folder:
            return backend.load(
                LoadRequest(
                    folder=folder,
                    model_path=str(candidate.path),
                    config=config,
                    kind=model_kind(config),
                    weights_format=weights_format,
                    has_tokenizer=bool(set(candidate.file_names()) & TOKENIZER_FILES),
                    device=device,
                    dtype=options.dtype,
                    device_map_auto=options.device_map_auto,
                    started=started,
                )
            )
    except LoadRefused as exc:
        raise CheckError(f"not loaded: {exc}") from None
    except CheckError:
        raise
    except Exception as exc:  # staging the folder failed (the backend maps its own library's errors)
        raise CheckError(f"load failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


@probe("load", evidence=ModelFacts, depends=("static", "scan"), cacheable=True, summary=model_facts)
def load_probe(context: ProbeContext) -> Backend:
    """The loaded model (cached and kept after the run as its ModelFacts)."""
    static = context.evidence.get("static")
    scan = context.evidence.get("scan")
    return load_model(context.candidate, context.options.load, static.weights.formats, scan.flagged_files)
