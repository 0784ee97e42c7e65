"""Peak memory of a measurement: what the model and its work take, apart from what the process took anyway.

- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` counts only tensors on the device
  (the model's weights, KV cache and activations); the process figure is `max_memory_reserved`, the
  caching allocator's whole reservation.
- CPU: the process's peak resident set during the measured runs (Linux `VmHWM`, reset through
  `/proc/self/clear_refs`) minus its resident set just before the model was loaded (`VmRSS`, recorded
  by the load probe). Python, torch and transformers are imported before that baseline, so they are not
  counted; the process figure is the peak resident set itself. The model's figure is never below the
  bytes of its own weights and buffers, which are resident while it runs: in a long-lived process the
  resident set before the load can hold garbage freed later, and the rise alone would then understate
  the model (a 0.1M-parameter model read 0 bytes in the test process). Without /proc (macOS) the peak is
  `ru_maxrss` since the process started, which can only overstate the model's share.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _status_bytes(field: str) -> int | None:
    """A `VmRSS:` / `VmHWM:` line of /proc/self/status in bytes, or None off Linux."""
    try:
        for line in _STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def resident_set_bytes() -> int | None:
    """The process's resident set size now, in bytes (Linux), else None."""
    return _status_bytes("VmRSS")


def _max_rss_bytes() -> int | None:
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        return None


@dataclass(frozen=True)
class PeakMemory:
    model_bytes: int | None  # attributable to the model and the measured work
    process_bytes: int | None  # the whole process
    method: str


class PeakMemoryTracker:
    """Reset the peak before the measured runs (`start`), read it after (`read`)."""

    def __init__(self, device: str, baseline_bytes: int | None, weights_bytes: int = 0) -> None:
        self.device = device
        self.baseline_bytes = baseline_bytes  # CPU: resident set before the model was loaded
        self.weights_bytes = weights_bytes  # the model's parameters and buffers: a floor of its CPU figure
        self._since_reset = False

    def start(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(torch.device(self.device))
            return
        try:
            _CLEAR_REFS.write_text("5", encoding="ascii")  # Linux: resets VmHWM to the current resident set
            self._since_reset = True
        except OSError:
            self._since_reset = False

    def read(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            where = torch.device(self.device)
            return PeakMemory(
                int(torch.cuda.max_memory_allocated(where)),
                int(torch.cuda.max_memory_reserved(where)),
                "model: torch.cuda.max_memory_allocated after reset_peak_memory_stats (tensors on this device); "
                "process: torch.cuda.max_memory_reserved",
            )
        peak = _status_bytes("VmHWM") if self._since_reset else None
        method = "VmHWM after a /proc/self/clear_refs reset"
        if peak is None:
            peak, method = _max_rss_bytes(), "ru_maxrss since the process started"
        if self.baseline_bytes is None or peak is None:
            return PeakMemory(None, peak, f"process: {method}; model: unknown (no resident set recorded before the load)")
        return PeakMemory(
            max(self.weights_bytes, peak - self.baseline_bytes),
            peak,
            f"model: process peak resident set during the runs ({method}) minus the resident set before the load, "
            f"at least the weights' and buffers' bytes; process: {method}",
        )
