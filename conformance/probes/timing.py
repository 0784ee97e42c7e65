"""What a speed figure depends on (device, driver, versions, threads) and how a call is timed on it."""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def cuda_available() -> bool:
    """Whether torch sees a CUDA device here."""
    import torch

    return bool(torch.cuda.is_available())


def same_device(first: str, second: str) -> bool:
    """Whether two torch device names ("cuda", "cuda:0", "cpu") name the same device."""
    import torch

    return bool(torch.device(first) == torch.device(second))


# --- timing -------------------------------------------------------------------------------------

Timed = Callable[[Callable[[], Any]], tuple[float, Any]]


def timer(device: str) -> tuple[Timed, str]:
    """A function that times one call on `device` (seconds, result), and how it times."""
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
