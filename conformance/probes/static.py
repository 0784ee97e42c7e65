"""The static probe: config, architecture, weight headers, parameter counts, tokenizer files, remote code.

Reads only small JSON files, the headers the registered weight formats read (`conformance/formats/`) and
zip directories: no torch import and no tensor data on this path. The facts are independent: each is read on its own and a failure becomes that fact's error
(`config_error`, `architecture_error`, `weights.errors`, `parameters_error`, `tokenizer.errors`,
`remote_code.errors`), so one bad file errors only the rules that need it. `probe_static` never raises
for bad model bytes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..candidate import MAX_CONFIG_BYTES, Candidate, FileEntry
from ..formats import registry
from ..formats.moe import active_parameters
from ..formats.parameters import dtype_summary, embedding_rows, without_saved_buffers
from ..formats.quantized import describe_quantization
from ..formats.registry import architecture_source
from ..formats.tensors import TensorInfo
from ..probe_registry import ProbeContext, probe
from .architecture import ARCHITECTURE_FIELDS, normalize_architecture
from .json_keys import duplicate_keys
from .tokenizer_files import TokenizerFacts, read_tokenizer
from .weights import WeightsInfo, count_parameters, folded_tensors, read_weights

T = TypeVar("T")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "…"  # a hostile file must not write megabytes of message


def _attempt(what: str, read: Callable[[], T]) -> tuple[T | None, str | None]:
    """`read()` and None, or None and '<what>: <reason>' for any exception (RecursionError, MemoryError included)."""
    try:
        return read(), None
    except Exception as exc:  # noqa: BLE001 - whatever the bytes cause, it is this fact's error
        reason = _reason(exc)
        return None, reason if reason.startswith(what) else f"{what}: {reason}"


# Remote code: what `trust_remote_code=True` would import. transformers reads `auto_map` from config.json and
# from every processor-side config (tokenizer_config.json, processor_config.json, preprocessor_config.json,
# image/video/feature-extractor configs), and `custom_pipelines` from config.json; a value "owner/repo--module.Class"
# imports code from another repository. Any JSON file named config.json or *_config.json is read.
CODE_SUFFIXES = (".py", ".pyw", ".pyc", ".pyo", ".pyx", ".pxd", ".pyd", ".so", ".dylib", ".dll", ".ipynb")
_VERSIONED_LIBRARY = re.compile(r"\.(so|dylib)(\.\d+)+$")
_REMOTE_KEYS = ("auto_map", "custom_pipelines")
MAX_CONFIG_FILES = 256  # JSON configs read for auto_map; more are reported, not read
MAX_CODE_WALK = 100_000  # directory entries walked looking for __pycache__


@dataclass
class RemoteCodeFacts:
    """Each way the folder ships or points at code that `trust_remote_code=True` would run, and configs that could not be read."""

    reasons: list[str] = field(default_factory=list)  # each way the folder ships or points at code
    errors: list[str] = field(default_factory=list)  # configs that could not be read (they may hold an auto_map)

    def to_dict(self) -> dict[str, Any]:
        """The facts as the result document's evidence holds them."""
        return {"reasons": self.reasons, "errors": self.errors}


def _code_references(value: Any) -> list[str]:
    """The class paths named under an auto_map or custom_pipelines value (strings at any depth, bounded JSON)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def _describe(file: str, key: str, value: Any) -> str:
    """'<file> <key>: AutoClass: module.Class, ...' with the repositories the code would come from."""
    references = _code_references(value)
    foreign = sorted({ref.split("--", 1)[0] for ref in references if "--" in ref})
    items = value.items() if isinstance(value, dict) else [(None, value)]
    named = [f"{name}: " + ", ".join(_code_references(item)) if name is not None else ", ".join(_code_references(item)) for name, item in items]
    text = f"{file} {key}: " + ("; ".join(named[:10])[:2000] or repr(value)[:200])
    if len(named) > 10:
        text += f" and {len(named) - 10} more"
    if foreign:
        text += f" (code from another repository: {', '.join(foreign)})"
    return text


def _remote_keys(data: Any) -> list[tuple[str, Any]]:
    """(key, value) of every auto_map / custom_pipelines object at any depth (nested processor configs)."""
    found: list[tuple[str, Any]] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _REMOTE_KEYS and value:
                    found.append((key, value))
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _pycache_dirs(root: str) -> list[str]:
    """`__pycache__` folders under `root` (the file list leaves them out), links not followed, walk bounded."""
    found: list[str] = []
    walked = 0
    for folder, dirs, names in os.walk(root, followlinks=False):
        walked += len(dirs) + len(names)
        if walked > MAX_CODE_WALK:
            raise ValueError(f"over {MAX_CODE_WALK} entries walked looking for __pycache__")
        if "__pycache__" in dirs:
            found.append(os.path.relpath(os.path.join(folder, "__pycache__"), root).replace(os.sep, "/"))
        dirs[:] = [d for d in dirs if d not in {".git", "__pycache__"}]
    return sorted(found)


def read_remote_code(candidate: Candidate) -> RemoteCodeFacts:
    """Every auto_map and custom_pipelines entry, code file and __pycache__ folder; never raises for bad bytes."""
    facts = RemoteCodeFacts()
    names = [entry.path for entry in candidate.files]
    code = [n for n in names if n.lower().endswith(CODE_SUFFIXES) or _VERSIONED_LIBRARY.search(n.lower())]
    if code:
        facts.reasons.append("code files " + ", ".join(code[:20]) + (f" and {len(code) - 20} more" if len(code) > 20 else ""))
    try:
        caches = _pycache_dirs(str(candidate.path))
    except Exception as exc:  # noqa: BLE001
        facts.errors.append(f"folder walk: {_reason(exc)}")
    else:
        if caches:
            facts.reasons.append("compiled Python caches " + ", ".join(caches[:20]))
    configs = [n for n in names if n.rsplit("/", 1)[-1] == "config.json" or n.endswith("_config.json")]
    for name in configs[MAX_CONFIG_FILES:]:
        facts.errors.append(f"{name}: not read (over {MAX_CONFIG_FILES} config files)")
    for name in configs[:MAX_CONFIG_FILES]:
        try:
            data = candidate.read_json(name)
        except Exception as exc:  # noqa: BLE001
            facts.errors.append(_reason(exc))
            continue
        facts.reasons.extend(_describe(name, key, value) for key, value in _remote_keys(data))
    return facts


@dataclass
class StaticFacts:
    """Every static fact of a folder, each with its own error (see the module doc); sizes in elements and bytes."""

    files: list[FileEntry]
    config: dict[str, Any] | None
    config_error: str | None
    files_error: str | None = None
    architecture: dict[str, Any] = field(default_factory=dict)
    architecture_error: str | None = None
    weights: WeightsInfo = field(default_factory=WeightsInfo)
    parameters: dict[str, int] = field(default_factory=dict)
    parameters_error: str | None = None
    weight_bytes: int = 0
    weight_dtypes: dict[str, int] = field(default_factory=dict)
    quantization: dict[str, Any] = field(default_factory=dict)  # `formats.quantized.describe_quantization`, bits_per_parameter
    quantization_error: str | None = None
    active_parameters: int | None = None  # parameters used per token (`formats.moe`); the total for a dense model
    experts: dict[str, Any] = field(default_factory=dict)  # moe_layers, routed_experts, experts_per_token, routed_parameters
    active_parameters_error: str | None = None
    embedding_rows: int | None = None
    tokenizer: TokenizerFacts = field(default_factory=TokenizerFacts)
    remote_code: RemoteCodeFacts = field(default_factory=RemoteCodeFacts)

    def to_dict(self) -> dict[str, Any]:
        """The facts as the result document's evidence holds them (the file list as its length)."""
        return {
            "file_count": len(self.files),
            "files_error": self.files_error,
            "config_error": self.config_error,
            "architecture": self.architecture,
            "architecture_error": self.architecture_error,
            "weights": self.weights.to_dict(),
            "parameters": self.parameters,
            "parameters_error": self.parameters_error,
            "weight_bytes": self.weight_bytes,
            "weight_dtypes": self.weight_dtypes,
            "quantization": self.quantization,
            "quantization_error": self.quantization_error,
            "active_parameters": self.active_parameters,
            "experts": self.experts,
            "active_parameters_error": self.active_parameters_error,
            "embedding_rows": self.embedding_rows,
            "tokenizer": self.tokenizer.to_dict(),  # the vocabulary's sources and size error and the special-token ids too
            "remote_code": self.remote_code.to_dict(),
        }


def _quantization_and_experts(
    facts: StaticFacts, weights: WeightsInfo, config: dict[str, Any] | None, logical: list[TensorInfo] | None, fold_error: str | None
) -> None:
    """Fill the quantization and active-parameter facts (each with its own error) from the folded tensors and config."""
    stored = weights.tensors
    quantization, facts.quantization_error = _attempt(
        "quantization", lambda: describe_quantization(stored, logical if logical is not None else stored, config, weights.tensor_format)
    )
    facts.quantization = quantization or {}
    parameters = facts.parameters.get("parameters")
    if facts.quantization and parameters:
        facts.quantization["bits_per_parameter"] = round(facts.weight_bytes * 8 / parameters, 3)
    if logical is None or parameters is None or weights.tensor_format is None:
        facts.active_parameters_error = facts.parameters_error or fold_error or "no parameter count"
        return
    fmt = registry.format_named(weights.tensor_format)
    counted = [t for t in logical if fmt.is_parameter(t)]
    routing, facts.active_parameters_error = _attempt("active parameters", lambda: active_parameters(counted, config, parameters))
    if routing is not None:
        facts.active_parameters = routing.active_parameters
        facts.experts = {key: value for key, value in routing.to_dict().items() if key != "active_parameters"}


# The config keys the architecture fields are read from: one of them repeated with different values makes
# the architecture ambiguous (JSON readers keep the last, other tools the first).
_ARCHITECTURE_KEYS = frozenset({"model_type", "architectures", *(key for keys in ARCHITECTURE_FIELDS.values() for key in keys)})


def ambiguous_architecture(candidate: Candidate) -> str | None:
    """Why config.json's architecture is ambiguous (an architecture key repeated with different values), or None.

    Raises ValueError (UnsafeFileError included) when config.json cannot be read; the caller has read it once
    already, so this only re-reads a file known to be small and regular.
    """
    text = candidate.read_bytes("config.json", MAX_CONFIG_BYTES)
    found, _ = duplicate_keys(text, "config.json")
    conflicting = [d for d in found if d.conflicting and re.split(r"[.\[]", d.path)[-1] in _ARCHITECTURE_KEYS]
    if not conflicting:
        return None
    return "config.json is ambiguous: " + "; ".join(d.describe() for d in conflicting[:5])


def probe_static(candidate: Candidate) -> StaticFacts:
    """Every static fact of the folder; each failure is recorded as that fact's error, never raised."""
    files, files_error = _attempt("file list", lambda: candidate.files)
    source = architecture_source(candidate)  # config.json, or the metadata of a format that carries its own
    config, config_error = _attempt(source.name, lambda: source.read_config(candidate))
    weights, weights_error = _attempt("weights", lambda: read_weights(candidate))
    if weights is None:
        weights = WeightsInfo(errors=[weights_error or "weights unreadable"], format_errors=[weights_error or "weights unreadable"])
    facts = StaticFacts(files=files or [], config=config, config_error=config_error, files_error=files_error, weights=weights)
    if config is not None:
        # Absent keys take the family config class's defaults only in a config.json, as transformers reads it.
        defaults = source.name == "config.json"
        architecture, facts.architecture_error = _attempt(
            f"architecture fields of {source.name}", lambda: normalize_architecture(config, family_defaults=defaults)
        )
        facts.architecture = architecture or {}
        if source.name == "config.json" and facts.architecture_error is None:
            ambiguous, read_error = _attempt("config.json keys", lambda: ambiguous_architecture(candidate))
            facts.architecture_error = ambiguous or read_error
    if weights.tensors:
        tensors = weights.tensors
        folded, fold_error = _attempt("parameter count", lambda: folded_tensors(weights, config))  # folded once
        if folded is not None and source.name == "config.json":
            # The family's persistent buffers (integer ones too), named as transformers names them: not a GGUF file's.
            folded = without_saved_buffers(folded, config)
        counts, facts.parameters_error = (
            _attempt("parameter count", lambda: count_parameters(weights, config, folded)) if folded is not None else (None, fold_error)
        )
        facts.parameters = counts or {}
        facts.weight_bytes = sum(t.stored_bytes for t in tensors)
        facts.weight_dtypes = dtype_summary(tensors)
        facts.embedding_rows = embedding_rows(tensors)
        _quantization_and_experts(facts, weights, config, folded, fold_error)
    tokenizer, tokenizer_error = _attempt("tokenizer", lambda: read_tokenizer(candidate))
    facts.tokenizer = tokenizer or TokenizerFacts(errors=[tokenizer_error or "tokenizer unreadable"])
    remote, remote_error = _attempt("remote code", lambda: read_remote_code(candidate))
    facts.remote_code = remote or RemoteCodeFacts(errors=[remote_error or "remote code facts unreadable"])
    return facts


@probe("static", evidence=StaticFacts)
def static_probe(context: ProbeContext) -> StaticFacts:
    """The candidate's static facts: files, weights' headers, architecture, tokenizer (no torch)."""
    return probe_static(context.candidate)
