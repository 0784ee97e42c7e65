"""Where each model's run happens: in this process (local) or as one Ray task per model (ray).

One task per model: probes then checks, on one worker, so a model is loaded once and its timing and task
scoring are not disturbed by other work on the same device. Results come back as result documents.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .errors import RequestError

DEFAULT_MAX_RETRIES = 2


def run_one(model_path: str, spec_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """One model against one spec, from plain arguments (what a Ray task receives). Returns the document.

    `model_path` is the model's location (a folder or a `.gguf` file); `options["name"]`, when given, its
    display name (a repo id resolved before the task: the worker never resolves one again).
    """
    from .candidate import Candidate
    from .probes.load import LoadOptions
    from .progress import Progress
    from .runner import RunOptions, run
    from .spec import load_spec

    run_options = RunOptions(
        only=options.get("only"),
        hash_weights=options.get("hash_weights", "auto"),
        load=LoadOptions(**options.get("load", {})),
        require_device=bool(options.get("require_device", False)),
        cache_dir=_usable_cache_dir(options.get("cache_dir")),
        progress=Progress() if options.get("log", True) else Progress(write=lambda message: None),
    )
    return run(Candidate(model_path, name=options.get("name")), load_spec(spec_path), run_options).to_document()


def _usable_cache_dir(folder: str | None) -> Path | None:
    """The cache is shared when this worker can write the folder (a shared file system); else bypassed."""
    if not folder:
        return None
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
        return path
    except OSError:
        return None


def options_payload(options: Any) -> dict[str, Any]:
    """RunOptions as plain data for a worker (progress objects stay behind)."""
    return {
        "only": options.only,
        "hash_weights": options.hash_weights,
        "load": asdict(options.load),
        "require_device": options.require_device,
        "cache_dir": str(options.cache_dir) if options.cache_dir else None,
    }


def failed_document(model_path: str, spec: Any, reason: str, only: list[str] | None = None, name: str | None = None) -> dict[str, Any]:
    """Every selected rule of a model whose task died: `error` with the reason; the other models' results stand.

    `name` is the model's display name (default: `candidate.default_name` of its location).
    """
    from .candidate import default_name
    from .results import ModelIdentity, RuleResult, RunResult, SpecIdentity, environment
    from .verdict import Level, Status, bound_text

    reason = bound_text(reason)  # a crashed run's reason may quote anything the model made it print
    rules = [RuleResult(r.id, r.check, Level(r.level), Status.ERROR, None, None, reason, 0.0) for r in spec.select(only)]
    resolved = Path(model_path).resolve()
    return RunResult(
        spec=SpecIdentity.from_dict(spec.identity()),
        model=ModelIdentity(name=name or default_name(resolved), path=str(resolved)),
        rules=rules,
        evidence={"executor": {"error": reason}},
        environment=environment(),
    ).to_document()


def required_gpus(spec: Any, options: Any) -> float:
    """A GPU for the task when the run loads on cuda or a rule measures on cuda."""
    if str(options.load.device).startswith("cuda"):
        return 1.0
    if any(str(rule.params.get("device", "")).startswith("cuda") for rule in spec.rules):
        return 1.0
    return 0.0


def run_local(
    models: list[str],
    spec: Any,
    spec_path: str,
    options: Any,
    on_result: Callable[[int, dict[str, Any]], None],
    names: list[str] | None = None,
) -> None:
    """Run each model (a folder or `.gguf` file) here, in order; `on_result(index, document)` as each one finishes.

    `names`, when given, are the models' display names in the same order (a repo id's `ORG/NAME`).
    """
    from .candidate import Candidate
    from .runner import run

    for index, model in enumerate(models):
        on_result(index, run(Candidate(model, name=names[index] if names else None), spec, options).to_document())


def run_ray(
    models: list[str],
    spec: Any,
    spec_path: str,
    options: Any,
    on_result: Callable[[int, dict[str, Any]], None],
    *,
    address: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    task: Callable[..., dict[str, Any]] = run_one,
    log: Callable[[str], None] = print,
    names: list[str] | None = None,
) -> None:
    """One Ray task per model; a task that dies is retried `max_retries` times, then errors that model only.

    `names`, when given, are the models' display names (sent to each task as `options["name"]`).
    """
    try:
        import ray
    except ImportError:
        raise RequestError("--executor ray needs Ray: pip install 'model-conformance[ray]'") from None
    started = time.perf_counter()
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"address": target} if target else {}
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, **kwargs)
        log(f"ray: connected to {target or 'a new local Ray'} in {time.perf_counter() - started:.1f} s")
    remote = ray.remote(task).options(
        num_gpus=required_gpus(spec, options),
        num_cpus=1,
        max_retries=max_retries,
        retry_exceptions=False,  # a failing check is a verdict, not a fault; only a dying worker is retried
    )
    payload = options_payload(options)
    pending = {
        remote.remote(str(Path(model).resolve()), str(Path(spec_path).resolve()), {**payload, "name": names[index]} if names else payload): index
        for index, model in enumerate(models)
    }
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        reference = done[0]
        index = pending.pop(reference)
        try:
            document = ray.get(reference)
        except Exception as exc:  # worker killed, out of memory, a node lost: this model errors, others go on
            reason = f"the run of this model died on the cluster after {max_retries} retries: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            document = failed_document(models[index], spec, reason, options.only, names[index] if names else None)
        on_result(index, document)
