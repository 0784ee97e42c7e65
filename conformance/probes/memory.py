"""Peak memory of a measurement: what the model and its work take, apart from what the process took anyway.

- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats` counts only tensors on the device
  (the model's weights, KV cache and activations); the process figure is `max_memory_reserved`, the
  caching allocator's whole reservation.
- CPU: the bytes of the model's weights and buffers (resident while it runs) plus the rise of the
  process's resident set during the measured work: the peak resident set from the start of the warm-up to
  the last run (Linux `VmHWM`, reset through `/proc/self/clear_refs`) minus the resident set at that start
  (`VmRSS`). The process figure is that peak resident set itself.

  Why not the rise above the resident set before the load: the first model a process loads also pays for
  one-time library allocations (lazy imports, kernel and tokenizer caches), and later loads reuse memory
  freed since. In one leaderboard process two models of one architecture (139.6K parameters) read
  260.0 MiB and 0.7 MiB that way, and in the test process a model read 0 bytes. Tensor bytes plus the
  work's rise depend on neither the load order nor what the process did before.

  Without /proc (macOS) the peak is `ru_maxrss` since the process started, which can only overstate.
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
    """Peak memory in bytes: the model's share and the whole process's (None where unreadable), and how each was read."""

    model_bytes: int | None  # attributable to the model and the measured work
    process_bytes: int | None  # the whole process
    method: str


class PeakMemoryTracker:
    """Reset the peak before the warm-up (`start`), read it after the last measured run (`read`)."""

    def __init__(self, device: str, weights_bytes: int = 0) -> None:
        """Track peaks on `device` ("cpu", "cuda:0"); on CPU the model's peak is `weights_bytes` (parameters and buffers) plus the rise."""
        self.device = device
        self.weights_bytes = weights_bytes  # the model's parameters and buffers
        self._since_reset = False
        self._start_bytes: int | None = None

    def start(self) -> None:
        """Reset the peak: CUDA's peak statistics, or on CPU Linux's VmHWM (when writable), noting the resident set now."""
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats(torch.device(self.device))
            return
        try:
            _CLEAR_REFS.write_text("5", encoding="ascii")  # Linux: resets VmHWM to the current resident set
            self._since_reset = True
        except OSError:
            self._since_reset = False
        self._start_bytes = resident_set_bytes()

    def read(self) -> PeakMemory:
        """The peak since `start`, in bytes.

        CUDA: max allocated (model) and max reserved (process). CPU: the weights' bytes plus the resident
        set's rise since `start` (model) and the peak resident set (process), from VmHWM after a reset,
        else ru_maxrss since the process started; the model's figure is the weights' bytes alone when no
        resident set is readable.
        """
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
        if self._start_bytes is None or peak is None:
            return PeakMemory(self.weights_bytes, peak, f"model: weights' and buffers' bytes only (no resident set readable); process: {method}")
        rise = max(0, peak - self._start_bytes)
        return PeakMemory(
            self.weights_bytes + rise,
            peak,
            f"model: weights' and buffers' bytes plus the resident set's rise from the warm-up to the last run ({method}); "
            f"process: peak resident set ({method})",
        )
