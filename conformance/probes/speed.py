"""The speed probe: prefill and decode throughput, TTFT, TPOT and peak memory of one loaded causal LM.

Method (after optimum-benchmark's latency tracker and MLPerf LoadGen's "minimum count and minimum
duration" rule):

- inputs are random token ids from a seeded generator, shape (batch_size, prompt_tokens), attention mask
  all ones; generation is greedy and fixed-length (min_new_tokens = max_new_tokens, so EOS never ends a
  sequence early);
- a *prefill run* is `generate(max_new_tokens=1)`: its time is the time to first token (TTFT);
- a *full run* is `generate(max_new_tokens=new_tokens)`;
- after `warmup_runs` untimed rounds, rounds of (prefill run, full run) alternate until both `min_runs`
  rounds and `min_seconds` have passed (or `max_runs` / `max_seconds` cut it short);
- decode time of round i = full_i - median(prefill). Alternating the two kinds of run keeps slow drift
  (clocks, thermals) common to both, and subtracting the median rather than the paired prefill_i keeps
  the prefill's own run-to-run noise out of every decode sample (var(a - b) = var(a) + var(b));
- prefill tokens/s = batch_size * prompt_tokens / prefill time; decode tokens/s = batch_size *
  (new_tokens - 1) / decode time (the first new token belongs to prefill); TPOT = decode time /
  (new_tokens - 1). Headline figures are medians of the per-round figures;
- timing: CUDA events around the call and a synchronize on the event on GPU, time.perf_counter on CPU
  (where every torch op has finished when it returns);
- a series whose coefficient of variation exceeds `max_cv` is *unstable*: rules judged on it error
  with the reason instead of passing or failing on noise.
"""

from __future__ import annotations

import gc
import math
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import CheckError, CheckSkipped
from .load import LoadedModel
from .stats import SampleStats

DTYPES = ("float32", "bfloat16", "float16")
SERIES = ("prefill", "decode")  # the two timed series a rule can be judged on


@dataclass(frozen=True)
class Workload:
    batch_size: int
    prompt_tokens: int
    new_tokens: int

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"workload.{item.name} must be an integer >= 1, got {value!r}")
        if self.new_tokens < 2:
            raise ValueError("workload.new_tokens must be >= 2: decode starts after the first new token")

    @property
    def prefill_tokens(self) -> int:
        return self.batch_size * self.prompt_tokens

    @property
    def decode_tokens(self) -> int:
        return self.batch_size * (self.new_tokens - 1)


@dataclass(frozen=True)
class MeasurementPolicy:
    warmup_runs: int = 2
    min_runs: int = 5
    min_seconds: float = 1.0
    max_runs: int = 200
    max_seconds: float = 120.0
    max_cv: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.warmup_runs < 0:
            raise ValueError("measurement.warmup_runs must be >= 0")
        if self.min_runs < 2:
            raise ValueError("measurement.min_runs must be >= 2: one run says nothing about variation")
        if self.max_runs < self.min_runs:
            raise ValueError("measurement.max_runs must be >= min_runs")
        if self.min_seconds < 0 or self.max_seconds <= 0 or self.max_seconds < self.min_seconds:
            raise ValueError("measurement needs 0 <= min_seconds <= max_seconds and max_seconds > 0")
        if self.max_cv < 0:
            raise ValueError("measurement.max_cv must be >= 0")


_POLICY_TYPES: dict[str, type] = {item.name: (float if item.type in (float, "float") else int) for item in fields(MeasurementPolicy)}
_DEFAULT_POLICY = MeasurementPolicy()


def speed_params(rule_params: dict[str, Any]) -> dict[str, Any]:
    """The speed probe's parameters from a rule's: rules with equal results share one measurement.

    Only what changes the measurement is kept (not `percentile` or peak overrides), policy values equal
    to the defaults are dropped and numbers are cast to their field's type, so `min_seconds: 1` and no
    `measurement` at all give the same key.
    """
    workload = rule_params.get("workload")
    if not isinstance(workload, dict):
        raise ValueError("a performance rule needs workload: {batch_size, prompt_tokens, new_tokens}")
    parsed = Workload(**{key: workload.get(key) for key in ("batch_size", "prompt_tokens", "new_tokens")})
    params: dict[str, Any] = {"workload": asdict(parsed)}
    overrides = rule_params.get("measurement") or {}
    unknown = sorted(set(overrides) - set(_POLICY_TYPES))
    if unknown:
        raise ValueError(f"unknown measurement keys: {', '.join(unknown)}")
    policy = {key: _POLICY_TYPES[key](value) for key, value in overrides.items()}
    MeasurementPolicy(**policy)  # validate now, not in the middle of a run
    changed = {key: value for key, value in policy.items() if value != getattr(_DEFAULT_POLICY, key)}
    if changed:
        params["measurement"] = dict(sorted(changed.items()))
    for key in ("device", "dtype"):
        if rule_params.get(key):
            params[key] = str(rule_params[key])
    return params


def parse_speed_params(params: dict[str, Any]) -> tuple[Workload, MeasurementPolicy]:
    return Workload(**params["workload"]), MeasurementPolicy(**params.get("measurement", {}))


@dataclass(frozen=True)
class SpeedEvidence:
    workload: Workload
    policy: MeasurementPolicy
    runs: int
    prefill_ms: tuple[float, ...]  # raw samples: one prefill run (TTFT) per round
    full_ms: tuple[float, ...]  # raw samples: one full generation per round
    decode_ms: tuple[float, ...]  # full_ms[i] - median(prefill_ms)
    ttft_ms: SampleStats
    tpot_ms: SampleStats
    prefill_tokens_per_second: float
    decode_tokens_per_second: float | None  # None when a decode time was not positive (see unstable)
    prefill_tokens_per_second_stats: SampleStats
    decode_tokens_per_second_stats: SampleStats | None
    series_cv: dict[str, float]
    unstable: dict[str, str]  # series -> why it cannot be trusted; empty when stable
    peak_memory_bytes: int | None
    peak_memory_method: str
    wall_seconds: float  # from the first to the end of the last measured round, harness included
    timed_seconds: float  # sum of the timed regions; wall - timed is the harness's own overhead
    environment: dict[str, Any]
    timing_method: str
    decode_method: str = "decode_i = full_i - median(prefill); prefill and full runs alternate"

    @property
    def stable(self) -> bool:
        return not self.unstable

    @property
    def unstable_reason(self) -> str | None:
        return "; ".join(self.unstable.values()) or None

    def instability(self, series: str) -> str | None:
        """Why the given series (prefill or decode) cannot be trusted, or None when it can."""
        return self.unstable.get(series)

    def to_dict(self) -> dict[str, Any]:
        def stats(value: SampleStats | None) -> dict[str, Any] | None:
            return value.to_dict() if value is not None else None

        return {
            "workload": asdict(self.workload),
            "policy": asdict(self.policy),
            "runs": self.runs,
            "prefill_tokens_per_second": round(self.prefill_tokens_per_second, 3),
            "decode_tokens_per_second": None if self.decode_tokens_per_second is None else round(self.decode_tokens_per_second, 3),
            "ttft_ms": stats(self.ttft_ms),
            "tpot_ms": stats(self.tpot_ms),
            "prefill_tokens_per_second_stats": stats(self.prefill_tokens_per_second_stats),
            "decode_tokens_per_second_stats": stats(self.decode_tokens_per_second_stats),
            "series_cv": {key: round(value, 6) if math.isfinite(value) else str(value) for key, value in self.series_cv.items()},
            "stable": self.stable,
            "unstable_reason": self.unstable_reason,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_method": self.peak_memory_method,
            "wall_seconds": round(self.wall_seconds, 6),
            "timed_seconds": round(self.timed_seconds, 6),
            "timing_method": self.timing_method,
            "decode_method": self.decode_method,
            "samples": {
                "prefill_ms": [round(value, 4) for value in self.prefill_ms],
                "full_ms": [round(value, 4) for value in self.full_ms],
            },
            "environment": dict(self.environment),
        }


# --- environment -------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def _nvidia_driver_version() -> str | None:
    """The driver release (e.g. 550.54.15): NVML when installed, else the kernel module's /proc file."""
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
            return version.decode() if isinstance(version, bytes) else str(version)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # not installed, or no NVML on this machine
        pass
    try:
        text = Path("/proc/driver/nvidia/version").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?([0-9][0-9.]+)", text)
    return match.group(1) if match else None


def device_environment(device: str, dtype: str) -> dict[str, Any]:
    """Device name, driver, torch and CUDA versions, dtype and threads: what a speed figure depends on."""
    import torch

    environment: dict[str, Any] = {
        "device": device,
        "dtype": dtype,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "threads": torch.get_num_threads(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }
    if device.startswith("cuda"):
        environment["device_name"] = torch.cuda.get_device_name(torch.device(device))
        environment["driver_version"] = _nvidia_driver_version()
        get_driver_api = getattr(torch._C, "_cuda_getDriverVersion", None)
        if get_driver_api is not None:
            api = int(get_driver_api())  # e.g. 12040: the CUDA version the driver supports, not its release
            environment["cuda_driver_api_version"] = f"{api // 1000}.{(api % 1000) // 10}"
        hip = getattr(torch.version, "hip", None)
        if hip:
            environment["hip_version"] = hip
    else:
        environment["device_name"] = _cpu_name()
        environment["driver_version"] = None
    return environment


# --- peak memory --------------------------------------------------------------------------------

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _reset_peak_memory(device: str) -> str:
    """Start a fresh peak where the platform allows it; return how the peak will be read."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))
        return "torch.cuda.max_memory_allocated after reset_peak_memory_stats (tensors on this device)"
    try:
        # Linux: writing 5 resets the process's peak resident set (VmHWM) to its current size.
        _CLEAR_REFS.write_text("5", encoding="ascii")
        return "VmHWM after /proc/self/clear_refs reset: process peak resident set during the measured runs"
    except OSError:
        return "ru_maxrss: process peak resident set since the process started (not only this measurement)"


def _read_peak_memory(device: str, method: str) -> int | None:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(torch.device(device)))
    if method.startswith("VmHWM"):
        try:
            for line in _STATUS.read_text(encoding="ascii").splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        return None


# --- timing -------------------------------------------------------------------------------------

Timed = Callable[[Callable[[], Any]], tuple[float, Any]]


def _timer(device: str) -> tuple[Timed, str]:
    import torch

    if device.startswith("cuda"):
        where = torch.device(device)

        def cuda_timed(function: Callable[[], Any]) -> tuple[float, Any]:
            torch.cuda.synchronize(where)  # nothing queued before the start event
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = function()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0, result

        return cuda_timed, "torch.cuda.Event pair around generate, synchronized on the end event"

    def cpu_timed(function: Callable[[], Any]) -> tuple[float, Any]:
        start = time.perf_counter()
        result = function()
        return time.perf_counter() - start, result

    return cpu_timed, "time.perf_counter around generate (CPU ops are synchronous)"


# --- the probe ----------------------------------------------------------------------------------


def check_applicable(loaded: LoadedModel, params: dict[str, Any]) -> None:
    """Raise CheckSkipped when the rule cannot be measured on this model, device or dtype."""
    import torch

    if loaded.kind == "encoder":
        raise CheckSkipped("encoder-only model: generation speed does not apply")
    wanted = params.get("device")
    if wanted:
        on_cuda = loaded.device.startswith("cuda")
        if wanted.startswith("cuda") and not on_cuda:
            if not torch.cuda.is_available():
                raise CheckSkipped(f"rule measures on {wanted}; no CUDA device here (model loaded on {loaded.device})")
            raise CheckSkipped(f"rule measures on {wanted}; model loaded on {loaded.device} (pass --device {wanted})")
        if wanted == "cpu" and on_cuda:
            raise CheckSkipped(f"rule measures on cpu; model loaded on {loaded.device} (pass --device cpu)")
        if ":" in wanted and on_cuda and torch.device(wanted) != torch.device(loaded.device):
            raise CheckSkipped(f"rule measures on {wanted}; model loaded on {loaded.device} (pass --device {wanted})")
    dtype = params.get("dtype")
    if dtype and dtype != loaded.dtype:
        raise CheckSkipped(f"rule measures in {dtype}; model loaded in {loaded.dtype} (pass --dtype {dtype})")


def _pad_token_id(loaded: LoadedModel) -> int:
    """An explicit pad id, so generate neither warns nor guesses; any id works since nothing is padded."""
    candidates = [
        getattr(getattr(loaded.model, "generation_config", None), "pad_token_id", None),
        getattr(loaded.tokenizer, "pad_token_id", None),
        getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None),
        getattr(getattr(loaded.model, "config", None), "eos_token_id", None),
    ]
    for candidate in candidates:
        if isinstance(candidate, (list, tuple)):
            candidate = candidate[0] if candidate else None
        if isinstance(candidate, int) and not isinstance(candidate, bool):
            return candidate
    return 0


def _vocab_rows(model: Any) -> int:
    try:
        return int(model.get_input_embeddings().num_embeddings)
    except (AttributeError, TypeError, NotImplementedError):
        return int(model.config.vocab_size)


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and ("out of memory" in text or "can't allocate memory" in text)


@dataclass
class _Rounds:
    prefill_seconds: list[float] = field(default_factory=list)
    full_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    hit_limit: str | None = None  # why the loop stopped before min_runs, if it did


def _run_rounds(loaded: LoadedModel, workload: Workload, policy: MeasurementPolicy, timed: Timed) -> _Rounds:
    import torch

    generator = torch.Generator().manual_seed(policy.seed)
    shape = (workload.batch_size, workload.prompt_tokens)
    input_ids = torch.randint(0, _vocab_rows(loaded.model), shape, generator=generator).to(loaded.device)
    common: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "do_sample": False,
        "num_beams": 1,
        "use_cache": True,
        "pad_token_id": _pad_token_id(loaded),
    }
    expected_length = workload.prompt_tokens + workload.new_tokens

    def prefill() -> Any:
        return loaded.model.generate(**common, max_new_tokens=1, min_new_tokens=1)

    def full() -> Any:
        return loaded.model.generate(**common, max_new_tokens=workload.new_tokens, min_new_tokens=workload.new_tokens)

    rounds = _Rounds()
    # no_grad, as generate itself uses, and not inference_mode: inference_mode makes small CPU models
    # ~20% faster than the plain `model.generate` call users make, and that call is what is measured.
    with torch.no_grad():
        for _ in range(policy.warmup_runs):
            prefill()
            full()
        gc.collect()  # don't let garbage from loading and warm-up be collected inside a timed region
        started = time.perf_counter()
        while True:
            prefill_seconds, _ = timed(prefill)
            full_seconds, output = timed(full)
            if output.shape[-1] != expected_length:
                raise CheckError(f"generation returned {output.shape[-1] - workload.prompt_tokens} new tokens, not {workload.new_tokens}")
            rounds.prefill_seconds.append(prefill_seconds)
            rounds.full_seconds.append(full_seconds)
            count, elapsed = len(rounds.full_seconds), time.perf_counter() - started
            if count >= policy.min_runs and elapsed >= policy.min_seconds:
                break
            if count >= policy.max_runs or elapsed >= policy.max_seconds:
                if count < policy.min_runs:
                    rounds.hit_limit = f"only {count} runs within max_seconds {policy.max_seconds:g} (min_runs {policy.min_runs})"
                break
        rounds.wall_seconds = time.perf_counter() - started
    return rounds


def _summarize(workload: Workload, policy: MeasurementPolicy, rounds: _Rounds) -> dict[str, Any]:
    prefill_s, full_s = rounds.prefill_seconds, rounds.full_seconds
    median_prefill_s = statistics.median(prefill_s)
    decode_s = [full - median_prefill_s for full in full_s]
    prefill_rates = [workload.prefill_tokens / seconds for seconds in prefill_s]
    prefill_stats = SampleStats.of(prefill_s)
    decode_stats = SampleStats.of(decode_s)
    series_cv = {"prefill": prefill_stats.cv, "decode": decode_stats.cv}
    unstable: dict[str, str] = {}
    if rounds.hit_limit:
        unstable["prefill"] = unstable["decode"] = rounds.hit_limit
    for series, cv in series_cv.items():
        if series not in unstable and cv > policy.max_cv:
            unstable[series] = f"{series} time varies too much: cv {cv:.3f} > max_cv {policy.max_cv:g} over {len(full_s)} runs"
    decode_rates: list[float] | None = [workload.decode_tokens / seconds for seconds in decode_s] if min(decode_s) > 0 else None
    if decode_rates is None:
        unstable["decode"] = "decode time not resolved: a full generation took no longer than the median prefill"
    decode_rate_stats = SampleStats.of(decode_rates) if decode_rates else None
    return {
        "decode_ms": tuple(seconds * 1000 for seconds in decode_s),
        "ttft_ms": SampleStats.of([seconds * 1000 for seconds in prefill_s]),
        "tpot_ms": SampleStats.of([seconds * 1000 / (workload.new_tokens - 1) for seconds in decode_s]),
        "prefill_tokens_per_second": statistics.median(prefill_rates),
        "decode_tokens_per_second": decode_rate_stats.median if decode_rate_stats else None,
        "prefill_tokens_per_second_stats": SampleStats.of(prefill_rates),
        "decode_tokens_per_second_stats": decode_rate_stats,
        "series_cv": series_cv,
        "unstable": unstable,
    }


def measure_speed(loaded: LoadedModel, params: dict[str, Any]) -> SpeedEvidence:
    """Time prefill and full generation on `loaded.model` (already on its device) per `params`.

    `params` is `speed_params(rule.params)`. Raises CheckSkipped when the rule does not apply here
    (encoder, other device or dtype) and CheckError for out-of-memory or a generation that stops early.
    """
    import torch

    check_applicable(loaded, params)
    workload, policy = parse_speed_params(params)
    timed, timing_method = _timer(loaded.device)
    environment = device_environment(loaded.device, loaded.dtype)
    try:
        memory_method = _reset_peak_memory(loaded.device)
        rounds = _run_rounds(loaded, workload, policy, timed)
        peak_memory_bytes = _read_peak_memory(loaded.device, memory_method)
    except CheckError:
        raise
    except Exception as exc:
        if not _is_out_of_memory(exc):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        del exc  # drop the traceback's references to the failed run's tensors before emptying the cache
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise CheckError(f"out of memory during measurement (batch {workload.batch_size}, prompt {workload.prompt_tokens}, new {workload.new_tokens}): {message}") from None
    summary = _summarize(workload, policy, rounds)
    return SpeedEvidence(
        workload=workload,
        policy=policy,
        runs=len(rounds.full_seconds),
        prefill_ms=tuple(seconds * 1000 for seconds in rounds.prefill_seconds),
        full_ms=tuple(seconds * 1000 for seconds in rounds.full_seconds),
        peak_memory_bytes=peak_memory_bytes,
        peak_memory_method=memory_method,
        wall_seconds=rounds.wall_seconds,
        timed_seconds=sum(rounds.prefill_seconds) + sum(rounds.full_seconds),
        environment=environment,
        timing_method=timing_method,
        **summary,
    )
