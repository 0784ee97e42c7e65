"""The check catalogue: importing this package registers every check, one module per rule family."""

from . import architecture, card, runtime, safety, size, tokenizer  # noqa: F401
