"""`check` and `leaderboard`'s shared work: open the models, measure them, write each result document.

Imported by the command line only; every heavy import (the spec loader, the runner, the reports) stays
inside the functions, so `--help` and `scan` start without them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import RequestError

THIRD_PARTY_LOG = "conformance.log"  # in OUT: what other libraries print while models are measured


def _output_names(names: list[str]) -> list[str]:
    """File-safe, unique stems for each model's outputs (the leaderboard names its files the same way)."""
    from .report.names import file_stems

    return file_stems(names)


def shown(text: Any) -> str:
    """A model's name as a printed line shows it: control characters escaped (`report.text.plain_text`, 500 characters)."""
    from .report.text import plain_text

    return plain_text(text, 500)


def say(args: argparse.Namespace, *lines: str, error: bool = False) -> None:
    """Print `lines` (to stderr when `error`) unless the command runs with -q (`args.quiet`)."""
    if not args.quiet:
        for line in lines:
            print(line, file=sys.stderr if error else sys.stdout)


def _run_options(args: argparse.Namespace, third_party_log: Path | None) -> Any:
    from .probes.load import LoadOptions
    from .progress import progress_for
    from .runner import RunOptions

    if args.quiet or not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's and transformers' own bars: only on a terminal
    return RunOptions(
        only=getattr(args, "only", None),
        hash_weights=args.hash_weights,
        load=LoadOptions(device=args.device, dtype=args.dtype, device_map_auto=args.device_map_auto),
        require_device=args.require_device,
        cache_dir=None if args.no_cache else Path(args.cache_dir),
        progress=progress_for(args.quiet),
        third_party_log=third_party_log,
    )


def _open_models(args: argparse.Namespace, spec: Any) -> list[Any]:
    """Each MODEL as a Candidate; a name that is none (a rule id given after --only, an empty folder) is refused."""
    from .candidate import open_candidate
    from .model_folder import require_model_folder

    revision = getattr(args, "revision", None)
    if revision and len(args.models) > 1:
        raise RequestError("--revision applies to one model; name each repo id's revision as ORG/NAME@REV")
    rule_ids = {rule.id for rule in spec.rules}
    candidates = []
    for text in args.models:
        if text in rule_ids and not os.path.lexists(text):
            raise RequestError(f"{text}: no such model; it is a rule id of spec {spec.id}: write --only {text} (several: --only A,B)")
        candidate = open_candidate(text, revision=revision)
        require_model_folder(candidate.location, text)
        candidates.append(candidate)
    return candidates


def writable_folder(folder: Path) -> None:
    """Create `folder` and prove a file can be written there, the way `write_atomic` writes (no probe has run yet).

    Raises:
        RequestError: `<folder>: <reason>` (read-only, a file in its place, a name too long, no permission).
    """
    import tempfile

    try:
        if os.path.lexists(folder) and not folder.is_dir():
            raise RequestError(f"{folder}: not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".conformance-", suffix=".tmp", dir=folder)
        os.close(handle)
        os.unlink(temporary)
    except OSError as exc:
        raise RequestError(f"{folder}: {exc.strerror or type(exc).__name__}") from None


@contextlib.contextmanager
def third_party_log(args: argparse.Namespace, out: Path) -> Iterator[Path]:
    """`OUT/conformance.log` for other libraries' output while inside (`console.third_party_output` writes it).

    Says once (not with -q) why a log that is not a regular file drops that output; at the end, names the
    log when this run added to it, and removes an empty log this run created.
    """
    from .console import log_refusal, remove_if_empty

    log = out / THIRD_PARTY_LOG
    existed = os.path.lexists(log)
    size_before = _size(log)
    refusal = log_refusal(log)
    if refusal is not None:
        say(args, refusal, error=True)
    try:
        yield log
    finally:
        remove_if_empty(log, existed)
        if refusal is None:
            _log_note(args, log, size_before)


def _log_note(args: argparse.Namespace, log: Path, size_before: int) -> None:
    """Name the third-party log when this run added to it (not with -q)."""
    try:
        grown = log.stat().st_size > size_before
    except OSError:
        grown = False
    if grown:
        say(args, f"other libraries' messages (lm-eval, transformers): {log}", error=True)


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def check_models(
    args: argparse.Namespace, results_dir: Path, print_tables: bool, resume: bool = False, log: Path | None = None,
) -> list[dict[str, Any]]:
    """Run every model against the spec (locally or on Ray), write <model>.json (and .md with tables).

    `args` are the parsed options of `check` or `leaderboard`. Other libraries' output while models are
    measured goes to `log` (default: `OUT/conformance.log`, see `third_party_log`). Returns the result
    documents in the order the models were named.

    Raises:
        RequestError: a bad spec, a bad --only, a model that is not there or holds no model, an output
            folder that cannot be written (checked before any probe runs).
    """
    from .spec import load_spec

    # Every bad request (spec, --only, a model that is not there) is refused before anything is created.
    spec = load_spec(args.spec)
    spec.select(getattr(args, "only", None))  # reject unknown --only ids before any model is opened
    candidates = _open_models(args, spec)
    if log is None:
        writable_folder(Path(args.out))  # before the log is opened in it
        with third_party_log(args, Path(args.out)) as default_log:
            return _check_opened(args, results_dir, print_tables, resume, default_log, spec, candidates)
    return _check_opened(args, results_dir, print_tables, resume, log, spec, candidates)


def _check_opened(
    args: argparse.Namespace, results_dir: Path, print_tables: bool, resume: bool, log: Path, spec: Any, candidates: list[Any]
) -> list[dict[str, Any]]:
    """`check_models` once the spec is loaded and the models opened: measure, judge, write the documents."""
    from .executors import run_local, run_ray
    from .report.markdown import render_markdown
    from .report.terminal import render_table
    from .results import write_atomic, write_result

    writable_folder(results_dir)
    options = _run_options(args, log)
    stems = _output_names([c.name for c in candidates])
    documents: list[dict[str, Any] | None] = [None] * len(candidates)
    if resume:
        for index, (candidate, stem) in enumerate(zip(candidates, stems, strict=True)):
            documents[index] = _reusable(results_dir / f"{stem}.json", candidate, spec, options)
            if documents[index] is not None:
                say(args, f"{shown(candidate.name)}: reusing {results_dir / (stem + '.json')} (same spec and weights)", error=True)
    todo = [index for index, document in enumerate(documents) if document is None]

    def record(position: int, document: dict[str, Any]) -> None:
        index = todo[position]
        documents[index] = document
        write_result(document, results_dir / f"{stems[index]}.json")  # written as each model finishes: resumable
        if print_tables:
            write_atomic(results_dir / f"{stems[index]}.md", render_markdown(document))
            say(args, render_table(document), f"wrote {results_dir / (stems[index] + '.json')} and {stems[index]}.md\n")

    models = [str(candidates[index].location) for index in todo]
    names = [candidates[index].name for index in todo]
    if getattr(args, "executor", "local") == "ray":
        run_ray(models, spec, str(spec.path), options, record, address=args.ray_address, max_retries=args.max_retries,
                log=lambda message: say(args, message, error=True), names=names)
    else:
        run_local(models, spec, str(spec.path), options, record, names=names)
    return [document for document in documents if document is not None]


def _reusable(path: Path, candidate: Any, spec: Any, options: Any) -> dict[str, Any] | None:
    """A result already written for this model, spec and weights (a leaderboard resumed after an interruption)."""
    from .evidence import Evidence
    from .runner import model_identity

    if not path.is_file():
        return None
    try:
        from .result_document import ResultDocument

        document = ResultDocument.load(path)  # validated, so its spec and model blocks are there
    except RequestError:
        return None
    if document.spec.sha256 != spec.sha256 or document.model.path != str(candidate.location) or document.model.name != candidate.name:
        return None
    if document.model.sha256 is None or "executor" in document.evidence:
        return None  # unverifiable identity, or a run that died: measure again
    current = model_identity(candidate, Evidence(), options)
    return dict(document.data) if current.get("sha256") == document.model.sha256 else None
