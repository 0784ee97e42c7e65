"""The load probe: one safe model load per model and run, shared by every runtime probe.

What may be loaded is decided here: safetensors preferred; a pickle-based weights file only after the
serialization scan cleared it; else a GGUF file, which the backend dequantizes; never a model that needs
its own code (auto_map). The backend
(`LoadOptions.backend`, `conformance.backends`) then loads from a staging folder of verified files only
(load_preflight), so nothing outside the model folder is opened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..backends import DEFAULT_BACKEND, Backend, LoadRequest, ModelFacts, backend_class
from ..candidate import Candidate
from ..errors import CheckError, CheckSkipped
from ..evidence import Evidence
from ..formats.gguf import gguf_model_files, read_gguf
from ..probe_registry import ProbeContext, probe
from .kinds import model_kind  # the four kinds; tests and callers import it from here too
from .load_preflight import LoadRefused, staged_folder
from .static import StaticFacts

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
    """The live backend the load probe holds; CheckError when the load failed or only its facts are kept.

    Also CheckError when the weights did not cover the model (`Backend.not_runnable`): a model whose
    parameters are partly random is not the one the checkpoint stands for, so nothing is measured on it.
    """
    backend: Backend = evidence.get("load", (Backend,))
    if backend.not_runnable:
        raise CheckError(backend.not_runnable)
    return backend


def gguf_weights_file(file_kinds: dict[str, str]) -> str:
    """The GGUF file a load hands the library (`formats.gguf.gguf_model_files`: the folder's one model).

    `file_kinds` maps weight files to their kinds (`WeightsInfo.files`). Raises CheckError when the folder
    holds no GGUF model or several different ones, CheckSkipped for a split file (transformers loads one
    file).
    """
    try:
        names = gguf_model_files([name for name, kind in file_kinds.items() if kind == "gguf"])
    except ValueError as exc:
        raise CheckError(f"not loaded: {exc}") from None
    if len(names) > 1:
        raise CheckSkipped(f"{names[0]} is the first of {len(names)} parts of a split GGUF file, which transformers does not load")
    return names[0]


def refuse_unreadable_gguf(candidate: Candidate, weights_file: str) -> None:
    """CheckError when the bounded header reader (`formats.gguf_header`) rejects the GGUF file a load would use.

    transformers' own reader trusts every count and offset, so a file whose header or tensor infos the
    suite's reader refused is never handed to it: its failure would be a raw struct or numpy error (or a
    read past the file) instead of the reason. The header is parsed once per file (cached).
    """
    try:
        header = read_gguf(candidate, weights_file)
    except (OSError, ValueError) as exc:
        raise CheckError(f"not loaded: {weights_file}: {exc}") from None
    if header.tensors_error is not None:
        raise CheckError(f"not loaded: {weights_file}: {header.tensors_error}")


def _weights_choice(weights_formats: list[str], scan_flagged: list[str]) -> str:
    """The weights format a load uses: safetensors, else a scanned-clean pickle, else GGUF (dequantized)."""
    if "safetensors" in weights_formats:
        return "safetensors"
    if "pickle" in weights_formats:
        if scan_flagged:
            raise CheckError(f"not loaded: the serialization scan flagged {', '.join(scan_flagged)}")
        return "pickle"
    if "gguf" in weights_formats:
        return "gguf"
    raise CheckError("no loadable weights (neither safetensors, a scanned PyTorch checkpoint, nor a GGUF file)")


def load_model(
    candidate: Candidate,
    options: LoadOptions,
    weights_formats: list[str],
    scan_flagged: list[str],
    static: StaticFacts | None = None,
) -> Backend:
    """Load once; refuse flagged or unscanned pickles, remote code, and anything but local files.

    `static` (the static probe's facts) supplies a GGUF folder's file, config and stored types; without
    it a GGUF load finds the folder's GGUF model by name and lets the library read its config. Returns the loaded
    backend (`options.backend`), its facts computed (`facts.loading`: how the weights covered the model).
    Raises CheckError with the reason: "not loaded: ..." when a file the load would open is outside the
    folder, not a regular file or named unsafely (load_preflight.plan_load) or a GGUF file whose header the
    bounded reader rejects (`refuse_unreadable_gguf`), "load failed: ..." when the
    library fails; CheckSkipped when the library cannot load this kind of file (a GGUF architecture).
    """
    weights_format = _weights_choice(weights_formats, scan_flagged)
    weights_file: str | None = None
    stored_dtypes: dict[str, int] = {}
    if weights_format == "gguf":
        file_kinds = static.weights.files if static is not None else dict.fromkeys(candidate.file_names(), "gguf")
        weights_file = gguf_weights_file(file_kinds)
        refuse_unreadable_gguf(candidate, weights_file)
        config = dict(static.config or {}) if static is not None else {}  # the file's metadata, read by the static probe
        stored_dtypes = dict(static.weight_dtypes) if static is not None else {}
    else:
        try:
            config = candidate.config
        except ValueError as exc:
            raise CheckError(f"not loaded: {exc}") from None
    if config.get("auto_map"):
        raise CheckError("not loaded: the model needs its own code (auto_map); remote code is never trusted")
    if "model_type" in config and not isinstance(config["model_type"], str):  # the library fails on it with "unhashable type"
        raise CheckError(f"not loaded: config.json model_type {str(config['model_type'])[:80]!r} is not a string")
    backend = backend_class(options.backend)
    device = backend.resolve_device(options.device)
    started = time.perf_counter()
    try:
        # The loader reads a staging folder holding only the verified files (load_preflight explains why).
        with staged_folder(candidate.path, weights_format, candidate.link_roots, weights_file=weights_file) as folder:
            return backend.load(
                LoadRequest(
                    folder=folder,
                    model_path=str(candidate.location),
                    config=config,
                    kind=model_kind(config),
                    weights_format=weights_format,
                    # A GGUF file carries its tokenizer (llama.cpp's converters always write one).
                    has_tokenizer=weights_format == "gguf" or bool(set(candidate.file_names()) & TOKENIZER_FILES),
                    device=device,
                    dtype=options.dtype,
                    device_map_auto=options.device_map_auto,
                    started=started,
                    weights_file=weights_file,
                    stored_dtypes=stored_dtypes,
                )
            )
    except LoadRefused as exc:
        raise CheckError(f"not loaded: {exc}") from None
    except (CheckError, CheckSkipped):
        raise
    except Exception as exc:  # staging the folder failed (the backend maps its own library's errors)
        raise CheckError(f"load failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


@probe("load", evidence=ModelFacts, depends=("static", "scan"), cacheable=True, summary=model_facts)
def load_probe(context: ProbeContext) -> Backend:
    """The loaded model (cached and kept after the run as its ModelFacts)."""
    static = context.evidence.get("static", StaticFacts)
    scan = context.evidence.get("scan")
    return load_model(context.candidate, context.options.load, static.weights.formats, scan.flagged_files, static)
