"""Time to a verdict: interval verdicts (measure until decided) against the old fixed-run policy.

One tiny random Llama on CPU, one decode rule, two bars: *far* (a hundredth of the figure) and *near*
(10% below the figure), both from a pilot run in the same machine state (a loaded machine is slower). Three policies judge each bar, `--repeats` times each,
on an idle machine and then with two busy loops (`python -c "while True: pass"`) sharing the cores:

  fixed      the policy before intervals: 5 runs and 1 s, then the median against the bar, unless the
             decode series' coefficient of variation exceeds max_cv 0.15 (then the rule errors "unstable");
  interval   the default now: 5 runs and 1 s at least, then on until the interval is clear of the bar
             (verdict confidence 0.95, max_runs 1000; max_seconds 60 here instead of 120, to bound the run);
  interval0  the same with min_seconds 0: what the interval needs by itself.

Printed per (machine state, bar, policy): median seconds to the verdict (warm-up excluded), median runs,
and the verdicts over the repeats (pass / fail / error). The right verdict is pass for both bars.

    python benchmarks/verdict_time.py [--repeats 3]

About 5-10 minutes on 2 CPU cores (rounds are several times slower under the busy loops).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from conformance.backends import TransformersBackend  # noqa: E402
from conformance.catalogue import get_check  # noqa: E402
from conformance.errors import CheckError  # noqa: E402
from conformance.evidence import Evidence, evidence_key  # noqa: E402
from conformance.probes.architecture import normalize_architecture  # noqa: E402
from conformance.probes.speed import measure_speed, speed_params  # noqa: E402
from conformance.rule import Rule  # noqa: E402
from conformance.runner import decision_callback  # noqa: E402

WORKLOAD = {"batch_size": 1, "prompt_tokens": 32, "new_tokens": 16}
POLICIES = {
    "fixed": {"warmup_runs": 1, "min_runs": 5, "min_seconds": 1.0, "max_cv": 0.15},
    "interval": {"warmup_runs": 1, "min_runs": 5, "min_seconds": 1.0, "max_seconds": 60.0},
    "interval0": {"warmup_runs": 1, "min_runs": 5, "min_seconds": 0.0, "max_seconds": 60.0},
}


def build_model() -> TransformersBackend:
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=256, vocab_size=512, max_position_embeddings=256)
    model = LlamaForCausalLM(config).eval()
    return TransformersBackend(model, None, "causal", "cpu", "float32", 0.0, normalize_architecture(config.to_dict()))


def decode_rule(bar: float, policy: str) -> Rule:
    return Rule(id="DECODE", level="must", check="performance.decode_tokens_per_second", comparison={"min": bar},
                params={"workload": WORKLOAD, "measurement": POLICIES[policy]})


def verdict_once(loaded: TransformersBackend, bar: float, policy: str) -> tuple[float, int, str]:
    """(seconds to the verdict after warm-up, runs, status) of one rule under one policy."""
    rule = decode_rule(bar, policy)
    params = speed_params(rule.params)
    key = evidence_key("speed", params)
    evidence = Evidence()
    evidence.put("load", loaded)
    # The fixed policy never measured on for a bar; the interval policies do, as the runner does.
    decided = None if policy == "fixed" else decision_callback(key, [rule], evidence)
    speed = measure_speed(loaded, params, decided)
    evidence.put(key, speed)
    try:
        status = get_check(rule.check).function(evidence, rule).status
    except CheckError:
        status = "error"
    return speed.wall_seconds, speed.runs, status


def busy_loops(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def pilot_bars(loaded: TransformersBackend, state: str) -> dict[str, float]:
    pilot = measure_speed(loaded, speed_params({"workload": WORKLOAD, "measurement": {"min_runs": 30, "min_seconds": 2.0}}))
    figure = pilot.decode_tokens_per_second or 0.0
    print(f"{state}: pilot decode {figure:.1f} tokens/s over {pilot.runs} runs, cv {pilot.series_cv['decode']:.3f}", flush=True)
    return {"far": figure / 100, "near": figure * 0.9}


def run_state(loaded: TransformersBackend, repeats: int, state: str) -> list[str]:
    bars = pilot_bars(loaded, state)
    rows = []
    for bar_name, bar in bars.items():
        for policy in POLICIES:
            results = [verdict_once(loaded, bar, policy) for _ in range(repeats)]
            seconds = statistics.median(r[0] for r in results)
            runs = statistics.median(r[1] for r in results)
            verdicts = Counter(r[2] for r in results)
            shown = ", ".join(f"{verdicts[s]} {s}" for s in ("pass", "fail", "error") if verdicts[s])
            rows.append(f"| {state} | {bar_name} ({bar:.0f}) | {policy} | {seconds:.2f} | {runs:.0f} | {shown} |")
            print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import conformance.checks.performance  # noqa: F401  (registers performance.*)

    loaded = build_model()
    print(f"torch threads {torch.get_num_threads()}")
    print("| machine | bar (tokens/s) | policy | seconds to verdict (median) | runs (median) | verdicts |")
    print("|---|---|---|---|---|---|")
    rows = run_state(loaded, args.repeats, "idle")
    loops = busy_loops(2)
    try:
        time.sleep(0.5)
        rows += run_state(loaded, args.repeats, "2 busy loops")
    finally:
        for loop in loops:
            loop.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
