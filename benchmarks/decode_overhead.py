"""Does the suite measure decode speed right, and what does its harness cost?

On one tiny random Llama, in one process, rounds alternate (ABBA order, so drift falls on both sides):
  A. the suite: conformance.probes.speed.measure_speed -> decode tokens/s, and its harness overhead
     = (wall time of its measured rounds - sum of its timed regions) / wall time;
  B. a minimal independent loop: plain model.generate timed with perf_counter, prefill as
     generate(max_new_tokens=1), decode tokens/s = batch * (new - 1) / (median full - median prefill).
Targets: median ratio A/B within 0.95..1.05, median harness overhead under 2%.

    python benchmarks/decode_overhead.py [--rounds 6] [--seconds 1.0] [--threads 1]

Runs in well under 2 minutes on 2 CPU cores. Exit status 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from conformance.backends import TransformersBackend  # noqa: E402
from conformance.probes.architecture import normalize_architecture  # noqa: E402
from conformance.probes.speed import measure_speed, speed_params  # noqa: E402

WORKLOAD = {"batch_size": 1, "prompt_tokens": 32, "new_tokens": 32}
RATIO_RANGE = (0.95, 1.05)
MAX_OVERHEAD = 0.02


def build_model(seed: int = 0) -> TransformersBackend:
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=4,
        intermediate_size=688,
        vocab_size=1024,
        max_position_embeddings=512,
    )
    model = LlamaForCausalLM(config).eval()
    return TransformersBackend(model, None, "causal", "cpu", "float32", 0.0, normalize_architecture(config.to_dict()))


def suite_decode(loaded: TransformersBackend, seconds: float) -> dict[str, float]:
    params = speed_params({"workload": WORKLOAD, "measurement": {"warmup_runs": 2, "min_runs": 5, "min_seconds": seconds, "max_cv": 1.0}})
    started = time.perf_counter()
    speed = measure_speed(loaded, params)
    call_seconds = time.perf_counter() - started
    assert speed.decode_tokens_per_second is not None
    return {
        "decode_tokens_per_second": speed.decode_tokens_per_second,
        "overhead": (speed.wall_seconds - speed.timed_seconds) / speed.wall_seconds,
        "runs": speed.runs,
        "call_seconds": call_seconds,
        "cv": speed.series_cv["decode"],
    }


def reference_decode(model: Any, seconds: float, seed: int = 0, pad_token_id: int = 0) -> dict[str, float]:
    """Written apart from the suite on purpose: nothing shared but the model, the workload and the pad id.

    The pad id is the suite's own (`Backend.prefix_token_id`): the pad id changes what `generate` costs on
    this CPU build (the suite padding with id 1 measured 1.04-1.12x a reference padding with 0 in four runs,
    1.00-1.04x with the same id), so a reference with another pad id would time a different call.
    """
    batch, prompt, new = WORKLOAD["batch_size"], WORKLOAD["prompt_tokens"], WORKLOAD["new_tokens"]
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)

    def generate(tokens: int) -> None:
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=pad_token_id)

    prefill_s: list[float] = []
    full_s: list[float] = []
    with torch.no_grad():
        for _ in range(2):
            generate(1)
            generate(new)
        begin = time.perf_counter()
        while len(full_s) < 5 or time.perf_counter() - begin < seconds:
            t0 = time.perf_counter()
            generate(1)
            t1 = time.perf_counter()
            generate(new)
            t2 = time.perf_counter()
            prefill_s.append(t1 - t0)
            full_s.append(t2 - t1)
    decode_seconds = statistics.median(full_s) - statistics.median(prefill_s)
    return {"decode_tokens_per_second": batch * (new - 1) / decode_seconds, "runs": len(full_s)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="A/B rounds (each runs both, in ABBA order)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum measured seconds per measurement")
    # One intra-op thread by default: on a small shared machine, OpenMP threads that wait on a busy
    # core make timings swing by several times, which would hide the comparison this script is for.
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    started = time.perf_counter()
    loaded = build_model()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; workload {WORKLOAD}", flush=True)
    print("| round | suite decode tok/s | reference decode tok/s | ratio | suite harness overhead | suite runs | ref runs |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    ratios: list[float] = []
    overheads: list[float] = []
    for index in range(args.rounds):
        if index % 2 == 0:
            suite = suite_decode(loaded, args.seconds)
            reference = reference_decode(loaded.model, args.seconds, pad_token_id=loaded.prefix_token_id())
        else:
            reference = reference_decode(loaded.model, args.seconds, pad_token_id=loaded.prefix_token_id())
            suite = suite_decode(loaded, args.seconds)
        ratio = suite["decode_tokens_per_second"] / reference["decode_tokens_per_second"]
        ratios.append(ratio)
        overheads.append(suite["overhead"])
        print(
            f"| {index + 1} | {suite['decode_tokens_per_second']:.1f} | {reference['decode_tokens_per_second']:.1f} | "
            f"{ratio:.3f} | {suite['overhead']:.3%} | {suite['runs']:.0f} | {reference['runs']:.0f} |",
            flush=True,
        )
    ratio, overhead = statistics.median(ratios), statistics.median(overheads)
    ratio_ok = RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1]
    overhead_ok = overhead < MAX_OVERHEAD
    print()
    print(f"median ratio suite/reference: {ratio:.3f} (target {RATIO_RANGE[0]}..{RATIO_RANGE[1]}) {'PASS' if ratio_ok else 'FAIL'}")
    print(f"median harness overhead: {overhead:.3%} (target < {MAX_OVERHEAD:.0%}) {'PASS' if overhead_ok else 'FAIL'}")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0 if ratio_ok and overhead_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
