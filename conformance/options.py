"""The run options' vocabularies, in one place: the dtypes a model may be loaded in and the device names.

The CLI's `--dtype`/`--device`, the pytest plugin's `--conformance-device`, the load and speed probes and
the performance rules' `dtype`/`device` parameters (and so the spec schema) all take them from here.
"""

from __future__ import annotations

import re

# The dtypes a model can be loaded and timed in (torch names).
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
# What `--dtype` accepts: "auto" keeps the checkpoint's own dtype.
LOAD_DTYPES: tuple[str, ...] = ("auto", *DTYPES)

# A concrete device: the CPU, the current CUDA device, or CUDA device N.
DEVICE_PATTERN = r"cpu|cuda(:[0-9]+)?"
# The same, anchored, as a performance rule's `device` parameter states it in the spec schema.
DEVICE_SCHEMA_PATTERN = f"^({DEVICE_PATTERN})$"
# What `--device` accepts: "auto" is cuda when present, else cpu.
_DEVICE_CHOICE = re.compile(f"auto|{DEVICE_PATTERN}")


def is_device_choice(text: str) -> bool:
    """True for auto, cpu, cuda or cuda:N (what `--device` and `--conformance-device` accept)."""
    return _DEVICE_CHOICE.fullmatch(text) is not None
