"""What a weight format and an architecture source answer; one module per format or source implements these.

A `WeightFormat` claims file names at the top of a model folder, says what kind each claimed file is,
chooses the files whose headers hold its tensors (an index's shards, or every file), reads one header
within bounds into `TensorInfo`s, counts parameters from them, and (for the finiteness probe) streams a
file's tensors slice by slice. An `ArchitectureSource` gives a folder's raw architecture fields under
config.json's names, so one normalization (`probes/architecture.py`) serves every source.

Formats never raise for bad model bytes where the static probe calls them in bulk (`header_files`
records problems in `errors`); `file_kind` and `read_tensors` raise and their caller records the error
against the file, so one bad shard never hides the others.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

from ..candidate import Candidate
from .dtypes import FLOAT_DTYPES
from .parameters import count_parameters, is_buffer
from .tensors import TensorInfo


def descriptor_path(handle: IO[bytes], resolved: Path) -> str:
    """A path naming the very file already opened and checked, so a library cannot open a swapped-in one."""
    proc = f"/proc/self/fd/{handle.fileno()}"
    return proc if os.path.exists(proc) else str(resolved)


class WeightFormat(ABC):
    """One weight file format: which names it claims, what kind each file is, its tensors and parameter count.

    Subclasses set the class attributes and override what they can answer; a format that cannot read
    headers (`reads_tensors` False) is still reported by name (`safety.weights_format`, the load's choice).
    """

    name: ClassVar[str]  # reported per file in `weights.files` (unless `file_kind` says better)
    suffixes: ClassVar[tuple[str, ...]]  # lower-case endings of the file names it claims
    # (single file, index) the transformers loader opens by name, or None when the suite does not load it.
    load_names: ClassVar[tuple[str, str] | None] = None
    reads_tensors: ClassVar[bool] = False  # `read_tensors` and `header_files` answer
    streams_tensors: ClassVar[bool] = False  # `tensor_slices` answers (the finiteness probe)
    kind_error: ClassVar[str] = "kind unknown"  # how a failed `file_kind` is reported: "<file>: <kind_error>: <reason>"

    def claims(self, name: str) -> bool:
        """True if a top-level file called `name` (no folder part) is a weight file of this format."""
        return name.lower().endswith(self.suffixes)

    def file_kind(self, candidate: Candidate, relative: str) -> str:
        """The kind reported for one claimed file (the format's name unless the bytes tell a variant).

        Raises ValueError or OSError when the file cannot be told; the caller records it as a format error.
        """
        return self.name

    def header_files(self, candidate: Candidate, claimed: list[str], present: set[str], errors: list[str]) -> tuple[str | None, list[str]]:
        """(index file or None, the files whose headers hold the tensors), from this format's `claimed` files.

        `present` is every weight file of the folder. Problems (an unreadable index, a missing shard) are
        appended to `errors`, never raised. Default: no index, every claimed file.
        """
        return None, sorted(claimed)

    def read_tensors(self, candidate: Candidate, relative: str) -> list[TensorInfo]:
        """The tensors one file's header declares, read within bounds; ValueError or OSError when unreadable."""
        raise NotImplementedError(f"{self.name} headers are not read")

    def is_parameter(self, tensor: TensorInfo) -> bool:
        """Whether a tensor is a parameter (`model.parameters()` holds it), not a buffer or packed aux data."""
        return tensor.dtype in FLOAT_DTYPES and not is_buffer(tensor.name)

    def count_parameters(self, tensors: list[TensorInfo], config: dict[str, Any] | None) -> dict[str, int]:
        """`parameters`, `embedding_parameters`, `non_embedding_parameters` as `sum(p.numel())` counts them.

        Default: the tensors `is_parameter` keeps, a tied lm_head counted once (see `parameters.py`).
        """
        return count_parameters(tensors, config, self.is_parameter)

    def tensor_slices(self, handle: IO[bytes], resolved: Path, slice_bytes: int) -> Iterator[tuple[str, Iterator[Any]]]:
        """(name, slices) for every tensor of the open file; each slice a framework tensor of about `slice_bytes`.

        `handle` is the file opened and checked by the caller (read it, or hand a library
        `descriptor_path(handle, resolved)`); consume each tensor's slices before the next name.
        """
        raise NotImplementedError(f"{self.name} tensors are not streamed")


class TensorLayout(ABC):
    """How a quantized checkpoint stores the tensors of the model it stands for, whatever its container.

    A layout (GPTQ's packed `qweight` with `qzeros`, `scales`, `g_idx`; bitsandbytes' absmax and quant maps;
    FP8 weights with scale tensors) folds each group of stored tensors into the one tensor the model has:
    its logical shape, the dtype it computes in, and `packed_bytes` = the bytes of every stored piece, so
    counts are the unquantized model's and stored bytes stay the bytes on disk.
    """

    name: ClassVar[str]  # the `quantization_config.quant_method` (or similar) it reads

    @abstractmethod
    def applies(self, config: dict[str, Any] | None) -> bool:
        """True when the config says the tensors are stored this way."""

    @abstractmethod
    def logical_tensors(self, tensors: list[TensorInfo], config: dict[str, Any]) -> list[TensorInfo]:
        """The model's tensors from the stored ones; ValueError when a group is incomplete or its shapes disagree."""


class ArchitectureSource(ABC):
    """Where a folder's architecture facts live: config.json now, file metadata (GGUF) next."""

    name: ClassVar[str]  # what is read, in error messages: "config.json"

    @abstractmethod
    def present(self, file_names: set[str]) -> bool:
        """True if the folder (its relative file names) holds what this source reads."""

    @abstractmethod
    def read_config(self, candidate: Candidate) -> dict[str, Any]:
        """The raw architecture fields under config.json's key names; ValueError with the reason when unreadable."""
