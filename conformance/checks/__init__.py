"""The check catalogue: importing this package registers every check, one module per rule family."""

from . import (  # noqa: F401
    architecture,
    card,
    chat,
    claims,
    files,
    generation_safety,
    performance,
    quality,
    runtime,
    safety,
    signature,
    size,
    tokenizer,
)
