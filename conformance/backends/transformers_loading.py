"""What transformers says about a load: its missing, unexpected and mismatched keys as a `LoadReport`.

`from_pretrained(..., output_loading_info=True)` returns transformers' own accounting after it has
discounted tied weights and the keys a model class declares ignorable (`_keys_to_ignore_on_load_*`);
non-persistent buffers (rotary `inv_freq`, BERT's `position_ids`) are not in the state dict, so never
keys. A missing key is a tensor transformers initialized at random. Here those keys become plain data
and `uncovered_parameters`, the elements of the missing or mismatched *parameters*. Not counted, and
listed apart: a missing persistent buffer (computed at construction, not learnt) and an encoder's pooler
(the runtime probes read the last hidden state, which the pooler does not touch: `roberta-base` and every
MLM checkpoint loaded as the bare encoder lack it).

torch and transformers are imported by the caller (`transformers.py`); this module only reads the model
it is given, so it works on a model laid out on the meta device as well as on a loaded one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from .base import MAX_LISTED_KEYS, LoadReport, LoadRequest

GGUF_UNSUPPORTED_MARKERS = ("is not supported", "Unknown gguf model_type", "not implemented", "NotImplemented")


def _listed(names: Iterable[str]) -> tuple[list[str], int]:
    """(the first MAX_LISTED_KEYS names, sorted; how many there are)."""
    ordered = sorted(names)
    return ordered[:MAX_LISTED_KEYS], len(ordered)


def _shape(value: Any) -> str:
    try:
        return "(" + ", ".join(str(int(size)) for size in value) + ")"
    except (TypeError, ValueError):
        return str(value)[:80]


def _in_pooler(name: str) -> bool:
    """Whether a parameter name lies in a module named `pooler` (BERT-family encoders' pooled-output head)."""
    return "pooler" in name.split(".")[:-1]


def load_report(model: Any, info: dict[str, Any], request: LoadRequest, *, built: bool) -> LoadReport:
    """transformers' loading info for `model` (loaded, or laid out on the meta device) as a `LoadReport`.

    Args:
        model: the model `from_pretrained` returned with `info`.
        info: its `output_loading_info` dict (`missing_keys`, `unexpected_keys`, `mismatched_keys`
            as (name, checkpoint shape, model shape) tuples).
        request: the load request (a GGUF load is recorded as dequantized from its file).
        built: False when the model was only laid out on the meta device.

    Returns:
        The report; `uncovered_parameters` counts elements of parameters (tied tensors once, as
        `named_parameters` yields them) named missing or mismatched.
    """
    missing = {str(name) for name in info.get("missing_keys") or ()}
    unexpected = {str(name) for name in info.get("unexpected_keys") or ()}
    mismatched_rows: dict[str, str] = {}
    for row in info.get("mismatched_keys") or ():
        row = tuple(row) if isinstance(row, (tuple, list)) else (row,)
        name = str(row[0])
        shapes = f": {_shape(row[1])} -> {_shape(row[2])}" if len(row) >= 3 else ""
        mismatched_rows[name] = f"{name}{shapes}"
    parameters = dict(model.named_parameters())
    counted = {name for name in missing if name in parameters and not (request.kind == "encoder" and _in_pooler(name))}
    uncovered = sum(int(parameters[name].numel()) for name in counted | (set(mismatched_rows) & set(parameters)))
    missing_listed, missing_count = _listed(counted)
    uncounted_listed, uncounted_count = _listed(missing - counted)
    unexpected_listed, unexpected_count = _listed(unexpected)
    mismatched_listed = [mismatched_rows[name] for name in sorted(mismatched_rows)[:MAX_LISTED_KEYS]]
    gguf = request.weights_format == "gguf"
    return LoadReport(
        missing_keys=missing_listed,
        missing_count=missing_count,
        uncounted_keys=uncounted_listed,
        uncounted_count=uncounted_count,
        unexpected_keys=unexpected_listed,
        unexpected_count=unexpected_count,
        mismatched_keys=mismatched_listed,
        mismatched_count=len(mismatched_rows),
        uncovered_parameters=uncovered,
        built=built,
        dequantized_from="gguf" if gguf else None,
        source_file=request.weights_file if gguf else None,
        stored_dtypes=dict(request.stored_dtypes) if gguf else {},
    )


def not_runnable_reason(report: LoadReport, parameters: int) -> str | None:
    """Why the runtime probes must not run a model with this report (None when its weights cover it)."""
    if report.covered:
        return None
    keys = ", ".join(report.missing_keys[:3] or report.mismatched_keys[:3])
    more = report.missing_count + report.mismatched_count - min(3, len(report.missing_keys or report.mismatched_keys))
    listed = f"{keys}{f' and {more} more' if more > 0 else ''}"
    return (
        f"not run: the weights do not cover the model: {report.uncovered_parameters:,} of its {parameters:,} "
        f"parameters would be randomly initialized ({report.missing_count} missing, {report.mismatched_count} "
        f"mismatched keys: {listed})"
    )


def is_unsupported_gguf(exc: BaseException) -> bool:
    """Whether transformers refused a GGUF file as an architecture or quantization type it cannot load."""
    text = f"{type(exc).__name__}: {exc}"
    return isinstance(exc, NotImplementedError) or any(marker in text for marker in GGUF_UNSUPPORTED_MARKERS)


@contextlib.contextmanager
def quiet_load_report() -> Iterator[None]:
    """transformers' own load report table is not printed: the suite records the same keys as evidence."""
    from transformers.utils import logging as transformers_logging

    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(level)
