"""Session-level hooks bound to one pytest config: outcomes, result documents (xdist-aware), summary line."""

from __future__ import annotations

from typing import Any

import pytest

from .settings import Settings

STORE_KEY = pytest.StashKey[Any]()
SETTINGS_KEY = pytest.StashKey[Settings]()
PAYLOADS_KEY = "conformance_payloads"  # in xdist's workeroutput


def get_store(config: pytest.Config) -> Any:
    """The session's Store, created on first use: the runner is imported only when there is conformance work."""
    if STORE_KEY not in config.stash:
        from .store import Store

        config.stash[STORE_KEY] = Store(config.stash[SETTINGS_KEY])
    return config.stash[STORE_KEY]


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class ConformanceSession:
    """Registered once per config in pytest_configure."""

    def __init__(self, config: pytest.Config) -> None:
        """Bind the hooks to `config`; the Store is created on first use."""
        self.config = config

    def _store(self) -> Any | None:
        return self.config.stash.get(STORE_KEY, None)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record each rule item's outcome at setup (where the verdict is known) for the terminal summary."""
        if report.when == "setup" and "conformance" in report.keywords:
            from .outputs import note_outcome

            note_outcome(get_store(self.config), report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: a worker's partial result documents (workers never write files themselves)."""
        payloads = getattr(node, "workeroutput", {}).get(PAYLOADS_KEY)
        if payloads:
            get_store(self.config).received.extend(payloads)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the result documents and summary.md when an output folder is set.

        An xdist worker hands its documents to the controller instead. A failure to write fails the run and
        is named in the summary, never an internal error.
        """
        store = self._store()
        out = self.config.stash[SETTINGS_KEY].out
        if store is None or out is None:
            return
        from .outputs import local_payloads, merge_payloads, write_outputs

        try:
            payloads = local_payloads(store)
            if _is_xdist_worker(self.config):
                self.config.workeroutput[PAYLOADS_KEY] = payloads  # type: ignore[attr-defined]
                return
            payloads = store.received + payloads
            if payloads:
                store.written = write_outputs(merge_payloads(payloads), out)
        except Exception as exc:  # never an INTERNALERROR: say it in the summary and fail the run
            store.write_error = f"{type(exc).__name__}: {exc}"
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The `conformance: ...` summary line (coloured by the worst outcome) and where the results were written."""
        store = self._store()
        if store is None:
            return
        from .outputs import summary_colour, summary_line

        outcomes = list(store.outcomes.values())
        if outcomes:
            terminalreporter.write_line(summary_line(outcomes), **{summary_colour(outcomes): True})
        if store.written:
            documents = len(store.written) - 1
            folder = store.written[0].parent
            terminalreporter.write_line(f"conformance: wrote {documents} result document{'s' * (documents != 1)} and summary.md to {folder}")
        if store.write_error:
            terminalreporter.write_line(f"conformance: could not write results: {store.write_error}", red=True)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Free the session's loaded models and drop its Store (pytester runs many sessions in one process)."""
        store = self._store()
        if store is not None:
            store.close()  # free loaded models: pytester runs many sessions in one process
            del config.stash[STORE_KEY]
