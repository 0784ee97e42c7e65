"""Prefill/decode throughput, MFU and MBU of Llama-shaped models on one GPU: the suite vs a plain torch loop.

Models are built from configs on the GPU in bf16 with random weights (no downloads, no network):
Llama-3.2-1B and Llama-3-8B shapes. For each model and workload the suite's `measure_speed` runs, then
a hand-written reference times the same `model.generate` calls with CUDA events; both give prefill and
decode tokens/s, TTFT, TPOT, MFU of prefill and MBU of decode against the device's dense peaks
(specs/devices.yaml). A Markdown table goes to $OUT/gpu_results.md (or benchmarks/gpu/last_results.md),
rewritten after every row so a cut-short run still leaves its rows; raw evidence to gpu_results.json.

    python benchmarks/gpu/gpu_bench.py            # one H200, well under 5 minutes
    python benchmarks/gpu/gpu_bench.py --smoke    # the same code on CPU with a tiny config, < 30 s

Needs torch and transformers only (pyyaml comes with transformers).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the suite from this checkout, installed or not

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from conformance.backends import TransformersBackend  # noqa: E402
from conformance.errors import CheckError, CheckSkipped  # noqa: E402
from conformance.probes import roofline  # noqa: E402
from conformance.probes.architecture import normalize_architecture  # noqa: E402
from conformance.probes.speed import measure_speed, speed_params  # noqa: E402
from conformance.probes.timing import device_environment  # noqa: E402

MODELS: dict[str, dict[str, Any]] = {
    # Llama-3.2-1B: tied embeddings, head_dim 64.
    "llama-1b": {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True},
    # Llama-3-8B.
    "llama-8b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256, "tie_word_embeddings": False},
}
SMOKE_MODEL = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 256, "vocab_size": 512, "tie_word_embeddings": False}
POLICY = {"warmup_runs": 2, "min_runs": 5, "min_seconds": 1.0, "max_seconds": 40.0}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_model(shape: dict[str, Any], device: str, dtype: torch.dtype) -> tuple[TransformersBackend, float]:
    """Random weights initialised on the device itself: no host copy of an 8B model."""
    config = LlamaConfig(**shape, max_position_embeddings=8192, rope_theta=500000.0)
    started = time.perf_counter()
    with torch.device(device):
        try:
            model = LlamaForCausalLM._from_config(config, dtype=dtype, attn_implementation="sdpa")
        except TypeError:  # transformers < 4.56 names it torch_dtype
            model = LlamaForCausalLM._from_config(config, torch_dtype=dtype, attn_implementation="sdpa")
    model = model.to(dtype).eval()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    arch = normalize_architecture(config.to_dict())
    dtype_name = str(dtype).removeprefix("torch.")
    return TransformersBackend(model, None, "causal", device, dtype_name, seconds, arch), seconds


# --- the plain torch reference: written apart from the suite ----------------------------------


def reference_measure(model: Any, device: str, batch: int, prompt: int, new: int, runs: int = 5, warmup: int = 1) -> dict[str, float]:
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt), generator=torch.Generator().manual_seed(0)).to(device)
    mask = torch.ones_like(ids)
    on_cuda = device.startswith("cuda")

    def generate(tokens: int) -> None:
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0)

    prefill_ms: list[float] = []
    full_ms: list[float] = []
    with torch.no_grad():
        for _ in range(warmup):
            generate(1)
            generate(new)
        if on_cuda:
            torch.cuda.reset_peak_memory_stats()
        for _ in range(runs):
            if on_cuda:
                torch.cuda.synchronize()
                marks = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
                marks[0].record()
                generate(1)
                marks[1].record()
                generate(new)
                marks[2].record()
                marks[2].synchronize()
                prefill_ms.append(marks[0].elapsed_time(marks[1]))
                full_ms.append(marks[1].elapsed_time(marks[2]))
            else:
                t0 = time.perf_counter()
                generate(1)
                t1 = time.perf_counter()
                generate(new)
                t2 = time.perf_counter()
                prefill_ms.append((t1 - t0) * 1000)
                full_ms.append((t2 - t1) * 1000)
    prefill, full = statistics.median(prefill_ms), statistics.median(full_ms)
    return {
        "prefill_ms": prefill,
        "decode_ms": full - prefill,
        "prefill_tokens_per_second": batch * prompt / (prefill / 1000),
        "decode_tokens_per_second": batch * (new - 1) / ((full - prefill) / 1000),
        "ttft_ms": prefill,
        "tpot_ms": (full - prefill) / (new - 1),
        "peak_memory_bytes": float(torch.cuda.max_memory_allocated()) if on_cuda else float("nan"),
        "runs": float(runs),
    }


# --- roofline -----------------------------------------------------------------------------------


def utilisation(loaded: TransformersBackend, batch: int, prompt: int, new: int, prefill_seconds: float, decode_tokens_per_second: float, peak: roofline.DevicePeak | None) -> tuple[float | None, float | None]:
    """(MFU of prefill, MBU of decode) with the formulas of conformance.probes.roofline."""
    if peak is None or peak.flops_for(loaded.dtype) is None:
        return None, None
    arch = {**loaded.architecture, "head_dim": getattr(loaded.model.config, "head_dim", None)}
    counts = roofline.model_matmul_parameters(loaded.model)
    element_bytes = next(loaded.model.parameters()).element_size()
    flops = roofline.prefill_flops(arch, batch, prompt, parameters=counts)
    model_flops_utilisation = roofline.mfu(flops, prefill_seconds, peak.flops_for(loaded.dtype) or 1.0)
    per_token = roofline.decode_bytes_per_token(arch, counts.total * element_bytes, batch, roofline.mean_decode_context(prompt, new), element_bytes)
    memory_bandwidth_utilisation = roofline.mbu(per_token * decode_tokens_per_second, 1.0, peak.memory_bytes_per_second)
    return model_flops_utilisation, memory_bandwidth_utilisation


# --- table --------------------------------------------------------------------------------------

COLUMNS = ("model", "params", "batch", "prompt", "new", "timed by", "prefill tok/s", "decode tok/s", "TTFT ms", "TPOT ms", "MFU prefill", "MBU decode", "peak mem GiB", "cv prefill/decode", "decode suite/ref")


@dataclass
class Report:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [*self.header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "gpu_results.json").write_text(json.dumps(self.evidence, indent=1, default=str), encoding="utf-8")
        target = folder / ("gpu_results.md" if os.environ.get("OUT") else "last_results.md")
        target.write_text(self.markdown(), encoding="utf-8")
        return target


def _number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or value != value else f"{value:,.{digits}f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2%}"


def bench_workload(report: Report, name: str, loaded: TransformersBackend, batch: int, prompt: int, new: int, peak: roofline.DevicePeak | None) -> None:
    parameters = sum(p.numel() for p in loaded.model.parameters())
    size = f"{parameters / 1e9:.2f} B" if parameters >= 1e8 else f"{parameters / 1e6:.1f} M"
    lead = [name, size, str(batch), str(prompt), str(new)]
    log(f"{name} batch {batch} prompt {prompt} new {new}: suite")
    try:
        speed = measure_speed(loaded, speed_params({"workload": {"batch_size": batch, "prompt_tokens": prompt, "new_tokens": new}, "measurement": POLICY}))
    except (CheckError, CheckSkipped) as exc:  # out of memory arrives here as CheckError
        report.rows.append([*lead, "suite", f"error: {exc}", *[""] * (len(COLUMNS) - 7)])
        return
    except Exception as exc:  # one run on a borrowed GPU: record the failure and go on to the next row
        report.rows.append([*lead, "suite", f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", *[""] * (len(COLUMNS) - 7)])
        return
    decode = speed.decode_tokens_per_second or float("nan")
    suite_mfu, suite_mbu = utilisation(loaded, batch, prompt, new, statistics.median(speed.prefill_ms) / 1000, decode, peak)
    log(f"{name} batch {batch}: reference")
    reference: dict[str, float] | None
    try:
        reference = reference_measure(loaded.model, loaded.device, batch, prompt, new)
    except Exception as exc:
        reference = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        report.rows.append([*lead, "reference", f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", *[""] * (len(COLUMNS) - 7)])
    memory_gib = (speed.peak_memory_bytes or 0) / 2**30
    ratio = decode / reference["decode_tokens_per_second"] if reference else None
    report.rows.append(
        [*lead, "suite", _number(speed.prefill_tokens_per_second, 0), _number(decode, 1), _number(speed.ttft_ms.median, 2), _number(speed.tpot_ms.median, 3),
         _percent(suite_mfu), _percent(suite_mbu), _number(memory_gib, 2), f"{speed.series_cv['prefill']:.3f}/{speed.series_cv['decode']:.3f}" + ("" if speed.stable else " unstable"),
         _number(ratio, 3)]
    )
    report.evidence.append({"model": name, "suite": speed.to_dict(), "reference": reference, "mfu": suite_mfu, "mbu": suite_mbu})
    if reference:
        ref_mfu, ref_mbu = utilisation(loaded, batch, prompt, new, reference["prefill_ms"] / 1000, reference["decode_tokens_per_second"], peak)
        report.rows.append(
            [*lead, "reference", _number(reference["prefill_tokens_per_second"], 0), _number(reference["decode_tokens_per_second"], 1), _number(reference["ttft_ms"], 2),
             _number(reference["tpot_ms"], 3), _percent(ref_mfu), _percent(ref_mbu), _number(reference["peak_memory_bytes"] / 2**30, 2), "", ""]
        )
    log(f"{name} batch {batch}: suite decode {decode:,.1f} tok/s, reference {reference['decode_tokens_per_second'] if reference else float('nan'):,.1f}, MFU {_percent(suite_mfu)}, MBU {_percent(suite_mbu)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU: proves the script end to end")
    parser.add_argument("--models", default="llama-1b,llama-8b", help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    parser.add_argument("--prompt", type=int, default=512)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--budget-seconds", type=float, default=260.0, help="start no new workload after this")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    if args.smoke:
        device, dtype = "cpu", torch.float32
        models = {"smoke-llama": SMOKE_MODEL}
        batches, prompt, new = [1, 4], 32, 16
        peak = roofline.lookup_device("NVIDIA H200")  # nominal: exercises the MFU/MBU path on CPU
        peak_note = f"{peak.name if peak else 'none'} (nominal: smoke run on CPU, utilisation figures are meaningless)"
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: run with --smoke on CPU", file=sys.stderr)
            return 2
        device, dtype = "cuda:0", torch.bfloat16
        models = {name: MODELS[name] for name in args.models.split(",")}
        batches, prompt, new = [int(b) for b in args.batches.split(",")], args.prompt, args.new
        peak = roofline.lookup_device(torch.cuda.get_device_name(0))
        peak_note = f"{peak.name}: {peak.flops_for('bfloat16') or 0:.4g} FLOP/s dense bf16, {peak.memory_bytes_per_second:.4g} B/s ({peak.source})" if peak else "device not in specs/devices.yaml: no MFU/MBU"

    environment = device_environment(device, str(dtype).removeprefix("torch."))
    report = Report(
        header=[
            "# GPU benchmark: conformance speed probe vs a plain torch reference",
            "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
            f"- device: {environment['device_name']}; driver {environment.get('driver_version')}; CUDA driver API {environment.get('cuda_driver_api_version')}",
            f"- torch {environment['torch_version']} (CUDA {environment['cuda_version']}), transformers {transformers.__version__}, dtype {environment['dtype']}, sdpa attention, dynamic KV cache",
            f"- peaks: {peak_note}",
            f"- suite policy: {POLICY}; reference: 1 warm-up, 5 timed (prefill, full) pairs, medians",
            "- MFU of prefill = prefill FLOPs / median prefill time / peak; MBU of decode = (weights/batch + KV cache) bytes per token × decode tok/s / peak (docstring of conformance/probes/roofline.py)",
        ]
    )
    out_folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(__file__).resolve().parent
    log(f"device {environment['device_name']}, torch {environment['torch_version']}, transformers {transformers.__version__}")

    for name, shape in models.items():
        if time.perf_counter() - started > args.budget_seconds:
            report.rows.append([name, "", "", "", "", "skipped", "time budget spent", *[""] * (len(COLUMNS) - 7)])
            continue
        loaded, build_seconds = build_model(shape, device, dtype)
        log(f"{name}: built in {build_seconds:.1f} s")
        for batch in batches:
            if time.perf_counter() - started > args.budget_seconds:
                report.rows.append([name, "", str(batch), str(prompt), str(new), "skipped", "time budget spent", *[""] * (len(COLUMNS) - 7)])
                continue
            bench_workload(report, name, loaded, batch, prompt, new, peak)
            log(f"wrote {report.write(out_folder)}")
        del loaded
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    target = report.write(out_folder)
    print()
    print(report.markdown(), flush=True)
    log(f"done in {time.perf_counter() - started:.1f} s; table in {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
