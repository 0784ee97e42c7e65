"""Evidence gathered by probes for one model, handed to checks."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from typing import Any, TypeVar, overload

from .digests import sha256_text
from .errors import CheckError, CheckSkipped

T = TypeVar("T")


def evidence_key(probe: str, params: dict[str, Any] | None = None) -> str:
    """Evidence key of a probe run with parameters: `speed[batch_size=1,new_tokens=64,...]`."""
    if not params:
        return probe
    inner = ",".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted(params.items()))
    if len(inner) > 120:  # long parameters (a prompt list) become a digest, so keys stay readable
        inner = "sha256=" + sha256_text(inner)[:16]
    return f"{probe}[{inner}]"


def to_plain(value: Any) -> Any:
    """Turn evidence (dataclasses, tuples, paths) into JSON-ready data."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return to_plain(asdict(value))
    if isinstance(value, dict):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_plain(item) for item in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Evidence:
    """Probe name -> what it measured, or why it could not measure."""

    def __init__(self) -> None:
        """Empty: no probe has run."""
        self._values: dict[str, Any] = {}
        self._failures: dict[str, str] = {}
        self._skips: dict[str, str] = {}
        # For a view handed to one rule's check: probe name -> the evidence key of that rule's run of it.
        self.rule_keys: dict[str, str] = {}

    def put(self, probe: str, value: Any) -> None:
        """Store what the probe measured under `probe` (a probe name or a parameterized key), replacing any value."""
        self._values[probe] = value

    def fail(self, probe: str, reason: str) -> None:
        """The probe failed: `get` raises CheckError with the reason, so its rules error."""
        self._failures[probe] = reason

    def skip(self, probe: str, reason: str) -> None:
        """The probe does not apply here (no GPU for a cuda rule): its rules are skipped with the reason."""
        self._skips[probe] = reason

    def release(self, probe: str) -> None:
        """Replace a heavy value (a loaded model) by its plain summary, freeing the object.

        A value with a `release()` method (a live backend) is asked to free its memory once its summary is
        taken, so memory returns between models when this is called, not whenever the object is collected.
        """
        if probe in self._values:
            value = self._values[probe]
            plain = to_plain(value)
            if callable(getattr(value, "release", None)):
                value.release()
            self._values[probe] = plain

    def overlay(self, probe: str, value: Any) -> Evidence:
        """A copy holding `value` under `probe` (and no failure or skip for it): to ask checks "what if"."""
        copy = Evidence()
        copy._values = {**self._values, probe: value}
        copy._failures = {k: v for k, v in self._failures.items() if k != probe}
        copy._skips = {k: v for k, v in self._skips.items() if k != probe}
        copy.rule_keys = dict(self.rule_keys)
        return copy

    def for_rule(self, rule_keys: dict[str, str]) -> Evidence:
        """A view sharing this evidence that also knows each probe's key for one rule (`planning.rule_evidence`).

        The runner hands checks such a view, so a check finds its parameterized evidence without re-planning
        (planning may read the spec's inputs, a baseline file; judging reads nothing).
        """
        view = Evidence()
        view._values, view._failures, view._skips = self._values, self._failures, self._skips
        view.rule_keys = dict(rule_keys)
        return view

    def peek(self, probe: str) -> Any:
        """The stored value, or None: no skip or failure is raised."""
        return self._values.get(probe)

    def forget(self, probe: str) -> None:
        """Drop the stored value (not a failure or skip), so the probe runs again; no error when absent."""
        self._values.pop(probe, None)

    def has(self, probe: str) -> bool:
        """Whether the probe has an outcome here: a value, a failure or a skip."""
        return probe in self._values or probe in self._failures or probe in self._skips

    @overload
    def get(self, probe: str) -> Any: ...
    @overload
    def get(self, probe: str, expected: type[T]) -> T: ...
    @overload
    def get(self, probe: str, expected: type | tuple[type, ...] | None) -> Any: ...

    def get(self, probe: str, expected: type | tuple[type, ...] | None = None) -> Any:
        """The evidence under `probe` (a probe name or a parameterized key), of the `expected` type if given.

        Raises CheckSkipped when the probe did not apply here, CheckError when it failed, did not run, or
        holds a value of another type than `expected` (a class or a tuple of classes).
        """
        if probe in self._skips:
            raise CheckSkipped(self._skips[probe])
        if probe in self._failures:
            raise CheckError(f"{probe} probe failed: {self._failures[probe]}")
        if probe not in self._values:
            raise CheckError(f"{probe} probe did not run")
        value = self._values[probe]
        if expected is not None and not isinstance(value, expected):
            names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise CheckError(f"{probe} evidence is a {type(value).__name__}, not a {names}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """The result document's `evidence` block: key -> plain value, `{"error": reason}` or `{"skipped": reason}`."""
        plain: dict[str, Any] = {name: to_plain(value) for name, value in self._values.items()}
        for name, reason in self._failures.items():
            plain[name] = {"error": reason}
        for name, reason in self._skips.items():
            plain[name] = {"skipped": reason}
        return plain
