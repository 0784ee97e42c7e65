"""Measure once: one Evidence per model (and load options) per session, shared by rule items and fixtures."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cache import default_cache_dir
from ..candidate import Candidate, default_name, locate_model
from ..evidence import Evidence
from ..model_folder import require_model_folder
from ..probes.load import LoadOptions
from ..report.names import unique_name
from ..results import RuleResult
from ..rule import Rule
from ..runner import RunOptions, measure, plan, result_document
from ..spec import Spec, load_spec
from .settings import Settings

logger = logging.getLogger("conformance")

_RUN_OPTION_NAMES = ("device", "dtype", "device_map_auto", "hash_weights", "require_device")


def _unique_rules(rules: list[Rule]) -> list[Rule]:
    unique: list[Rule] = []
    for rule in rules:  # Rule holds dicts, so it is compared, not hashed
        if rule not in unique:
            unique.append(rule)
    return unique


def _tasks_params(rules: list[Rule]) -> dict[str, Any] | None:
    for run in plan(rules):
        if run.name == "tasks":
            return dict(run.params)
    return None


def _covers(done: dict[str, Any] | None, wanted: dict[str, Any] | None) -> bool:
    """Whether the tasks probe already run scored every task these rules ask for."""
    if wanted is None:
        return True
    if done is None:
        return False

    def keys(params: dict[str, Any], name: str) -> set[str]:
        return {json.dumps(item, sort_keys=True) for item in params.get(name, [])}

    return (
        keys(wanted, "requests") <= keys(done, "requests")
        and keys(wanted, "tasks_dirs") <= keys(done, "tasks_dirs")
        and (done.get("card_claims") or not wanted.get("card_claims"))
    )


class ModelState:
    """A model's evidence for this session: probes run once, whatever spec files or fixtures ask."""

    def __init__(self, candidate: Candidate, options: RunOptions) -> None:
        """No evidence yet: `ensure` measures on first need."""
        self.candidate = candidate
        self.options = options
        self.evidence = Evidence()
        self.measured: list[Rule] = []
        self.earlier_evidence: dict[str, Any] = {}  # kept for result documents when the evidence had to restart
        self.released = False
        self.pending: set[int] | None = None  # ids of this session's items of the model not yet torn down
        self.keep_loaded = False  # set when a selected test uses conformance_run (it may need the model later)

    def ensure(self, rules: list[Rule]) -> None:
        """Measure what these rules need and the evidence lacks (nothing, after the first call of a session)."""
        rules = _unique_rules(rules)
        if not rules:
            return
        new = [rule for rule in rules if rule not in self.measured]
        needs_model = any(run.name == "load" for run in plan(rules))
        # Two cases need a fresh Evidence (so a second model load): the loaded model was already freed, or
        # lm-eval scored other tasks (it scores every task rule of a model in one call, which cannot be extended).
        tasks_missing = self.evidence.has("tasks") and not _covers(_tasks_params(self.measured), _tasks_params(new))
        if (self.released and needs_model) or tasks_missing:
            self.earlier_evidence.update(self.evidence.to_dict())
            self.evidence, self.measured, self.released = Evidence(), [], False
            new = rules
        if new:
            measure(self.candidate, new, self.options, self.evidence)
            self.measured += new

    def release(self) -> None:
        """Free the loaded model once no item of this session needs it (checks judge on plain data after this)."""
        if not self.released:
            self.evidence.release("load")
            self.released = True

    def plain_evidence(self) -> dict[str, Any]:
        """The evidence as plain data for a result document, including any kept from before a restart."""
        return {**self.earlier_evidence, **self.evidence.to_dict()}


@dataclass
class SpecRun:
    """The rules of one spec judged on one model in this session (one result document)."""

    spec: Spec
    state: ModelState
    results: dict[str, RuleResult] = field(default_factory=dict)


class Store:
    """Session-wide state of the plugin, kept in config.stash."""

    def __init__(self, settings: Settings) -> None:
        """An empty store for a session with these settings."""
        self.settings = settings
        self.names: dict[Path, str] = {}
        self.candidates: dict[Path, Candidate] = {}
        self.states: dict[tuple[Any, ...], ModelState] = {}
        self.collected_specs: set[Path] = set()
        self.runs: dict[tuple[Path, Path], SpecRun] = {}
        self.fixture_documents: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []  # result payloads sent by xdist workers
        self.outcomes: dict[str, dict[str, str]] = {}  # node id -> status, level, model (terminal summary)
        self.written: list[Path] = []
        self.write_error: str | None = None

    def candidate(self, path: Path, name: str | None = None) -> Candidate:
        """Open a model (folder or .gguf file) once; its name (default: `default_name`) is unique in the session (`tiny-llama`, `tiny-llama-2`)."""
        # A folder by its real path (one state per model however it is named); a .gguf file by the name given
        # (a hub cache link resolves to a blob whose name no longer says the format).
        path = path.resolve() if path.is_dir() else Path(os.path.abspath(path))
        if path not in self.candidates:
            base = re.sub(r"[\[\]:]+", "_", name or default_name(path))  # [ ] and :: would split the node id
            unique = unique_name(base, set(self.names.values()))
            self.candidates[path] = Candidate(path, name=unique)  # RequestError for a missing folder
            self.names[path] = unique
        return self.candidates[path]

    def model(self, value: str | Path, base: Path) -> Candidate:
        """Open a model named by a path (relative to `base`) or a repo id ORG/NAME[@REV] in the hub cache, once.

        Raises RequestError for a missing folder, one with no model in it, or a repo id that is not cached
        (see `candidate.locate_model`).
        """
        location, name = locate_model(str(value), base=base)
        require_model_folder(location, str(value))
        return self.candidate(location, name)

    def run_options(self, **options: Any) -> RunOptions:
        """RunOptions from the session settings and a fixture's keyword options.

        The options: device, dtype, device_map_auto, hash_weights, require_device. Raises TypeError naming an
        unknown one.
        """
        unknown = sorted(set(options) - set(_RUN_OPTION_NAMES))
        if unknown:
            raise TypeError(f"unknown conformance option(s) {', '.join(unknown)}; known: {', '.join(_RUN_OPTION_NAMES)}")
        load = LoadOptions(
            device=options.get("device") or self.settings.device,
            dtype=options.get("dtype", "auto"),
            device_map_auto=bool(options.get("device_map_auto", False)),
        )
        return RunOptions(
            hash_weights=options.get("hash_weights", "auto"),
            load=load,
            require_device=bool(options.get("require_device", False)),
            cache_dir=None if self.settings.no_cache else default_cache_dir(),
            log=lambda message: logger.info(message.strip()),
        )

    def state(self, path: Path, options: RunOptions | None = None) -> ModelState:
        """The shared state of a model under these options; rule items use the session's options."""
        options = options or self.run_options()
        load = options.load
        path = self.candidate(path).location  # a .gguf file is its own model, beside whatever shares its folder
        key = (path, load.backend, load.device, load.dtype, load.device_map_auto, options.hash_weights, options.require_device)
        if key not in self.states:
            self.states[key] = ModelState(self.candidate(path), options)
        return self.states[key]

    def record(self, state: ModelState, spec: Spec, result: RuleResult) -> None:
        """Keep a rule item's result for the (model, spec) result document written at the end of the session."""
        key = (state.candidate.location, Path(spec.path or spec.id).resolve())
        run = self.runs.setdefault(key, SpecRun(spec, state))
        run.results[result.id] = result

    def fixture_document(self, model: str | Path, spec: str | Path, only: list[str] | None = None, **options: Any) -> dict[str, Any]:
        """conformance_run: a result document for (model, spec), measured once per session and option set.

        `model` is a folder, a .gguf file (relative to the working folder) or a repo id ORG/NAME[@REV].
        """
        loaded = load_spec(spec)
        rules = loaded.select(only)
        run_options = self.run_options(**options)
        state = self.state(self.model(model, Path.cwd()).location, run_options)
        key = (state.candidate.location, Path(loaded.path or loaded.id).resolve(), tuple(only or ()), tuple(sorted(options.items())))
        if key not in self.fixture_documents:
            state.ensure(rules)
            result = result_document(state.candidate, loaded, rules, state.evidence, state.options)
            result.evidence = state.plain_evidence()
            self.fixture_documents[key] = result.to_document()
        return copy.deepcopy(self.fixture_documents[key])

    def close(self) -> None:
        """Drop every model and its evidence (pytester runs many sessions in one process)."""
        for state in self.states.values():
            state.release()
        self.states.clear()
        self.runs.clear()
        self.candidates.clear()
