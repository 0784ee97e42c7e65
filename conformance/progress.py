"""Progress on long work: a bar per model over its probes on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO


class Progress:
    """Receives runner events and writes plain lines; `TerminalProgress` draws bars instead."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        """Write each line with `write` (default: stderr, flushed)."""
        self.write = write or (lambda message: print(message, file=sys.stderr, flush=True))

    def line(self, message: str) -> None:
        """One plain line."""
        self.write(message)

    def model_started(self, model: str, probes: int) -> None:
        """A model's measuring begins, with this many probes to run."""
        self.line(f"{model}: {probes} probes to run")

    def probe_started(self, model: str, probe: str) -> None:
        """A probe (its evidence key) begins; plain lines say nothing until it ends."""

    def probe_finished(self, model: str, probe: str, seconds: float, cached: bool) -> None:
        """A probe ended after `seconds` (wall time), or was served from the cache."""
        self.line(f"  {model}: {probe} probe " + ("(cached)" if cached else f"{seconds:.2f} s"))

    def model_finished(self, model: str) -> None:
        """A model's probes are done."""


class TerminalProgress(Progress):
    """One tqdm bar per model, advanced per probe, with the probe being measured in its description."""

    def __init__(self, stream: TextIO) -> None:
        """Draw on `stream` (a terminal)."""
        super().__init__(lambda message: print(message, file=stream, flush=True))
        self.stream = stream
        self._bar: Any = None

    def model_started(self, model: str, probes: int) -> None:
        """Open a bar of `probes` steps named after the model."""
        from tqdm import tqdm

        self._bar = tqdm(total=probes, desc=model, unit="probe", file=self.stream, leave=True, dynamic_ncols=True)

    def probe_started(self, model: str, probe: str) -> None:
        """Show the probe's name (without its parameters) beside the bar."""
        if self._bar is not None:
            self._bar.set_postfix_str(probe.split("[", 1)[0])

    def probe_finished(self, model: str, probe: str, seconds: float, cached: bool) -> None:
        """Advance the bar one step."""
        if self._bar is not None:
            self._bar.update(1)

    def model_finished(self, model: str) -> None:
        """Close the bar, marked done."""
        if self._bar is not None:
            self._bar.set_postfix_str("done")
            self._bar.close()
            self._bar = None


def progress_for(quiet: bool, stream: TextIO | None = None) -> Progress:
    """Bars on a terminal, plain lines when the output is a file or a CI log, nothing with --quiet."""
    stream = stream or sys.stderr
    if quiet:
        return Progress(write=lambda message: None)
    if stream.isatty():
        return TerminalProgress(stream)
    return Progress(write=lambda message: print(message, file=stream, flush=True))
