"""The check catalogue: importing this package registers every check, one module per rule family."""

from . import architecture, card, performance, runtime, safety, size, tokenizer  # noqa: F401
