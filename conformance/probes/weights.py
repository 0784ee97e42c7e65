"""Weight files and tensor headers of a folder, through the registered formats: never tensor data, never torch.

Every file is opened through `safe_files` (regular files inside the folder only), and each file's failure
is recorded against that file, so one bad shard or archive never hides the others. Which files a format
claims, how it reads a header and how it counts parameters live in `conformance/formats/`.

Files that contradict each other are errors of the tensor facts, whatever the format: a tensor name held by
more than one file read (two shards, or two files without an index) would be counted twice, and which
copy a loader keeps depends on its reading order, so the size rules error instead of counting
(`count_parameters` still counts each name once); and where the format has an index (`IndexedFormat`), a tensor the index places in
a shard that does not hold it, or a shard holding a tensor the index does not list, is reported too.
Each kind of contradiction is one error string naming at most `MAX_NAMED_TENSORS` tensors and the count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..candidate import Candidate
from ..formats import registry
from ..formats.base import WeightFormat
from ..formats.quantized import require_folded
from ..formats.tensors import TensorInfo
from ..verdict import MAX_TEXT_CHARS, bound_text


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


MAX_NAMED_TENSORS = 5  # tensors named per contradiction; the count says how many there are in all
MAX_NAMED_FILES = 4  # files named per duplicated tensor
MAX_NAME_CHARS = 200  # a tensor or file name is text from an untrusted header: cut in messages
MAX_ERROR_CHARS = MAX_TEXT_CHARS // 2  # one entry of `errors` / `format_errors`: a rule's message quoting it stays whole


@runtime_checkable
class IndexedFormat(Protocol):
    """A weight format whose index maps each tensor name to the file holding it (safetensors' `weight_map`)."""

    def index_map(self, candidate: Candidate, index: str) -> dict[str, str]:
        """Tensor name -> file, as the index `index` states it; ValueError or OSError when unreadable."""
        ...


def _cut(text: str) -> str:
    """`text` at most MAX_NAME_CHARS long, an ellipsis marking a cut."""
    return text if len(text) <= MAX_NAME_CHARS else text[: MAX_NAME_CHARS - 3] + "..."


def _named(items: list[str], total: int, noun: str) -> str:
    """`items` (already bounded) joined, with "and N more <noun>" when `total` is larger."""
    more = total - len(items)
    return "; ".join(items) + (f"; and {more} more {noun}" if more > 0 else "")


def duplicate_tensor_error(tensors: list[TensorInfo]) -> str | None:
    """One error naming the tensors held by more than one file (at most MAX_NAMED_TENSORS, and their count); None if none.

    A name twice in one file cannot happen here: the header readers keep one entry per name, as the
    libraries do.
    """
    files_of: dict[str, list[str]] = defaultdict(list)
    for tensor in tensors:
        files_of[tensor.name].append(tensor.file)
    repeated = sorted(name for name, files in files_of.items() if len(files) > 1)
    if not repeated:
        return None
    named = []
    for name in repeated[:MAX_NAMED_TENSORS]:
        files = sorted(files_of[name])
        shown = ", ".join(_cut(f) for f in files[:MAX_NAMED_FILES]) + (", ..." if len(files) > MAX_NAMED_FILES else "")
        named.append(f"{_cut(name)} in {len(files)} files ({shown})")
    return (
        f"{len(repeated)} tensor name{'s' if len(repeated) != 1 else ''} stored in more than one weight file "
        f"(counted once here; which copy a loader keeps depends on its reading order): " + _named(named, len(repeated), "tensors")
    )


def index_mismatch_errors(index: str, weight_map: dict[str, str], tensors: list[TensorInfo], read_files: set[str]) -> list[str]:
    """Where `index`'s `weight_map` and the headers of `read_files` disagree: at most two error strings.

    A tensor the index places in a file that was read but does not hold it, and a tensor a read file holds
    that the index does not list. Files not read (missing, or with an unreadable header) are not compared:
    their own error already stands. A tensor the index lists under one file and another file holds as well
    is a duplicate (`duplicate_tensor_error`), not repeated here.
    """
    held: dict[str, set[str]] = defaultdict(set)
    for tensor in tensors:
        held[tensor.name].add(tensor.file)
    absent = sorted((name, shard) for name, shard in weight_map.items() if shard in read_files and shard not in held.get(name, ()))
    unlisted = sorted({(t.name, t.file) for t in tensors if t.file in read_files and t.name not in weight_map})
    errors = []
    if absent:
        named = []
        for name, shard in absent[:MAX_NAMED_TENSORS]:
            elsewhere = sorted(held.get(name, ()))
            named.append(f"{_cut(name)} in {_cut(shard)}" + (f" (held by {_cut(elsewhere[0])})" if elsewhere else " (in no file the index names)"))
        errors.append(f"{index} places {len(absent)} tensor{'s' if len(absent) != 1 else ''} in files that do not hold them: " + _named(named, len(absent), "tensors"))
    if unlisted:
        named = [f"{_cut(name)} in {_cut(shard)}" for name, shard in unlisted[:MAX_NAMED_TENSORS]]
        errors.append(f"{len(unlisted)} tensor{'s' if len(unlisted) != 1 else ''} held by a shard but not listed in {index}: " + _named(named, len(unlisted), "tensors"))
    return errors


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

    Never raises for bad model bytes: each file's problem is one entry of `errors` (tensor headers, index,
    files that contradict each other: see the module doc) or `format_errors` (files whose kind could not
    be read). Each entry is cut to `MAX_ERROR_CHARS` (`verdict.bound_text`): a reader's error quotes the
    file (a 16 MiB GGUF key or tensor name), and these errors are caught here, so the static probe's own cut
    of the exceptions that reach it never sees them; the size rules' messages and the result document
    carry them.
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
        read_files: set[str] = set()
        for relative in files:
            try:
                info.tensors.extend(fmt.read_tensors(candidate, relative))
                read_files.add(relative)
            except Exception as exc:  # noqa: BLE001
                info.errors.append(f"{relative}: unreadable {fmt.name} header: {exc}")
        _record_contradictions(candidate, fmt, index, read_files, info)
        break
    # Cut once here, after every writer (the formats' `header_files` append to `info.errors` too).
    info.errors = [bound_text(error, MAX_ERROR_CHARS) for error in info.errors]
    info.format_errors = [bound_text(error, MAX_ERROR_CHARS) for error in info.format_errors]
    return info


def _record_contradictions(candidate: Candidate, fmt: WeightFormat, index: str | None, read_files: set[str], info: WeightsInfo) -> None:
    """Append to `info.errors` the tensors held twice and, for an indexed format, where index and headers disagree."""
    duplicates = duplicate_tensor_error(info.tensors)
    if duplicates:
        info.errors.append(duplicates)
    if index is None or not isinstance(fmt, IndexedFormat):
        return
    try:
        weight_map = fmt.index_map(candidate, index)
    except Exception:  # noqa: BLE001 - an unreadable index was already reported by header_files
        return
    info.errors.extend(index_mismatch_errors(index, weight_map, info.tensors, read_files))


def first_of_each_name(tensors: list[TensorInfo]) -> list[TensorInfo]:
    """`tensors` with each name kept once (its first occurrence, files in reading order): never counted twice."""
    seen: set[str] = set()
    kept = []
    for tensor in tensors:
        if tensor.name not in seen:
            seen.add(tensor.name)
            kept.append(tensor)
    return kept


def folded_tensors(weights: WeightsInfo, config: dict[str, Any] | None) -> list[TensorInfo]:
    """The model's tensors, each name once (the first file read), folded by the checkpoint's quantized layout.

    What the parameter count, the quantization facts and the active parameters all read. Raises ValueError
    when the layout (`registry.tensor_layout`) cannot fold them.
    """
    tensors = first_of_each_name(weights.tensors)
    layout = registry.tensor_layout(config) if config is not None else None
    return layout.logical_tensors(tensors, config) if layout is not None and config is not None else tensors


def count_parameters(weights: WeightsInfo, config: dict[str, Any] | None, folded: list[TensorInfo] | None = None) -> dict[str, int]:
    """Parameters as `sum(p.numel() for p in model.parameters())` counts them, by the format that read the tensors.

    Counted from `folded` (`folded_tensors`, computed here when not given), so the count is the unquantized
    model's and a name held by more than one file is counted once (`weights.errors` says so and the size
    rules error). Raises ValueError when the layout cannot fold them, and when quantized pieces or integer
    matrices are left unfolded (`formats.quantized.require_folded`: no config, or one that does not describe
    them): counted as stored they would vanish from the count.
    """
    if weights.tensor_format is None:
        return {}
    tensors = folded if folded is not None else folded_tensors(weights, config)
    layout = registry.tensor_layout(config) if config is not None else None
    require_folded(tensors, config, layout.name if layout is not None else None)
    return registry.format_named(weights.tensor_format).count_parameters(tensors, config)
