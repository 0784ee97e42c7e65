"""The speed probe: prefill and decode throughput, TTFT, TPOT and peak memory of one loaded causal LM.

Method (after optimum-benchmark's latency tracker and MLPerf LoadGen's "minimum count and minimum
duration" rule):

- inputs are random token ids from a seeded generator, shape (batch_size, prompt_tokens), attention mask
  all ones; generation is greedy and fixed-length (min_new_tokens = max_new_tokens, so EOS never ends a
  sequence early);
- a *prefill run* is `generate(max_new_tokens=1)`: its time is the time to first token (TTFT);
- a *full run* is `generate(max_new_tokens=new_tokens)`;
- after `warmup_runs` untimed rounds, rounds of (prefill run, full run) alternate until both `min_runs`
  rounds and `min_seconds` have passed; then, as MLPerf LoadGen's early stopping does, measuring goes on
  while any rule judged on this measurement is undecided (its figure's confidence interval straddles the
  bar), up to `max_runs` rounds or `max_seconds`. The stopping reason is recorded;
- decode time of round i = full_i - median(prefill). Alternating the two kinds of run keeps slow drift
  (clocks, thermals) common to both, and subtracting the median rather than the paired prefill_i keeps
  the prefill's own run-to-run noise out of every decode sample (var(a - b) = var(a) + var(b));
- prefill tokens/s = batch_size * prompt_tokens / prefill time; decode tokens/s = batch_size *
  (new_tokens - 1) / decode time (the first new token belongs to prefill); TPOT = decode time /
  (new_tokens - 1). Headline figures are medians of the per-round figures;
- timing: CUDA events around the call and a synchronize on the event on GPU, time.perf_counter on CPU
  (where every torch op has finished when it returns);
- verdicts are decided from confidence intervals (`intervals.py`), the error spent over the looks taken
  (looks come as the rounds grow by half): a figure far from its bar is decided however noisy the machine; a series whose coefficient of variation exceeds `max_cv` is *unstable* only
  when a rule asks for `max_cv` explicitly (off by default);
- an encoder-decoder model (`seq2seq`) is measured the same way through its decoder: the prompt is
  the encoder's input, a prefill run is the encoder's pass over it plus the decoder's first step
  (from `decoder_start_token_id`), so TTFT = encoder pass + first decoder token; decode time is the
  rest of the decoder's steps (each attending over the cached encoder states and its own KV cache),
  and TPOT = decode time / (new_tokens - 1) as for a decoder-only model. An image-text-to-text
  model is measured on text prompts only (input ids, no pixel_values). An encoder-only model has
  no generation to time: the rules skip with "encoder-only model";
- peak memory attributable to the model: CUDA max allocated; on CPU its weights' and buffers' bytes plus
  the rise of the process's resident set during the warm-up and measured runs (`memory.py`). The whole
  process's peak is kept apart as `process_peak_memory_bytes`.
"""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..backends import Backend
from ..errors import CheckError, CheckSkipped
from ..probe_registry import ProbeContext, probe
from .intervals import METHOD as INTERVAL_METHOD
from .intervals import Interval, look_level, quantile_interval
from .kinds import ENCODER, SEQ2SEQ, kind_name
from .load import loaded_backend
from .memory import PeakMemory, PeakMemoryTracker
from .stats import SampleStats
from .stopping import Rounds, run_until_decided
from .timing import Timed, cuda_available, device_environment, same_device, timer

SERIES = ("prefill", "decode")  # the two timed series a rule can be judged on

# What one prefill run (TTFT) covers, per model kind (`probes.kinds`).
PREFILL_METHODS: dict[str, str] = {
    "causal": "prefill_i = generate(max_new_tokens=1): the prompt's forward pass and the first new token",
    SEQ2SEQ: "prefill_i = generate(max_new_tokens=1): the encoder's pass over the prompt and the decoder's "
    "first token (from decoder_start_token_id)",
}


def prefill_method(kind: str) -> str:
    """What a prefill run covers for a model of `kind`: the decoder-only text unless it is encoder-decoder."""
    text = PREFILL_METHODS.get(kind, PREFILL_METHODS["causal"])
    return text if kind in PREFILL_METHODS else f"{text} ({kind_name(kind)} model, text only)"


WORKLOAD_LIMITS = {"batch_size": 4096, "prompt_tokens": 1048576, "new_tokens": 65536}  # bounds, as the schema's


@dataclass(frozen=True)
class Workload:
    """What one round generates: `batch_size` sequences of `prompt_tokens` random ids, `new_tokens` more each.

    Raises:
        ValueError: a size that is not an integer >= 1 (a bool included), new_tokens < 2 (decode starts
            after the first new token), or a size over WORKLOAD_LIMITS.
    """

    batch_size: int
    prompt_tokens: int
    new_tokens: int

    def __post_init__(self) -> None:
        """Validate the sizes (see the class's Raises)."""
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"workload.{item.name} must be an integer >= 1, got {value!r}")
        if self.new_tokens < 2:
            raise ValueError("workload.new_tokens must be >= 2: decode starts after the first new token")
        for name, limit in WORKLOAD_LIMITS.items():
            if getattr(self, name) > limit:
                raise ValueError(f"workload.{name} must be <= {limit}")

    @property
    def prefill_tokens(self) -> int:
        """Tokens one prefill run reads: batch_size * prompt_tokens."""
        return self.batch_size * self.prompt_tokens

    @property
    def decode_tokens(self) -> int:
        """Tokens one full run decodes after the first: batch_size * (new_tokens - 1)."""
        return self.batch_size * (self.new_tokens - 1)


@dataclass(frozen=True)
class MeasurementPolicy:
    """How long to measure and how sure to be (a rule's `measurement:`; the stopping rule's limits).

    Raises:
        ValueError: warmup_runs < 0, min_runs < 2, max_runs < min_runs, seconds not finite or not
            0 <= min_seconds <= max_seconds with max_seconds > 0, max_cv < 0, or confidence outside [0.5, 1).
    """

    warmup_runs: int = 2
    min_runs: int = 5
    min_seconds: float = 1.0
    max_runs: int = 1000
    max_seconds: float = 120.0
    confidence: float = 0.95  # level of the intervals verdicts are decided from
    max_cv: float | None = None  # an explicit stability requirement; off by default
    seed: int = 0  # of the random prompt ids

    def __post_init__(self) -> None:
        """Validate the limits (see the class's Raises)."""
        if self.warmup_runs < 0:
            raise ValueError("measurement.warmup_runs must be >= 0")
        if self.min_runs < 2:
            raise ValueError("measurement.min_runs must be >= 2: one run says nothing about variation")
        if self.max_runs < self.min_runs:
            raise ValueError(f"measurement.max_runs ({self.max_runs}) must be >= min_runs ({self.min_runs}); the default max_runs is 1000")
        seconds_ok = all(math.isfinite(value) for value in (self.min_seconds, self.max_seconds))
        if not seconds_ok or self.min_seconds < 0 or self.max_seconds <= 0 or self.max_seconds < self.min_seconds:
            raise ValueError(f"measurement needs 0 <= min_seconds ({self.min_seconds:g}) <= max_seconds ({self.max_seconds:g}); the default max_seconds is 120")
        if self.max_cv is not None and self.max_cv < 0:
            raise ValueError("measurement.max_cv must be >= 0")
        if not 0.5 <= self.confidence < 1.0:  # NaN fails this too
            raise ValueError("measurement.confidence must be in [0.5, 1)")


_FLOAT_FIELDS = ("min_seconds", "max_seconds", "confidence", "max_cv")
_POLICY_TYPES: dict[str, type] = {item.name: (float if item.name in _FLOAT_FIELDS else int) for item in fields(MeasurementPolicy)}
_DEFAULT_POLICY = MeasurementPolicy()


def speed_params(rule_params: dict[str, Any]) -> dict[str, Any]:
    """The speed probe's parameters from a rule's: rules with equal results share one measurement.

    Only what changes the measurement is kept (not `percentile` or peak overrides), policy values equal
    to the defaults are dropped and numbers are cast to their field's type, so `min_seconds: 1` and no
    `measurement` at all give the same key.

    Args:
        rule_params: a performance rule's params (workload, measurement, device, dtype, ...).

    Returns:
        {"workload": {...}, "measurement": {changed policy fields}?, "device"?, "dtype"?}, JSON-ready.

    Raises:
        ValueError: no workload mapping, unknown measurement keys, or sizes / limits Workload or
            MeasurementPolicy reject.
    """
    workload = rule_params.get("workload")
    if not isinstance(workload, dict):
        raise ValueError("a performance rule needs workload: {batch_size, prompt_tokens, new_tokens}")
    sizes: dict[str, Any] = {key: workload.get(key) for key in ("batch_size", "prompt_tokens", "new_tokens")}
    parsed = Workload(**sizes)
    params: dict[str, Any] = {"workload": asdict(parsed)}
    overrides = rule_params.get("measurement") or {}
    unknown = sorted(set(overrides) - set(_POLICY_TYPES))
    if unknown:
        raise ValueError(f"unknown measurement keys: {', '.join(unknown)}")
    policy: dict[str, Any] = {key: None if value is None else _POLICY_TYPES[key](value) for key, value in overrides.items()}
    MeasurementPolicy(**policy)  # validate now, not in the middle of a run
    changed = {key: value for key, value in policy.items() if value != getattr(_DEFAULT_POLICY, key)}
    if changed:
        params["measurement"] = dict(sorted(changed.items()))
    for key in ("device", "dtype"):
        if rule_params.get(key):
            params[key] = str(rule_params[key])
    return params


def parse_speed_params(params: dict[str, Any]) -> tuple[Workload, MeasurementPolicy]:
    """The workload and policy of `speed_params`'s output (ValueError as those classes raise)."""
    return Workload(**params["workload"]), MeasurementPolicy(**params.get("measurement", {}))


# Figures a rule can be judged on, with the series they come from and whether higher is better.
FIGURES: dict[str, tuple[str, bool]] = {
    "prefill_tokens_per_second": ("prefill", True),
    "decode_tokens_per_second": ("decode", True),
    "ttft_ms": ("prefill", False),
    "tpot_ms": ("decode", False),
}
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


@dataclass(frozen=True)
class SpeedEvidence:
    """One speed measurement: raw per-round samples (ms), headline medians, spread, memory and how it stopped.

    Rates are tokens per second, times milliseconds, memory bytes. Views read `to_dict()`; rules read
    `interval()` and `instability()`.
    """

    workload: Workload
    policy: MeasurementPolicy
    runs: int
    prefill_ms: tuple[float, ...]  # raw samples: one prefill run (TTFT) per round
    full_ms: tuple[float, ...]  # raw samples: one full generation per round
    decode_ms: tuple[float, ...]  # full_ms[i] - median(prefill_ms); may be <= 0 on a noisy machine
    ttft_ms: SampleStats
    tpot_ms: SampleStats
    prefill_tokens_per_second: float
    decode_tokens_per_second: float | None  # None when the median decode time was not positive
    prefill_tokens_per_second_stats: SampleStats
    decode_tokens_per_second_stats: SampleStats | None
    series_cv: dict[str, float]
    unstable: dict[str, str]  # series -> why max_cv is exceeded; empty when no max_cv is asked for or it holds
    peak_memory_bytes: int | None  # attributable to the model and the measured work (see peak_memory_method)
    peak_memory_method: str
    wall_seconds: float  # from the first to the end of the last measured round, harness included
    timed_seconds: float  # sum of the timed regions; wall - timed is the harness's own overhead
    environment: dict[str, Any]
    timing_method: str
    decode_method: str = "decode_i = full_i - median(prefill); prefill and full runs alternate"
    prefill_method: str = PREFILL_METHODS["causal"]  # what a prefill run (TTFT) covers (kinds differ)
    process_peak_memory_bytes: int | None = None  # the whole process (CPU: peak resident set; CUDA: max reserved)
    stopping_reason: str = "no bar to decide"  # one of stopping.STOPPING_REASONS
    decided: bool | None = None  # every rule judged on it decided (None: no rule was asked)
    looks: int = 0  # times the stopping rule looked at the rounds so far (0: no rule was asked)

    @property
    def decision_level(self) -> float:
        """The level verdicts are decided at: the policy's confidence spent over the looks taken."""
        return look_level(self.policy.confidence, self.looks) if self.looks else self.policy.confidence

    @property
    def stable(self) -> bool:
        """False when a rule's explicit max_cv is exceeded by either series."""
        return not self.unstable

    @property
    def unstable_reason(self) -> str | None:
        """Why the series are unstable, joined with "; ", or None when stable."""
        return "; ".join(self.unstable.values()) or None

    def instability(self, series: str) -> str | None:
        """Why the given series (prefill or decode) fails the rule's explicit max_cv, or None."""
        return self.unstable.get(series)

    def figure_samples(self, figure: str) -> list[float]:
        """Per-run values of a figure (FIGURES); a rate whose decode time was not positive is +inf."""
        workload = self.workload
        if figure == "prefill_tokens_per_second":
            return [workload.prefill_tokens / (ms / 1000.0) if ms > 0 else math.inf for ms in self.prefill_ms]
        if figure == "decode_tokens_per_second":
            return [workload.decode_tokens / (ms / 1000.0) if ms > 0 else math.inf for ms in self.decode_ms]
        if figure == "ttft_ms":
            return list(self.prefill_ms)
        if figure == "tpot_ms":
            return [ms / (workload.new_tokens - 1) for ms in self.decode_ms]
        raise ValueError(f"unknown speed figure {figure!r} ({', '.join(FIGURES)})")

    def interval(self, figure: str, quantile: float = 0.5, level: float | None = None) -> Interval:
        """Confidence interval of a figure's quantile at `level` (default: `decision_level`)."""
        return quantile_interval(self.figure_samples(figure), quantile, level or self.decision_level)

    def intervals(self) -> dict[str, Interval]:
        """The headline (median) figures' intervals at the decision level, as views show them."""
        return {figure: self.interval(figure) for figure in FIGURES}

    def to_dict(self) -> dict[str, Any]:
        """The result document's form: rounded figures, intervals, samples and environment (JSON-ready)."""

        def stats(value: SampleStats | None) -> dict[str, Any] | None:
            return value.to_dict() if value is not None else None

        return {
            "workload": asdict(self.workload),
            "policy": asdict(self.policy),
            "runs": self.runs,
            "stopping_reason": self.stopping_reason,
            "decided": self.decided,
            "confidence": self.policy.confidence,
            "looks": self.looks,
            "decision_level": round(self.decision_level, 8),
            "intervals": {figure: interval.to_dict() for figure, interval in self.intervals().items()},
            "interval_method": INTERVAL_METHOD,
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
            "process_peak_memory_bytes": self.process_peak_memory_bytes,
            "peak_memory_method": self.peak_memory_method,
            "wall_seconds": round(self.wall_seconds, 6),
            "timed_seconds": round(self.timed_seconds, 6),
            "timing_method": self.timing_method,
            "decode_method": self.decode_method,
            "prefill_method": self.prefill_method,
            "samples": {
                "prefill_ms": [round(value, 4) for value in self.prefill_ms],
                "full_ms": [round(value, 4) for value in self.full_ms],
            },
            "environment": dict(self.environment),
        }


# --- the probe ----------------------------------------------------------------------------------


def check_applicable(backend: Backend, params: dict[str, Any]) -> None:
    """Raise CheckSkipped when the rule cannot be measured on this model, device or dtype."""
    if backend.kind == ENCODER:
        raise CheckSkipped("encoder-only model: generation speed does not apply")
    wanted = params.get("device")
    if wanted:
        on_cuda = backend.device.startswith("cuda")
        if wanted.startswith("cuda") and not on_cuda:
            if not cuda_available():
                raise CheckSkipped(f"rule measures on {wanted}; no CUDA device here (model loaded on {backend.device})")
            raise CheckSkipped(f"rule measures on {wanted}; model loaded on {backend.device} (pass --device {wanted})")
        if wanted == "cpu" and on_cuda:
            raise CheckSkipped(f"rule measures on cpu; model loaded on {backend.device} (pass --device cpu)")
        if ":" in wanted and on_cuda and not same_device(wanted, backend.device):
            raise CheckSkipped(f"rule measures on {wanted}; model loaded on {backend.device} (pass --device {wanted})")
    dtype = params.get("dtype")
    if dtype and dtype != backend.dtype:
        raise CheckSkipped(f"rule measures in {dtype}; model loaded in {backend.dtype} (pass --dtype {dtype})")


def _check_context(backend: Backend, workload: Workload) -> None:
    """CheckError when prompt and new tokens do not fit the model's context.

    Past it, position embeddings would index out of range, or a huge prompt would exhaust memory before failing.
    """
    context = backend.context_length()
    needed = workload.prompt_tokens + workload.new_tokens
    if context is not None and needed > context:
        raise CheckError(f"workload needs {needed} positions (prompt_tokens {workload.prompt_tokens} + new_tokens {workload.new_tokens}); the model's context length is {context}")


Decided = Callable[[SpeedEvidence], bool]  # would every rule judged on this evidence be decided?


def _generate_round(backend: Backend, workload: Workload, policy: MeasurementPolicy, timed: Timed) -> Callable[[], tuple[float, float]]:
    """Warm up, then return the timed round: one prefill run (TTFT), one full generation."""
    input_ids = backend.random_tokens(workload.batch_size, workload.prompt_tokens, policy.seed)

    def prefill() -> Any:
        return backend.prefill(input_ids)

    def full() -> Any:
        return backend.generate(input_ids, workload.new_tokens, min_new_tokens=workload.new_tokens)

    def one_round() -> tuple[float, float]:
        prefill_seconds, _ = timed(prefill)
        full_seconds, output = timed(full)
        if output.shape[-1] != workload.new_tokens:
            raise CheckError(f"generation returned {output.shape[-1]} new tokens, not {workload.new_tokens}")
        return prefill_seconds, full_seconds

    for _ in range(policy.warmup_runs):
        prefill()
        full()
    gc.collect()  # don't let garbage from loading and warm-up be collected inside a timed region
    return one_round


def summarize_rounds(workload: Workload, policy: MeasurementPolicy, rounds: Rounds) -> dict[str, Any]:
    """Figures of the rounds so far: medians, percentiles, CVs and, when max_cv is asked for, instability."""
    prefill_s, full_s = rounds.prefill_seconds, rounds.full_seconds
    median_prefill_s = statistics.median(prefill_s)
    decode_s = [full - median_prefill_s for full in full_s]
    prefill_rates = [workload.prefill_tokens / seconds if seconds > 0 else math.inf for seconds in prefill_s]
    decode_rates = [workload.decode_tokens / seconds if seconds > 0 else math.inf for seconds in decode_s]
    series_cv = {"prefill": SampleStats.of(prefill_s).cv, "decode": SampleStats.of(decode_s).cv}
    unstable: dict[str, str] = {}
    if policy.max_cv is not None:
        for series, cv in series_cv.items():
            if cv > policy.max_cv:
                unstable[series] = f"{series} time varies too much: cv {cv:.3f} > max_cv {policy.max_cv:g} over {len(full_s)} runs"
    median_decode_rate = statistics.median(decode_rates)  # +inf when most decode times were not positive
    finite_decode_rates = [rate for rate in decode_rates if math.isfinite(rate)]
    return {
        "runs": len(full_s),
        "prefill_ms": tuple(seconds * 1000 for seconds in prefill_s),
        "full_ms": tuple(seconds * 1000 for seconds in full_s),
        "decode_ms": tuple(seconds * 1000 for seconds in decode_s),
        "ttft_ms": SampleStats.of([seconds * 1000 for seconds in prefill_s]),
        "tpot_ms": SampleStats.of([seconds * 1000 / (workload.new_tokens - 1) for seconds in decode_s]),
        "prefill_tokens_per_second": statistics.median(prefill_rates),
        "decode_tokens_per_second": median_decode_rate if math.isfinite(median_decode_rate) else None,
        "prefill_tokens_per_second_stats": SampleStats.of([rate for rate in prefill_rates if math.isfinite(rate)] or [0.0]),
        "decode_tokens_per_second_stats": SampleStats.of(finite_decode_rates) if finite_decode_rates else None,
        "series_cv": series_cv,
        "unstable": unstable,
        "wall_seconds": rounds.wall_seconds,
        "timed_seconds": sum(prefill_s) + sum(full_s),
        "stopping_reason": rounds.stopping_reason,
        "decided": rounds.decided,
        "looks": rounds.looks,
    }


def build_evidence(
    workload: Workload,
    policy: MeasurementPolicy,
    rounds: Rounds,
    environment: dict[str, Any],
    timing_method: str,
    peak: PeakMemory | None = None,
    kind: str = "causal",
) -> SpeedEvidence:
    """SpeedEvidence of timed rounds; `peak` is None while measuring (memory is read at the end).

    `kind` (`probes.kinds`) names what a prefill run covered (`PREFILL_METHODS`).
    """
    return SpeedEvidence(
        workload=workload,
        policy=policy,
        peak_memory_bytes=peak.model_bytes if peak else None,
        process_peak_memory_bytes=peak.process_bytes if peak else None,
        peak_memory_method=peak.method if peak else "not read yet",
        environment=environment,
        timing_method=timing_method,
        prefill_method=prefill_method(kind),
        **summarize_rounds(workload, policy, rounds),
    )


def measure_speed(backend: Backend, params: dict[str, Any], decided: Decided | None = None) -> SpeedEvidence:
    """Time prefill and full generation on the loaded backend (already on its device) per `params`.

    `params` is `speed_params(rule.params)`. `decided(evidence_so_far)` says whether every rule judged on
    this measurement can be decided yet; measuring goes on while it is false (up to max_runs /
    max_seconds). Raises CheckSkipped when the rule does not apply here (encoder, other device or dtype)
    and CheckError for out-of-memory or a generation that stops early.
    """
    check_applicable(backend, params)
    workload, policy = parse_speed_params(params)
    timed, timing_method = timer(backend.device)
    environment = device_environment(backend.device, backend.dtype)
    _check_context(backend, workload)
    memory = PeakMemoryTracker(backend.device, backend.weights_bytes())

    def evidence_of(rounds: Rounds, peak: PeakMemory | None = None) -> SpeedEvidence:
        return build_evidence(workload, policy, rounds, environment, timing_method, peak, backend.kind)

    try:
        # The backend's own generate call, as users make it (transformers: under no_grad, not
        # inference_mode, which makes small CPU models ~20% faster than the plain call).
        memory.start()  # before the warm-up: its KV cache and activations are the work's memory too
        one_round = _generate_round(backend, workload, policy, timed)
        rounds = run_until_decided(one_round, policy, evidence_of, decided)
        peak = memory.read()
    except CheckError:
        raise
    except Exception as exc:
        if not backend.is_out_of_memory(exc):
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        del exc  # drop the traceback's references to the failed run's tensors before emptying the cache
        backend.free_cached_memory()
        raise CheckError(f"out of memory during measurement (batch {workload.batch_size}, prompt {workload.prompt_tokens}, new {workload.new_tokens}): {message}") from None
    return evidence_of(rounds, peak)


@probe("speed", evidence=SpeedEvidence, depends=("load",), cacheable=True, parameterized=True, until_decided=True)
def speed_probe(context: ProbeContext) -> SpeedEvidence:
    """Prefill and decode timings of the rule's workload, measured until its rules are decided."""
    return measure_speed(loaded_backend(context.evidence), context.params, context.decided)
