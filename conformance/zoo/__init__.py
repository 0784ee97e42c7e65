"""A zoo of tiny models built offline: well-formed ones for tests and the demo, and hostile ones."""

from .hostile import (
    build_corrupt_config,
    build_pickle_bomb,
    build_remote_code_model,
    malicious_pickle,
    write_bad_safetensors,
)
from .kinds import build_gemma3_multimodal, build_llava, build_t5
from .models import (
    CARD_SECTIONS,
    build_bert,
    build_gpt2,
    build_llama,
    build_sharded_llama,
    parameter_count,
    sha256_file,
    write_card,
)
from .tokenizer import train_tokenizer
from .train import train_tiny_lm

__all__ = [
    "CARD_SECTIONS",
    "build_bert",
    "build_corrupt_config",
    "build_gemma3_multimodal",
    "build_gpt2",
    "build_llama",
    "build_llava",
    "build_pickle_bomb",
    "build_remote_code_model",
    "build_sharded_llama",
    "build_t5",
    "malicious_pickle",
    "parameter_count",
    "sha256_file",
    "train_tiny_lm",
    "train_tokenizer",
    "write_bad_safetensors",
    "write_card",
]
