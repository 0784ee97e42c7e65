"""Errors that end a request with exit status 2 (the request itself is wrong)."""

from __future__ import annotations


class RequestError(Exception):
    """A bad request: bad spec, missing model, bad option. Printed as one line, exit status 2."""


class SpecError(RequestError):
    """A spec or card that cannot be used, located as precisely as we can."""

    def __init__(
        self,
        file: str,
        message: str,
        *,
        rule_id: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        """Locate the problem `message` in `file`, at a rule, a field and a 1-based line where known."""
        self.file = file
        self.message = message
        self.rule_id = rule_id
        self.field = field
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        """`file[:line]: [rule ID: ][field NAME: ]message`, the one line the command prints."""
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.rule_id:
            parts.append(f"rule {self.rule_id}")
        if self.field:
            parts.append(f"field {self.field}")
        return ": ".join(parts) + f": {self.message}"


class CheckError(Exception):
    """Raised inside a check when its evidence is missing or unusable: the rule gets status `error`."""


class CheckSkipped(Exception):
    """Raised when a rule does not apply on this run (a cuda rule on a machine without a GPU): status `skip`."""


class Inconclusive(CheckError):
    """A measured figure's confidence interval still straddles the rule's bar: more runs could decide it.

    The speed probe keeps measuring while a rule raises this; after `max_runs` / `max_seconds` the rule
    errors with the interval and the bar. A measurement that ended so is never cached.
    """

    def __init__(self, message: str, interval: dict | None = None, observed: object = None, expected: object = None) -> None:
        """Say why the rule cannot be decided yet.

        Args:
            message: the reason, shown as the rule's detail.
            interval: the confidence interval so far, `{"low", "high", "level"}` in the figure's unit.
            observed: the point estimate so far.
            expected: the rule's bar, as `describe_expected` writes it.
        """
        super().__init__(message)
        self.interval = interval  # {"low", "high", "level"}, recorded in the rule's result
        self.observed = observed  # the point estimate so far, shown beside the bar it could not be judged against
        self.expected = expected
