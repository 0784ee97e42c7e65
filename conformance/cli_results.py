"""The `export` and `card` subcommands: results other tools read (lm-eval results files, the Hub's model-index).

`conformance export RESULT... --format lm-eval [--out DIR] [-q]` writes each result document's task scores as
`DIR/<model_name_sanitized>/results_<date>.json`, the file lm-eval's `--output_path` writes
(`report.lm_eval_export`); `--out -` prints one document's export to stdout.
`conformance card MODEL --update --result RESULT [--dry-run] [-q]` writes the document's task scores into the
model folder's README.md `model-index` (`card_update`), only when the document is this model (the same
weights sha256); without `--update` it lists the scores the card claims. Handlers return the exit status and
raise RequestError for a bad request (one line, exit 2), as cli.py's do.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from .errors import RequestError
from .paths import default_cache_dir

EXIT_OK, EXIT_BAD_REQUEST = 0, 2
CARD_NAME = "README.md"


def cmd_export(args: argparse.Namespace) -> int:
    """`conformance export`: one lm-eval results file per result document; returns 0 (RequestError: exit 2)."""
    from .report.lm_eval_export import lm_eval_results, results_path, unscored_tasks
    from .result_document import ResultDocument
    from .results import write_atomic

    if args.out == "-" and len(args.results) != 1:
        raise RequestError("--out - prints one document's export; name one RESULT")
    if args.out != "-":
        _refuse_unusable_folder(Path(args.out))  # what can be told without creating anything
    exports: list[tuple[str, dict[str, Any]]] = []
    for name in args.results:  # every document judged before anything is created
        document = ResultDocument.load(Path(name))
        try:
            exports.append((name, lm_eval_results(document)))
        except RequestError as exc:
            raise RequestError(f"{name}: {exc}") from None
        if not args.quiet:
            for task, reason in unscored_tasks(document).items():
                print(f"{name}: {task} left out (not scored: {reason})", file=sys.stderr)
    if args.out != "-":
        from .check_command import writable_folder

        writable_folder(Path(args.out))
    taken: set[Path] = set()
    for name, exported in exports:
        text = json.dumps(exported, indent=2, default=str) + "\n"
        if args.out == "-":
            sys.stdout.write(text)
            continue
        path = results_path(Path(args.out), exported, taken)
        taken.add(path)
        write_atomic(path, text)
        if not args.quiet:
            print(f"wrote {path} ({len(exported['results'])} tasks from {name})")
    return EXIT_OK


def _card_path(candidate: Any) -> Path:
    """The model folder's README.md, refused unless it is a regular file or absent (never written through a link)."""
    location = Path(candidate.location)
    if not location.is_dir():
        raise RequestError(f"{location}: a single weight file has no model card; give the folder that holds it")
    path = location / CARD_NAME
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode):
        raise RequestError(f"{path}: not a regular file (a link, folder or device is never written through)")
    return path


def _read_card_bytes(path: Path) -> bytes | None:
    """The card's bytes (None when absent), bounded by the card size budget, opened without following links."""
    from .card import MAX_CARD_BYTES
    from .safe_files import UnsafeFileError, open_regular

    try:
        with open_regular(path.parent, path.name) as handle:
            data = handle.read(MAX_CARD_BYTES + 1)
    except FileNotFoundError:
        return None
    except UnsafeFileError as exc:
        raise RequestError(f"{path}: {exc}") from None
    if len(data) > MAX_CARD_BYTES:
        raise RequestError(f"{path}: larger than {MAX_CARD_BYTES} bytes (the card size budget)")
    return data


def _same_model(candidate: Any, document: Any, cache_dir: Path | None) -> None:
    """RequestError unless the document's weights sha256 is the folder's current one (through the hash cache)."""
    from .evidence import Evidence
    from .runner import RunOptions, model_identity

    recorded = document.model.sha256
    if recorded is None:
        raise RequestError("the result records no weights sha256 (it was checked with --hash-weights never); check the model again")
    current = model_identity(candidate, Evidence(), RunOptions(hash_weights="always", cache_dir=cache_dir, log=lambda message: None))
    if current.get("sha256") != recorded:
        raise RequestError(f"the result is of other weights (sha256 {recorded[:12]}..., the folder's are "
                           f"{str(current.get('sha256'))[:12]}...): check this model and update its card from that result")


def _list_claims(candidate: Any, quiet: bool) -> int:
    from .card import read_card, score_claims

    facts = read_card(Path(candidate.location) / CARD_NAME) if Path(candidate.location).is_dir() else None
    if facts is None or not facts.present:
        raise RequestError(f"{candidate.location}: no {CARD_NAME}")
    if facts.errors:
        raise RequestError(f"{candidate.location}/{CARD_NAME}: {facts.errors[0]}")
    if not quiet:
        claims = score_claims(facts.metadata)
        for claim in claims:
            shots = "" if claim.num_fewshot is None else f", {claim.num_fewshot}-shot"
            print(f"{claim.task} {claim.metric} {claim.value:.4f}{shots}")
        if not claims:
            print("the card's model-index states no scores")
    return EXIT_OK


def cmd_card(args: argparse.Namespace) -> int:
    """`conformance card`: list the card's claimed scores, or write a result's task scores into its model-index."""
    from .candidate import open_candidate

    candidate = open_candidate(args.model)
    if not args.update:
        if args.result or args.dry_run:
            raise RequestError("--result and --dry-run go with --update")
        return _list_claims(candidate, args.quiet)
    if not args.result:
        raise RequestError("--update needs --result RESULT (a result document of this model with task scores)")
    from .card_update import update_card_text
    from .result_document import ResultDocument

    document = ResultDocument.load(Path(args.result))
    path = _card_path(candidate)
    _same_model(candidate, document, None if args.no_cache else Path(args.cache_dir))
    data = _read_card_bytes(path)
    bom = b"\xef\xbb\xbf" if data is not None and data.startswith(b"\xef\xbb\xbf") else b""
    try:
        content = None if data is None else data[len(bom):].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{path}: not UTF-8 text ({exc.reason})") from None
    update = update_card_text(content, document, model_name=candidate.name)
    if not args.quiet:
        for task, reason in update.skipped.items():
            print(f"{task}: not written ({reason})", file=sys.stderr)
    if args.dry_run:
        if not args.quiet:
            old = (content or "").splitlines(keepends=True)
            sys.stdout.writelines(difflib.unified_diff(old, update.text.splitlines(keepends=True), str(path), f"{path} (updated)"))
        return EXIT_OK
    if update.changed:
        _write_card(path, bom + update.text.encode("utf-8"))
    if not args.quiet:
        state = "updated" if update.changed else "already up to date:"
        print(f"{state} {path} ({', '.join(update.written)})")
    return EXIT_OK


def _write_card(path: Path, data: bytes) -> None:
    """Replace the card atomically, keeping its permission bits; refused if it became a link meanwhile."""
    from .atomic_write import write_atomic

    try:
        mode: int | None = stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        mode = None

    def still_regular() -> None:
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise RequestError(f"{path}: replaced by a non-regular file while updating; nothing written")
        except FileNotFoundError:
            pass

    write_atomic(path, data, before_replace=still_regular)
    if mode is not None:
        os.chmod(path, mode)


def add_parsers(subparsers: Any, common_parent: argparse.ArgumentParser | None = None) -> None:
    """Add `export` and `card` to the command line's subparsers; `common_parent` carries the shared options (`-q`).

    Without a parent (it is None) each subcommand gets its own `-q/--quiet`.
    """
    parents = [common_parent] if common_parent is not None else []
    export = subparsers.add_parser(
        "export", parents=parents, help="write result documents' task scores as lm-eval results files",
        description="Write each result document's task scores in lm-evaluation-harness's results layout: "
        "OUT/<model>/results_<date>.json.",
    )
    export.add_argument("results", nargs="+", metavar="RESULT", help="result documents (.json) written by check or leaderboard")
    export.add_argument("--format", choices=("lm-eval",), default="lm-eval", help="the layout written (default lm-eval)")
    export.add_argument("--out", default="reports/lm-eval", help="output folder (default: %(default)s); - prints one export to stdout")
    export.set_defaults(handler=cmd_export)

    card = subparsers.add_parser(
        "card", parents=parents, help="list a model card's claimed scores, or write measured task scores into its model-index",
        description="Without --update: list the scores the card's model-index claims. With --update --result RESULT: write "
        "the result's task scores (tasks measured without a limit) into README.md's model-index, nothing else changed.",
    )
    card.add_argument("model", metavar="MODEL", help="the model folder (or a repo id in the Hugging Face cache, read only)")
    card.add_argument("--update", action="store_true", help="write the result's task scores into the card's model-index")
    card.add_argument("--result", default=None, metavar="RESULT", help="a result document of this model (same weights) with task scores")
    card.add_argument("--dry-run", action="store_true", help="print the change as a unified diff; write nothing")
    card.add_argument("--cache-dir", default=str(default_cache_dir()), help="hash cache for the weights' sha256 (default: %(default)s)")
    card.add_argument("--no-cache", action="store_true", help="hash the weights again; do not read or write the cache")
    card.set_defaults(handler=cmd_card)
    for parser in (export, card):
        if common_parent is None:
            parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def _refuse_unusable_folder(folder: Path) -> None:
    """RequestError for an output folder that is a file or has a name too long, checked without creating it."""
    if folder.exists() and not folder.is_dir():
        raise RequestError(f"{folder}: not a folder")
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in folder.parts):
        raise RequestError(f"{folder}: File name too long")
