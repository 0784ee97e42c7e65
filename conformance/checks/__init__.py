"""The check catalogue: importing this package registers every check, one module per rule family."""

from . import architecture, card, chat, claims, files, generation_safety, performance, quality, runtime, safety, signature, size, tokenizer  # noqa: F401
