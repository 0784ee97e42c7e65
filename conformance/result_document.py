"""The one reader of result documents: typed identity, rules and summary, and the figures views show.

Every view (terminal table, Markdown, leaderboard table, plots, page, CSV, diff, the pytest plugin's
summary) reads a document through `ResultDocument`, so the document's layout is learnt in one place:

- `spec`, `model`, `summary`, `rules`: `results.SpecIdentity`, `ModelIdentity`, `Summary`, `RuleResult`;
- evidence, as the probes write it: ``evidence["static"]`` (parameters, dtypes, architecture, weight
  bytes), ``evidence["card"]["metadata"]["license"]``, ``evidence["tasks"]["scores"][task][metric]`` and
  ``evidence["speed[...]"]`` (one per workload). A probe that failed or was skipped is stored as
  ``{"error": ...}`` or ``{"skipped": ...}`` and reads as absent.

The reader never changes the document: `data` is the plain dict as written (or as handed in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .results import ModelIdentity, RuleResult, SpecIdentity, Summary, load_result, validate_document

SPEED_FIGURES: tuple[str, ...] = (
    "decode_tokens_per_second", "prefill_tokens_per_second", "ttft_ms_p50", "tpot_ms_p50", "peak_memory_bytes", "process_peak_memory_bytes",
)
# Timed figures: blank when the measurement left a rule undecided (memory is not a timing).
TIMED_FIGURES: tuple[str, ...] = ("decode_tokens_per_second", "prefill_tokens_per_second", "ttft_ms_p50", "tpot_ms_p50")
# Columns holding a timed figure's confidence interval: figure -> (low column, high column).
INTERVAL_COLUMNS: dict[str, tuple[str, str]] = {
    "decode_tokens_per_second": ("decode_tokens_per_second_low", "decode_tokens_per_second_high"),
}
SPEED_DECIDED = "speed_decided"  # False when the measurement ended with a rule undecided
SPEED_DEVICE = "speed_device"


@dataclass(frozen=True)
class StaticFacts:
    """Identity figures from the static and card probes; None where the probe did not record them."""

    parameters: int | None  # floating-point parameters, tied weights once
    dtype: str | None  # stored dtypes, most parameters first (`BF16+F32`)
    architecture: str | None  # config.json model_type
    license: str | None  # the model card's license
    weight_bytes: int | None  # bytes of the weight files' tensors


def finite_number(value: Any) -> float | None:
    """A finite int or float as float; None for anything else (bools, strings such as "NaN", None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _interval_end(value: Any) -> float | None:
    """An interval end as stored: a number, or "inf" / "-inf" for an open side."""
    if isinstance(value, str) and value in ("inf", "-inf"):
        return float(value)
    return finite_number(value)


def _main_dtype(weight_dtypes: Any) -> str | None:
    """The dtype holding most parameters; several dtypes are listed in that order (`BF16+F32`)."""
    if not isinstance(weight_dtypes, dict) or not weight_dtypes:
        return None
    ordered = sorted(weight_dtypes, key=lambda dtype: (-(weight_dtypes[dtype] or 0), dtype))
    return "+".join(ordered)


def _positive_int(value: Any) -> int | None:
    number = finite_number(value)
    return int(value) if number is not None and number > 0 else None


class ResultDocument:
    """A result document read through typed accessors.

    Wrap plain data with `ResultDocument(data)` (no validation: a view may show a hand-made document) or
    read a file with `ResultDocument.load(path)` (validated against result.schema.json). Accessors raise
    KeyError when a required block is missing; `problems()` says what breaks the schema.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        """Wrap `data`, the document as JSON reads it (TypeError for anything but a mapping)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a result document is a JSON object, not {type(data).__name__} (ResultDocument.of takes either)")
        self.data: Mapping[str, Any] = data

    @classmethod
    def of(cls, document: ResultDocument | Mapping[str, Any]) -> ResultDocument:
        """The reader of `document`: itself when already one, else a wrapper of the plain dict."""
        return document if isinstance(document, ResultDocument) else cls(document)

    @classmethod
    def load(cls, path: Path) -> ResultDocument:
        """Read and validate a result file through `results.load_result` (bounded: regular files only, 64 MiB, 108 levels).

        Raises `SpecError`, a `RequestError`, when it is missing, not a regular file, too large, nested too
        deep, not JSON or invalid.
        """
        return cls(load_result(Path(path)))

    def problems(self) -> list[str]:
        """Where the document breaks result.schema.json (empty when valid)."""
        return validate_document(dict(self.data))

    def __repr__(self) -> str:
        """`ResultDocument('tiny-llama' against 'release')`, without reading more than two names."""
        model, spec = self.data.get("model"), self.data.get("spec")
        name = model.get("name") if isinstance(model, Mapping) else None
        spec_id = spec.get("id") if isinstance(spec, Mapping) else None
        return f"ResultDocument({name!r} against {spec_id!r})"

    # --- identity, rules and summary --------------------------------------------------------------

    @cached_property
    def spec(self) -> SpecIdentity:
        """Which spec judged the model."""
        return SpecIdentity.from_dict(self.data["spec"])

    @cached_property
    def model(self) -> ModelIdentity:
        """Which model was judged: name, folder, weights' sha256."""
        return ModelIdentity.from_dict(self.data["model"])

    @cached_property
    def summary(self) -> Summary:
        """The counts and verdict as the document records them (not recounted)."""
        return Summary.from_dict(self.data["summary"])

    @cached_property
    def rules(self) -> list[RuleResult]:
        """The rules in the document's order (the order its spec lists them)."""
        return [RuleResult.from_dict(rule) for rule in self.data["rules"]]

    @property
    def conformant(self) -> bool:
        """The document's verdict: no must rule failed or errored."""
        return self.summary.conformant

    @property
    def environment(self) -> Mapping[str, Any]:
        """Versions and platform the run recorded (empty when absent)."""
        return self.data.get("environment") or {}

    @property
    def evidence(self) -> Mapping[str, Any]:
        """Probe evidence key -> what it recorded (empty when absent); read it through the methods below."""
        return self.data.get("evidence") or {}

    # --- evidence --------------------------------------------------------------------------------

    def probe(self, key: str) -> Mapping[str, Any]:
        """What one probe recorded; empty when it did not run, failed or was skipped."""
        value = self.evidence.get(key)
        if not isinstance(value, dict) or "error" in value or "skipped" in value:
            return {}
        return value

    def task_scores(self) -> dict[str, dict[str, float]]:
        """Task -> metric -> finite score, from the tasks probe (empty when it did not run)."""
        scores = self.probe("tasks").get("scores")
        if not isinstance(scores, dict):
            return {}
        plain: dict[str, dict[str, float]] = {}
        for task, metrics in scores.items():
            if isinstance(metrics, dict):
                numbers = {metric: finite_number(value) for metric, value in metrics.items()}
                plain[task] = {metric: value for metric, value in numbers.items() if value is not None}
        return {task: metrics for task, metrics in plain.items() if metrics}

    def speed_keys(self) -> list[str]:
        """Evidence keys of speed measurements that produced a decode figure, in sorted order."""
        return sorted(
            key for key in self.evidence
            if key.startswith("speed") and finite_number(self.probe(key).get("decode_tokens_per_second")) is not None
        )

    def workload_text(self, key: str | None) -> str | None:
        """A speed key's workload in words: `batch 1, 32 prompt tokens, 16 new tokens (cpu, float32)`.

        A long key is only a digest, so readers need this. None when this document did not record it.
        """
        speed = self.probe(key) if key else {}
        workload = speed.get("workload")
        if not isinstance(workload, dict):
            return None
        environment = speed.get("environment") or {}
        where = ", ".join(str(environment[name]) for name in ("device", "dtype") if environment.get(name))
        return (f"batch {workload.get('batch_size')}, {workload.get('prompt_tokens')} prompt tokens, "
                f"{workload.get('new_tokens')} new tokens" + (f" ({where})" if where else ""))

    def speed_figures(self, key: str | None) -> dict[str, float | str | bool | None]:
        """The speed figures of one workload (`key`; None: no speed figures).

        Decode and prefill tokens/s, median TTFT and TPOT in ms, peak memory of the model and of the process
        (bytes), the decode interval's ends and the device, keyed as `SPEED_FIGURES`, `INTERVAL_COLUMNS`,
        `SPEED_DECIDED` and `SPEED_DEVICE` name them.

        Only what was decided is shown: when the measurement ended with a rule undecided (`decided: false`),
        the timed figures are None and `speed_decided` is False, so no view ranks or plots them.
        """
        speed = self.probe(key) if key else {}
        decided = speed.get("decided") is not False
        figures: dict[str, float | str | bool | None] = {
            "decode_tokens_per_second": finite_number(speed.get("decode_tokens_per_second")),
            "prefill_tokens_per_second": finite_number(speed.get("prefill_tokens_per_second")),
            "ttft_ms_p50": finite_number((speed.get("ttft_ms") or {}).get("p50")),
            "tpot_ms_p50": finite_number((speed.get("tpot_ms") or {}).get("p50")),
            "peak_memory_bytes": finite_number(speed.get("peak_memory_bytes")),
            "process_peak_memory_bytes": finite_number(speed.get("process_peak_memory_bytes")),
        }
        interval = ((speed.get("intervals") or {}).get("decode_tokens_per_second") or {}) if decided else {}
        low_column, high_column = INTERVAL_COLUMNS["decode_tokens_per_second"]
        figures[low_column], figures[high_column] = _interval_end(interval.get("low")), _interval_end(interval.get("high"))
        if not decided:
            figures.update(dict.fromkeys(TIMED_FIGURES))
        figures[SPEED_DECIDED] = decided if speed else None
        figures[SPEED_DEVICE] = (speed.get("environment") or {}).get("device") if speed else None
        return figures

    def static_facts(self) -> StaticFacts:
        """Parameters, main dtype, architecture, license and weight bytes from the static and card probes."""
        static = self.probe("static")
        architecture = (static.get("architecture") or {}).get("model_type")
        license_name = (self.probe("card").get("metadata") or {}).get("license")
        return StaticFacts(
            parameters=_positive_int((static.get("parameters") or {}).get("parameters")),
            dtype=_main_dtype(static.get("weight_dtypes")),
            architecture=architecture if isinstance(architecture, str) else None,
            license=license_name if isinstance(license_name, str) else None,
            weight_bytes=_positive_int(static.get("weight_bytes")),
        )
