"""Formats known by name only: their files are reported (`safety.weights_format`), their tensors not read.

A format that gains a reader moves out of this list into a module of its own (as GGUF did: `gguf.py`).
"""

from __future__ import annotations

from .base import WeightFormat


class ListedFormat(WeightFormat):
    """A weight format recognized by its file name endings; nothing in its files is read."""

    def __init__(self, name: str, suffixes: tuple[str, ...]) -> None:
        """A format called `name` (as `safety.weights_format` reports it) claiming names ending in `suffixes` (lower case)."""
        self.name = name  # type: ignore[misc]  # per instance: one class serves every listed format
        self.suffixes = suffixes  # type: ignore[misc]


LISTED_FORMATS = (
    ListedFormat("tensorflow-h5", (".h5", ".hdf5")),
    ListedFormat("keras", (".keras",)),
    ListedFormat("flax-msgpack", (".msgpack",)),
    ListedFormat("onnx", (".onnx",)),
    ListedFormat("numpy", (".npz",)),
    ListedFormat("tflite", (".tflite",)),
)
