"""Backends: the inference libraries a model can be loaded and run with, behind one contract (`Backend`).

`BACKENDS` names them; `backend_class(name)` picks one (the load probe asks for `LoadOptions.backend`).
transformers is the only backend today. Importing this package imports no torch or transformers.
"""

from __future__ import annotations

from ..errors import CheckError
from .base import Activations, Backend, LoadRequest, ModelFacts, TokenIds
from .special_tokens import prefix_token_id
from .transformers import TransformersBackend

BACKENDS: dict[str, type[Backend]] = {TransformersBackend.name: TransformersBackend}
DEFAULT_BACKEND = TransformersBackend.name


def backend_class(name: str) -> type[Backend]:
    """The backend registered as `name`; CheckError naming the known ones otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise CheckError(f"unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})") from None


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Activations",
    "Backend",
    "LoadRequest",
    "ModelFacts",
    "TokenIds",
    "TransformersBackend",
    "backend_class",
    "prefix_token_id",
]
