"""Collection tree: a spec file, one collector per model, one item per rule (`<spec>::<model>::<rule id>`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..errors import RequestError
from ..rule import Rule
from ..runner import judge_rule
from ..spec import Spec, load_spec
from ..standards import standard_hint
from ..verdict import Status
from .outputs import error_text, failure_text, result_properties, shortfall_text
from .session import get_store


class SpecFile(pytest.File):
    """A spec file as a test module: its rules against its `models:` and the --conformance-model folders."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        """One `ModelNode` per model (CollectError for a bad spec, no model, a missing folder or an uncached repo id)."""
        store = get_store(self.config)
        try:
            spec = load_spec(self.path)
        except RequestError as exc:  # the one-line message names file, line, rule and field
            name = store.settings.unknown_standards.get(self.path)
            hint = f"; {standard_hint(name)}" if name is not None and not self.path.exists() else ""
            raise self.CollectError(f"{exc}{hint}") from None
        # The spec's own `models:` are relative to the spec file; the settings' are absolute paths or repo ids.
        named = [(str(entry), self.path.parent) for entry in spec.models] + [(entry, Path.cwd()) for entry in store.settings.models]
        if not named:
            raise self.CollectError(
                f"{self.path}: no model to check: name model folders in the spec's `models:` key "
                "or pass --conformance-model (ini: conformance_model)"
            )
        candidates = []
        for entry, base in named:
            try:
                candidate = store.model(entry, base)
            except RequestError as exc:
                raise self.CollectError(f"{self.path}: {exc}") from None
            if candidate not in candidates:
                candidates.append(candidate)
        for candidate in candidates:
            yield ModelNode.from_parent(self, name=candidate.name, model_path=candidate.location, spec=spec)


class ModelNode(pytest.Collector):
    """The rules of one spec for one model; its name is the model's, unique in the session."""

    def __init__(self, *, model_path: Path, spec: Spec, **kwargs: Any) -> None:
        """A collector for `spec`'s rules on the model at `model_path`; pytest's own arguments in `kwargs`."""
        super().__init__(**kwargs)
        self.model_path = model_path
        self.spec = spec
        # With `-n N --dist loadgroup` a model's items go to one worker, so it is measured once in all.
        self.add_marker(pytest.mark.xdist_group(self.name))

    def collect(self) -> Iterator[pytest.Item]:
        """One `RuleItem` per rule, in the spec's order."""
        for rule in self.spec.rules:
            yield RuleItem.from_parent(self, name=rule.id, rule=rule, spec=self.spec, model_path=self.model_path)


class RuleItem(pytest.Item):
    """One rule judged on one model.

    The verdict is reached in setup, so outcomes map onto pytest's: must failure → failed, should/may
    shortfall → xfailed, skip → skipped, error → error.
    """

    def __init__(self, *, rule: Rule, spec: Spec, model_path: Path, **kwargs: Any) -> None:
        """An item for `rule` of `spec` on the model at `model_path`, marked `conformance` and with its level."""
        super().__init__(**kwargs)
        if self.parent is None:  # from_parent always gives one; pytest's Node types it optional
            raise TypeError("a RuleItem is created from its ModelNode")
        self._model_name: str = self.parent.name
        self.rule = rule
        self.spec = spec
        self.model_path = model_path
        self.result: Any = None
        self.add_marker("conformance")
        self.add_marker(rule.level)
        self.user_properties += [
            ("model", self._model_name), ("spec", spec.id), ("rule", rule.id), ("check", rule.check), ("level", rule.level),
        ]

    @property
    def model_name(self) -> str:
        """The model's node name (unique in the session)."""
        return self._model_name

    def _selected_rules_of_model(self) -> list[RuleItem]:
        return [item for item in self.session.items if isinstance(item, RuleItem) and item.model_path == self.model_path]

    def setup(self) -> None:
        """Measure (once per model) and judge the rule; error, skip and should/may shortfalls end here."""
        store = get_store(self.config)
        state = store.state(self.model_path)
        if state.pending is None:
            # First item of this model in the session: measure for every selected item of the model, across
            # spec files, in one go (one load, one lm-eval call); later items only judge.
            mine = self._selected_rules_of_model()
            state.pending = {id(item) for item in mine}
            # A hand-written test using conformance_run may ask for any model later: keep models loaded then.
            state.keep_loaded = any("conformance_run" in getattr(item, "fixturenames", ()) for item in self.session.items)
            state.ensure([item.rule for item in mine])
        state.ensure([self.rule])  # a no-op unless this item was not among the selected ones
        self.result = result = judge_rule(self.rule, state.evidence)
        store.record(state, self.spec, result)
        self.user_properties += result_properties(result)
        if result.status is Status.ERROR:
            pytest.fail(error_text(result, self.model_name), pytrace=False)
        if result.status is Status.SKIP:
            pytest.skip(result.message or "skipped")
        if result.is_warning:
            pytest.xfail(shortfall_text(result))

    def runtest(self) -> None:
        """Fail when the rule broke conformance (a must rule that failed)."""
        if self.result is not None and self.result.breaks_conformance:
            pytest.fail(failure_text(result=self.result, model=self.model_name), pytrace=False)

    def teardown(self) -> None:
        """Free the loaded model after its last item, unless a hand-written test may still ask for it."""
        state = get_store(self.config).state(self.model_path)
        if state.pending is not None:
            state.pending.discard(id(self))
            if not state.pending and not state.keep_loaded:
                state.release()  # the last item of this model has run here: free the loaded model

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """The spec file and `model::rule id`, as pytest shows the item."""
        return self.path, None, f"{self.model_name}::{self.name}"
