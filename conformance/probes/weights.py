"""Weight files and tensor headers of a folder, through the registered formats: never tensor data, never torch.

Every file is opened through `safe_files` (regular files inside the folder only), and each file's failure
is recorded against that file, so one bad shard or archive never hides the others. Which files a format
claims, how it reads a header and how it counts parameters live in `conformance/formats/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..candidate import Candidate
from ..formats import registry
from ..formats.base import WeightFormat
from ..formats.tensors import TensorInfo


@dataclass
class WeightsInfo:
    """The weight facts of a folder: files by kind, the tensors of the counted format, and per-file errors."""

    files: dict[str, str] = field(default_factory=dict)  # weight file -> kind (a format name, or "torchscript")
    tensors: list[TensorInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # index and header problems (tensor facts)
    format_errors: list[str] = field(default_factory=list)  # files whose kind could not be told (format facts)
    index_file: str | None = None
    tensor_format: str | None = None  # the format whose headers gave `tensors` (it counts their parameters)

    @property
    def formats(self) -> list[str]:
        """The kinds of weight files present, sorted."""
        return sorted(set(self.files.values()))

    def to_dict(self) -> dict[str, Any]:
        """The weight facts as the result document's evidence holds them."""
        return {
            "files": self.files,
            "index_file": self.index_file,
            "tensor_count": len(self.tensors),
            "errors": self.errors,
            "format_errors": self.format_errors,
        }


def _claim_files(candidate: Candidate, info: WeightsInfo) -> dict[str, list[str]]:
    """Format name -> its files, with each file's kind recorded in `info.files` (or its error in `format_errors`)."""
    claimed: dict[str, list[str]] = {}
    owners: dict[str, WeightFormat] = {}
    for entry in candidate.files:
        fmt = registry.format_claiming(entry.path)
        if fmt is not None:
            info.files[entry.path] = fmt.name
            owners[entry.path] = fmt
            claimed.setdefault(fmt.name, []).append(entry.path)
    for relative, fmt in owners.items():
        try:
            info.files[relative] = fmt.file_kind(candidate, relative)
        except Exception as exc:  # noqa: BLE001 - any failure of this file's bytes is this file's error
            info.format_errors.append(f"{relative}: {fmt.kind_error}: {exc}")
    return claimed


def read_weights(candidate: Candidate) -> WeightsInfo:
    """Weight files by kind, and the tensors of the first registered format with header files.

    Never raises for bad model bytes: each file's problem is one entry of `errors` (tensor headers, index)
    or `format_errors` (files whose kind could not be read).
    """
    info = WeightsInfo()
    claimed = _claim_files(candidate, info)
    present = set(info.files)
    for fmt in registry.WEIGHT_FORMATS:  # read at call time: the registry is the one list
        if not fmt.reads_tensors:
            continue
        index, files = fmt.header_files(candidate, claimed.get(fmt.name, []), present, info.errors)
        if index is None and not files:
            continue  # nothing of this format here: the next one may have headers
        info.index_file, info.tensor_format = index, fmt.name
        for relative in files:
            try:
                info.tensors.extend(fmt.read_tensors(candidate, relative))
            except Exception as exc:  # noqa: BLE001
                info.errors.append(f"{relative}: unreadable {fmt.name} header: {exc}")
        break
    return info


def count_parameters(weights: WeightsInfo, config: dict[str, Any] | None) -> dict[str, int]:
    """Parameters as `sum(p.numel() for p in model.parameters())` counts them, by the format that read the tensors.

    A quantized checkpoint's tensors are first folded by its layout (`registry.tensor_layout`), so the count
    is the unquantized model's. Raises ValueError when the layout cannot fold them.
    """
    if weights.tensor_format is None:
        return {}
    tensors = weights.tensors
    layout = registry.tensor_layout(config)
    if layout is not None and config is not None:
        tensors = layout.logical_tensors(tensors, config)
    return registry.format_named(weights.tensor_format).count_parameters(tensors, config)
