"""What does scoring tasks through the suite cost, next to lm-eval alone and next to separate tools?

Part A, one process, one loaded model (a tiny random Llama built in benchmarks/.work/, reused if present),
the four bundled tasks; rounds alternate A B A B ..., after one untimed warm-up of each:
  A. the suite: conformance.probes.tasks.score_tasks(loaded, [TaskRequest(t) ...], []);
  B. lm-eval directly: simple_evaluate(HFLM(pretrained=model, tokenizer=tok, batch_size=8,
     prefix_token_id=<the suite's choice>), the same task names, TaskManager(include_path=TASKS_DIR,
     include_defaults=False), log_samples=False, bootstrap_iters=<the suite's BOOTSTRAP_ITERS>).
Each side is timed from the loaded model to the scores (task manager, wrapper and evaluation included).
Target: median suite / direct <= 1.05; the scores of A and B must be identical.

Part B, whole commands, wall clock of subprocesses: `conformance check MODEL --spec specs/mixed.yaml -q`
(static, runtime and task rules; the model loaded once) against the sum of three separate tools that a
team without the suite would run, each loading the model itself:
  1. a static script: config.json, safetensors headers (safe_open), picklescan on the folder;
  2. a runtime script: transformers load, one forward pass checked finite, two greedy generations compared;
  3. the lm_eval CLI on the four bundled tasks (--include_path, --batch_size 8), offline.
Reported: each tool's median wall, their sum, the suite's median wall, and suite / sum (lower is better).

    python benchmarks/task_scoring.py [--rounds 5] [--runs 3] [--threads 1] [--part all|a|b]

About 2 minutes on 2 shared CPU cores; lm-eval's progress bars and warnings go to stderr.
Exit status 0 when part A passes (or only part B ran), else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from conformance.tasks import TASK_NAMES, TASKS_DIR  # noqa: E402

WORK_DIR = ROOT / "benchmarks" / ".work" / "task_scoring"
MODEL_DIR = WORK_DIR / "llama"
SPEC = ROOT / "benchmarks" / "specs" / "mixed.yaml"
# Larger than the tests' llama (hidden 64, 2 layers) so one scoring of the four tasks takes seconds.
MODEL_SHAPE = {
    "hidden_size": 256,
    "num_layers": 8,
    "num_heads": 8,
    "num_kv_heads": 4,
    "intermediate_size": 688,
    "vocab_size": 1024,
    "context_length": 512,
}
MAX_RATIO = 1.05
BATCH_SIZE = 8
BIN = Path(sys.executable).parent


def build_model() -> Path:
    if (MODEL_DIR / "config.json").exists() and (MODEL_DIR / "model.safetensors").exists():
        return MODEL_DIR
    from conformance.zoo import build_llama

    print(f"building {MODEL_DIR} ...", flush=True)
    return build_llama(MODEL_DIR, seed=0, **MODEL_SHAPE)


# ---------------------------------------------------------------- part A: the same loaded model


def _flat_scores(results: dict[str, dict[str, Any]]) -> dict[tuple[str, str], float]:
    """lm-eval's results block as {(task, "acc,none"): value}, stderrs included, numbers only."""
    flat: dict[tuple[str, str], float] = {}
    for task, values in results.items():
        for key, value in values.items():
            if "," in key and isinstance(value, (int, float)) and not isinstance(value, bool):
                flat[(task, key)] = float(value)
    return flat


def suite_scoring(loaded: Any) -> tuple[float, dict[tuple[str, str], float]]:
    from conformance.probes.tasks import TaskRequest, score_tasks

    started = time.perf_counter()
    scores = score_tasks(loaded, [TaskRequest(task) for task in TASK_NAMES], [])
    seconds = time.perf_counter() - started
    if scores.errors:
        raise RuntimeError(f"suite scoring errors: {scores.errors}")
    flat: dict[tuple[str, str], float] = {}
    for task, values in scores.scores.items():
        flat.update({(task, f"{metric},none"): value for metric, value in values.items() if value is not None})
    for task, values in scores.stderrs.items():
        flat.update({(task, f"{metric}_stderr,none"): value for metric, value in values.items() if value is not None})
    return seconds, flat


def direct_scoring(loaded: Any) -> tuple[float, dict[tuple[str, str], float]]:
    """lm-eval as its documentation shows for an already-loaded model; nothing from the suite but the
    constants that must match for the same work (prefix token, bootstrap resamples)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from conformance.probes.tasks import BOOTSTRAP_ITERS

    started = time.perf_counter()
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    model = HFLM(
        pretrained=loaded.model,
        tokenizer=loaded.tokenizer,
        batch_size=BATCH_SIZE,
        prefix_token_id=loaded.prefix_token_id(),
    )
    output = lm_eval.simple_evaluate(
        model=model,
        tasks=list(TASK_NAMES),
        task_manager=manager,
        log_samples=False,
        bootstrap_iters=BOOTSTRAP_ITERS,
    )
    seconds = time.perf_counter() - started
    return seconds, _flat_scores(output["results"])


def max_abs_difference(a: dict[tuple[str, str], float], b: dict[tuple[str, str], float]) -> float:
    if set(a) != set(b):
        raise AssertionError(f"different metrics: suite only {sorted(set(a) - set(b))}, direct only {sorted(set(b) - set(a))}")
    return max(abs(a[key] - b[key]) for key in a)


def part_a(rounds: int) -> dict[str, Any]:
    import torch

    from conformance.candidate import Candidate
    from conformance.probes.load import LoadOptions, load_model

    loaded = load_model(Candidate(MODEL_DIR), LoadOptions(device="cpu", dtype="float32"), ["safetensors"], [])
    parameters = sum(p.numel() for p in loaded.model.parameters())
    print(
        f"\n## Part A: score_tasks vs lm_eval.simple_evaluate on one loaded model ({parameters:,} parameters, "
        f"{torch.get_num_threads()} thread(s), tasks {', '.join(TASK_NAMES)})",
        flush=True,
    )
    warm_suite, suite_reference = suite_scoring(loaded)
    warm_direct, direct_reference = direct_scoring(loaded)
    print(f"warm-up: suite {warm_suite:.3f} s, direct {warm_direct:.3f} s", flush=True)
    differences = [max_abs_difference(suite_reference, direct_reference)]
    print("| round | suite s | direct s | ratio |")
    print("|---:|---:|---:|---:|")
    suite_s: list[float] = []
    direct_s: list[float] = []
    for index in range(rounds):
        seconds_a, scores_a = suite_scoring(loaded)
        seconds_b, scores_b = direct_scoring(loaded)
        differences += [max_abs_difference(scores_a, scores_b), max_abs_difference(scores_a, suite_reference)]
        suite_s.append(seconds_a)
        direct_s.append(seconds_b)
        print(f"| {index + 1} | {seconds_a:.3f} | {seconds_b:.3f} | {seconds_a / seconds_b:.3f} |", flush=True)
    suite_median, direct_median = statistics.median(suite_s), statistics.median(direct_s)
    ratio = suite_median / direct_median
    round_ratios = [a / b for a, b in zip(suite_s, direct_s, strict=True)]
    difference = max(differences)
    print(f"| median | {suite_median:.3f} | {direct_median:.3f} | {ratio:.3f} |")
    print(
        f"per-round ratios {min(round_ratios):.3f}..{max(round_ratios):.3f}; "
        f"{len(suite_reference)} metric values (scores and stderrs), max abs difference suite vs direct: {difference!r}"
    )
    return {
        "ratio": ratio,
        "difference": difference,
        "suite_s": suite_s,
        "direct_s": direct_s,
        "metrics": len(suite_reference),
        "scores": suite_reference,
    }


# ---------------------------------------------------------------- part B: whole commands

STATIC_TOOL = """
import json, math, sys
from pathlib import Path
from safetensors import safe_open
from picklescan.scanner import scan_directory_path
folder = Path(sys.argv[1])
config = json.loads((folder / "config.json").read_text())
parameters = 0
for path in sorted(folder.glob("*.safetensors")):
    with safe_open(str(path), framework="numpy") as handle:
        for name in handle.keys():
            parameters += math.prod(handle.get_slice(name).get_shape())
scan = scan_directory_path(str(folder))
ok = config["model_type"] == "llama" and parameters <= 1e8 and scan.infected_files == 0 and not scan.scan_err
print(config["model_type"], parameters, "scanned", scan.scanned_files, "infected", scan.infected_files)
sys.exit(0 if ok else 1)
"""

RUNTIME_TOOL = """
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
ids = tokenizer("The conformance suite checks that a model produces finite outputs for ordinary text.", return_tensors="pt").input_ids
with torch.inference_mode():
    finite = bool(torch.isfinite(model(input_ids=ids).logits).all())
    runs = [model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=16,
                           min_new_tokens=16, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)[0].tolist()
            for _ in range(2)]
print("finite", finite, "deterministic", runs[0] == runs[1])
sys.exit(0 if finite and runs[0] == runs[1] else 1)
"""


def _timed(command: list[str], env: dict[str, str], expect_rc: int = 0) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != expect_rc:
        raise RuntimeError(f"{command[:3]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return seconds


def part_b(runs: int, threads: int, out: Path) -> dict[str, Any]:
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    python = sys.executable
    suite_out = out / "suite"
    lm_eval_out = out / "lm_eval"
    commands = {
        "conformance check": [
            str(BIN / "conformance"),
            "check",
            str(MODEL_DIR),
            "--spec",
            str(SPEC),
            "-q",
            "--out",
            str(suite_out),
        ],
        "static script": [python, "-c", STATIC_TOOL, str(MODEL_DIR)],
        "runtime script": [python, "-c", RUNTIME_TOOL, str(MODEL_DIR)],
        "lm_eval CLI": [
            str(BIN / "lm_eval"),
            "--model",
            "hf",
            "--model_args",
            f"pretrained={MODEL_DIR}",
            "--tasks",
            ",".join(TASK_NAMES),
            "--include_path",
            str(TASKS_DIR),
            "--batch_size",
            str(BATCH_SIZE),
            "--output_path",
            str(lm_eval_out),
        ],
    }
    print(
        f"\n## Part B: `conformance check` (static + runtime + task rules) vs separate tools, wall s, OMP_NUM_THREADS={threads}",
        flush=True,
    )
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for index in range(runs):
        for name, command in commands.items():  # suite first in every run, then the three tools
            walls[name].append(_timed(command, env))
        row = ", ".join(f"{name} {walls[name][-1]:.2f}" for name in commands)
        print(f"run {index + 1}: {row}", flush=True)
    medians = {name: statistics.median(values) for name, values in walls.items()}
    tools_sum = sum(value for name, value in medians.items() if name != "conformance check")
    ratio = medians["conformance check"] / tools_sum
    print("| side | runs (s) | median s |")
    print("|---|---|---:|")
    for name, values in walls.items():
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {medians[name]:.2f} |")
    print(f"| separate tools, sum of medians | | {tools_sum:.2f} |")
    print(f"suite / sum of separate tools: {ratio:.3f} (lower is better)")
    # Same numbers from both whole commands? The suite's result document against the lm_eval CLI's output.
    result = json.loads(next(suite_out.glob("*.json")).read_text())
    suite_scores = result["evidence"]["tasks"]["scores"]
    cli = json.loads(sorted(lm_eval_out.rglob("results_*.json"))[-1].read_text())["results"]
    difference = max(abs(float(suite_scores[t][m]) - float(cli[t][f"{m},none"])) for t in suite_scores for m in suite_scores[t])
    # Where the CLI's extra time goes: it cannot skip indexing lm-eval's own catalogue (include_defaults).
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    catalogue = len(TaskManager(include_path=str(TASKS_DIR)).all_tasks)
    index_seconds = time.perf_counter() - started
    print(
        f"of the lm_eval CLI's wall, indexing lm-eval's catalogue of {catalogue} tasks takes about {index_seconds:.2f} s "
        f"(TaskManager with include_defaults, timed once in this process); the suite skips it for bundled tasks"
    )
    print(f"max abs difference, suite's task scores vs the lm_eval CLI's: {difference!r}; suite rules: {result['summary']}")
    return {
        "medians": medians,
        "sum": tools_sum,
        "ratio": ratio,
        "walls": walls,
        "difference": difference,
        "index_s": index_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="part A: timed rounds of each side (after one warm-up)")
    parser.add_argument("--runs", type=int, default=3, help="part B: runs of each command")
    # One intra-op thread by default: on a small shared machine, OpenMP threads that wait on a busy core
    # make a forward pass of this model up to 60 times slower, which would swamp the comparison.
    parser.add_argument("--threads", type=int, default=1, help="torch threads: in-process for A, OMP_NUM_THREADS for B")
    parser.add_argument("--part", choices=("all", "a", "b"), default="all")
    args = parser.parse_args(argv)
    import lm_eval
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    build_model()
    print(
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, lm-eval {lm_eval.__version__}, "
        f"{time.strftime('%Y-%m-%d')}",
        flush=True,
    )
    passed = True
    if args.part in ("all", "a"):
        a = part_a(args.rounds)
        identical = a["difference"] == 0.0
        ratio_ok = a["ratio"] <= MAX_RATIO
        print(
            f"part A: median ratio suite/direct {a['ratio']:.3f} (target <= {MAX_RATIO}) {'PASS' if ratio_ok else 'FAIL'}; "
            f"scores identical: {'PASS' if identical else 'FAIL'}",
            flush=True,
        )
        passed = ratio_ok and identical
    if args.part in ("all", "b"):
        with tempfile.TemporaryDirectory(prefix="task_scoring_", dir=WORK_DIR) as out:
            part_b(args.runs, args.threads, Path(out))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
