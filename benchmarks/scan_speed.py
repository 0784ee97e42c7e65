"""Scan benchmark: our serialization scan against peer scanners, measured side by side in one run.

(a) Corpus: every sample of `conformance/zoo/scan_corpus.py` (malicious and benign model folders) is
    scanned by each tool in ONE process per tool (interpreter start and imports included in its wall
    time), `--corpus-rounds` times in a rotating order; the median wall is reported. Per tool: malicious samples caught, benign samples flagged, wall seconds. "Flagged" means
    the tool would block the folder:
      ours        any finding (dangerous, unknown or error) from `scan_folder`;
      picklescan  `scan_directory_path`: infected files or a scan error (its CLI exits non-zero);
      fickling    `fickling.scan_file` on every file: severity above LIKELY_SAFE or an error;
      modelscan   `ModelScan().scan`: any issue or error (skipped files are not counted);
      hayward     `hayward scan -f json` over the whole corpus once: a finding at or above its default
                  gate (--fail-on high: critical or high).
    picklescan runs from the project's environment (it is a dependency); fickling, modelscan and hayward
    from a separate virtual environment (`--peers-venv`, default /tmp/peers-venv; never a project
    dependency). A tool that is not installed is reported as such and skipped.
(b) Large file: a torch `.bin` of about 538 MB (torch.save of a random float32 state dict of 200 tensors,
    built in a temporary folder and deleted afterwards) scanned by `conformance scan FILE` when that
    command exists (else `scan_folder` in a fresh interpreter) and by `picklescan -p FILE`, alternating,
    `--repeats` times each after one warm-up each (page cache warm for both); median wall and the ratio.

    python benchmarks/scan_speed.py [--repeats 5] [--corpus-rounds 3] [--peers-venv /tmp/peers-venv] [--skip-large]
        [--skip-corpus] [--json OUT]

Prints a Markdown table. Building the corpus needs torch, numpy, joblib, dill and cloudpickle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from conformance.zoo.scan_corpus import Sample, all_samples, build_corpus  # noqa: E402

LARGE_BYTES = 538_000_000
LARGE_TENSORS = 200
TOOL_TIMEOUT_S = 1800

# Each driver reads {"samples": {id: folder}} as JSON on stdin and prints {id: flagged} as JSON.
_OURS = """
import json, sys
from pathlib import Path
from conformance.probes.scan import scan_folder
folders = json.load(sys.stdin)["samples"]
print(json.dumps({k: bool(scan_folder(Path(v)).findings) for k, v in folders.items()}))
"""
_PICKLESCAN = """
import json, logging, sys
logging.disable(logging.CRITICAL)
from picklescan.scanner import scan_directory_path
folders = json.load(sys.stdin)["samples"]
out = {}
for k, v in folders.items():
    try:
        r = scan_directory_path(v)
        out[k] = bool(r.infected_files or r.issues_count or r.scan_err)
    except Exception:
        out[k] = True
print(json.dumps(out))
"""
_FICKLING = """
import json, logging, os, sys
logging.disable(logging.CRITICAL)
import fickling
from fickling.analysis import Severity
folders = json.load(sys.stdin)["samples"]
out = {}
for k, v in folders.items():
    flagged = False
    for dirpath, _, names in os.walk(v):
        for name in names:
            try:
                r = fickling.scan_file(os.path.join(dirpath, name))
                flagged |= r.severity > Severity.LIKELY_SAFE or bool(r.errors)
            except Exception:
                flagged = True
    out[k] = flagged
print(json.dumps(out))
"""
_MODELSCAN = """
import json, logging, sys
logging.disable(logging.CRITICAL)
from modelscan.modelscan import ModelScan
folders = json.load(sys.stdin)["samples"]
out = {}
for k, v in folders.items():
    try:
        r = ModelScan().scan(v)
        out[k] = bool(r.get("issues") or r.get("errors"))
    except Exception:
        out[k] = True
print(json.dumps(out))
"""


def _child_env() -> dict[str, str]:
    """Every tool runs from bytecode, as an installed package does: pip compiles the peers' modules at install,
    while an editable checkout under PYTHONDONTWRITEBYTECODE=1 would recompile ours on every start (~50 ms)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _compile_ours() -> None:
    """Byte-compile the package once before timing (what `pip install` does for a regular install)."""
    import compileall

    compileall.compile_dir(str(ROOT / "conformance"), quiet=1)


def _python_driver(python: Path, code: str, folders: dict[str, str], cwd: Path) -> tuple[dict[str, bool], float]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), "-c", code], input=json.dumps({"samples": folders}), capture_output=True, text=True,
        cwd=cwd, timeout=TOOL_TIMEOUT_S, env=_child_env(),
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{python} driver failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def _hayward(binary: Path, root: Path, folders: dict[str, str]) -> tuple[dict[str, bool], float]:
    report = root.parent / "hayward.json"
    start = time.perf_counter()
    subprocess.run(
        [str(binary), "scan", "-f", "json", "-o", str(report), "--fail-on", "never", "--color", "never", str(root)],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False,
    )
    wall = time.perf_counter() - start
    findings = json.loads(report.read_text())["findings"]
    blocked = [f["file"] for f in findings if f.get("severity") in ("critical", "high")]
    return {k: any(path == v or path.startswith(v + os.sep) for path in blocked) for k, v in folders.items()}, wall


def run_corpus(work: Path, peers_venv: Path, rounds: int) -> dict[str, Any]:
    """Build the corpus under `work` and scan it `rounds` times with every available tool; per-tool counts, median wall."""
    samples = all_samples()
    canary = work / "CANARY"
    started = time.perf_counter()
    folders = {k: str(v) for k, v in build_corpus(work / "corpus", canary, samples).items()}
    build_s = time.perf_counter() - started
    python = Path(sys.executable)
    peer_python = peers_venv / "bin" / "python"
    tools: dict[str, Any] = {
        "conformance scan": lambda: _python_driver(python, _OURS, folders, work),
        "picklescan": lambda: _python_driver(python, _PICKLESCAN, folders, work),
        "fickling": lambda: _python_driver(peer_python, _FICKLING, folders, work),
        "modelscan": lambda: _python_driver(peer_python, _MODELSCAN, folders, work),
        "hayward": lambda: _hayward(peers_venv / "bin" / "hayward", work / "corpus", folders),
    }
    results: dict[str, Any] = {}
    walls: dict[str, list[float]] = {name: [] for name in tools}
    for round_ in range(rounds):
        # Rotate the order each round so that no tool always runs at the same point of a busy machine's load.
        names = list(tools)[round_ % len(tools):] + list(tools)[: round_ % len(tools)]
        for name in names:
            if "error" in results.get(name, {}):
                continue
            try:
                flagged, wall = tools[name]()
            except (OSError, RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError) as exc:
                results[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                continue
            walls[name].append(wall)
            results[name] = _counts(samples, flagged, statistics.median(walls[name]))
            results[name]["walls_s"] = walls[name]
    if canary.exists():
        raise SystemExit("the canary appeared: a tool executed a sample")
    return {"samples": len(samples), "build_s": build_s, "tools": results, "versions": _versions(peers_venv)}


def _counts(samples: list[Sample], flagged: dict[str, bool], wall: float) -> dict[str, Any]:
    malicious = [s for s in samples if s.expected == "malicious"]
    benign = [s for s in samples if s.expected == "benign"]
    return {
        "malicious_caught": sum(flagged.get(s.id, False) for s in malicious),
        "malicious": len(malicious),
        "benign_flagged": sum(flagged.get(s.id, False) for s in benign),
        "benign": len(benign),
        "wall_s": wall,
        "missed": sorted(s.id for s in malicious if not flagged.get(s.id, False)),
        "false_alarms": sorted(s.id for s in benign if flagged.get(s.id, False)),
    }


def _versions(peers_venv: Path) -> dict[str, str]:
    found = {}
    for python, names in ((Path(sys.executable), ("picklescan",)), (peers_venv / "bin" / "python", ("fickling", "modelscan", "hayward"))):
        for name in names:
            done = subprocess.run([str(python), "-c", f"from importlib.metadata import version; print(version({name!r}))"],
                                  capture_output=True, text=True, check=False)
            found[name] = done.stdout.strip() or "not installed"
    return found


def build_large(folder: Path) -> Path:
    """torch.save of a random float32 state dict of about LARGE_BYTES in LARGE_TENSORS tensors."""
    import torch

    generator = torch.Generator().manual_seed(0)
    per_tensor = LARGE_BYTES // 4 // LARGE_TENSORS
    state = {f"layers.{i}.weight": torch.randn(per_tensor, generator=generator) for i in range(LARGE_TENSORS)}
    path = folder / "pytorch_model.bin"
    torch.save(state, path)
    return path


def _our_large_command(path: Path) -> tuple[str, list[str]]:
    """(label, command): `conformance scan FILE` once that command exists, else scan_folder in a fresh interpreter."""
    python = sys.executable
    probe = subprocess.run([python, "-m", "conformance", "scan", "--help"], capture_output=True, cwd=ROOT, check=False)
    if probe.returncode == 0:
        return "conformance scan FILE", [python, "-m", "conformance", "scan", str(path)]
    code = "import sys; from pathlib import Path; from conformance.probes.scan import scan_folder; scan_folder(Path(sys.argv[1]))"
    return "scan_folder (python -c)", [python, "-c", code, str(path.parent)]


def run_large(work: Path, repeats: int) -> dict[str, Any]:
    """Median wall of our scan and of `picklescan -p` on the ~538 MB file, alternating runs."""
    folder = work / "large"
    folder.mkdir()
    path = build_large(folder)
    label, ours_cmd = _our_large_command(path)
    theirs_cmd = [str(Path(sys.executable).parent / "picklescan"), "-p", str(path)]
    walls: dict[str, list[float]] = {"ours": [], "picklescan": []}
    exits: dict[str, set[int]] = {"ours": set(), "picklescan": set()}
    for round_ in range(repeats + 1):  # round 0 warms the page cache and is not counted
        for name, command in (("ours", ours_cmd), ("picklescan", theirs_cmd)):
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, cwd=ROOT, env=_child_env(), check=False)
            if round_:
                walls[name].append(time.perf_counter() - start)
                exits[name].add(done.returncode)
    medians = {name: statistics.median(values) for name, values in walls.items()}
    return {
        "bytes": path.stat().st_size, "tensors": LARGE_TENSORS, "ours_command": label,
        "walls": walls, "medians": medians, "ratio": medians["ours"] / medians["picklescan"],
        "exit_codes": {k: sorted(v) for k, v in exits.items()},
    }


def markdown(corpus: dict[str, Any] | None, large: dict[str, Any] | None) -> str:
    lines = []
    if corpus:
        ours = corpus["tools"].get("conformance scan", {})
        lines += ["| tool | version | malicious caught | benign flagged | median wall s | runs s | wall vs ours |",
                  "|---|---|---|---|---|---|---|"]
        for name, counts in corpus["tools"].items():
            version = corpus["versions"].get(name, "project")
            if "error" in counts:
                lines.append(f"| {name} | {version} | - | - | - | - | {counts['error']} |")
                continue
            ratio = counts["wall_s"] / ours["wall_s"] if ours.get("wall_s") else float("nan")
            lines.append(
                f"| {name} | {version} | {counts['malicious_caught']}/{counts['malicious']} | "
                f"{counts['benign_flagged']}/{counts['benign']} | {counts['wall_s']:.2f} | "
                f"{', '.join(f'{w:.1f}' for w in counts['walls_s'])} | {ratio:.2f}x |"
            )
    if large:
        m = large["medians"]
        lines += [
            "",
            f"Large file: {large['bytes']:,} bytes, {large['tensors']} tensors; {len(large['walls']['ours'])} runs each.",
            "",
            "| scanner | median wall s | runs s | exit |",
            "|---|---|---|---|",
            f"| ours ({large['ours_command']}) | {m['ours']:.2f} | {', '.join(f'{w:.2f}' for w in large['walls']['ours'])} | "
            f"{large['exit_codes']['ours']} |",
            f"| picklescan -p | {m['picklescan']:.2f} | {', '.join(f'{w:.2f}' for w in large['walls']['picklescan'])} | "
            f"{large['exit_codes']['picklescan']} |",
            "",
            f"ours / picklescan = {large['ratio']:.2f} (target: at most 1.5)",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--corpus-rounds", type=int, default=3, help="corpus scans per tool; the median wall is shown")
    parser.add_argument("--peers-venv", type=Path, default=Path("/tmp/peers-venv"))
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw figures (and missed / false-alarm ids) here")
    args = parser.parse_args()
    _compile_ours()
    with tempfile.TemporaryDirectory(prefix="scan-bench-") as temp:
        work = Path(temp)
        corpus = None if args.skip_corpus else run_corpus(work, args.peers_venv, args.corpus_rounds)
        large = None if args.skip_large else run_large(work, args.repeats)
    if args.json:
        args.json.write_text(json.dumps({"corpus": corpus, "large": large}, indent=2))
    print(markdown(corpus, large))


if __name__ == "__main__":
    main()
