"""Command line only: parse, call the API, print, exit code (0 conformant, 1 a must rule broke, 2 bad request).

What building the parser needs is imported here; each command's machinery (the spec loader with its schema and
every check, the runner, the reports) is imported by its handler, so `--help`, `--version` and `conformance
scan` start without paying for jsonschema, PyYAML, regex and the check catalogue (about 0.9 s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import DISTRIBUTION, __version__
from .demo import DEMO_STANDARD, build_demo_zoo, demo_outcome
from .errors import RequestError
from .options import LOAD_DTYPES, is_device_choice
from .paths import default_cache_dir
from .scan_command import add_scan_parser

EXIT_CONFORMANT, EXIT_NONCONFORMANT, EXIT_BAD_REQUEST = 0, 1, 2


def _output_names(names: list[str]) -> list[str]:
    """File-safe, unique stems for each model's outputs (the leaderboard names its files the same way)."""
    from .report.names import file_stems

    return file_stems(names)


def _shown(text: Any) -> str:
    """A model's name as a printed line shows it: control characters escaped (`report.text.plain_text`)."""
    from .report.text import plain_text

    return plain_text(text, 500)


def _run_options(args: argparse.Namespace) -> Any:
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
    )


def _check_models(args: argparse.Namespace, results_dir: Path, print_tables: bool, resume: bool = False) -> list[dict[str, Any]]:
    """Run every model against the spec (locally or on Ray), write <model>.json (and .md with tables)."""
    from .candidate import open_candidate
    from .executors import run_local, run_ray
    from .report.markdown import render_markdown
    from .report.terminal import render_table
    from .results import write_atomic, write_result
    from .spec import load_spec

    spec = load_spec(args.spec)
    spec.select(getattr(args, "only", None))  # reject unknown --only ids before any model is opened
    revision = getattr(args, "revision", None)
    if revision and len(args.models) > 1:
        raise RequestError("--revision applies to one model; name each repo id's revision as ORG/NAME@REV")
    candidates = [open_candidate(text, revision=revision) for text in args.models]
    options = _run_options(args)
    stems = _output_names([c.name for c in candidates])
    documents: list[dict[str, Any] | None] = [None] * len(candidates)
    if resume:
        for index, (candidate, stem) in enumerate(zip(candidates, stems, strict=True)):
            documents[index] = _reusable(results_dir / f"{stem}.json", candidate, spec, options)
            if documents[index] is not None:
                print(f"{_shown(candidate.name)}: reusing {results_dir / (stem + '.json')} (same spec and weights)", file=sys.stderr)
    todo = [index for index, document in enumerate(documents) if document is None]

    def record(position: int, document: dict[str, Any]) -> None:
        index = todo[position]
        documents[index] = document
        write_result(document, results_dir / f"{stems[index]}.json")  # written as each model finishes: resumable
        if print_tables:
            write_atomic(results_dir / f"{stems[index]}.md", render_markdown(document))
            print(render_table(document))
            print(f"wrote {results_dir / (stems[index] + '.json')} and {stems[index]}.md\n")

    models = [str(candidates[index].location) for index in todo]
    names = [candidates[index].name for index in todo]
    if getattr(args, "executor", "local") == "ray":
        run_ray(models, spec, str(spec.path), options, record, address=args.ray_address, max_retries=args.max_retries,
                log=lambda message: print(message, file=sys.stderr), names=names)
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


def _exit_code(documents: list[dict[str, Any]]) -> int:
    from .result_document import ResultDocument

    return EXIT_CONFORMANT if all(ResultDocument(d).conformant for d in documents) else EXIT_NONCONFORMANT


def cmd_check(args: argparse.Namespace) -> int:
    """`conformance check`: judge each model, write <model>.json and .md, print tables; exit 0, or 1 if a must rule broke."""
    return _exit_code(_check_models(args, Path(args.out), print_tables=True))


def _write_board(documents: list[dict[str, Any]], out: Path) -> None:
    from .report.leaderboard import write_leaderboard
    from .result_document import ResultDocument

    written = write_leaderboard(documents, out)
    for document in documents:
        summary = ResultDocument(document).summary
        verdict = "conformant" if summary.conformant else "NOT conformant"
        print(f"{_shown(document['model']['name'])}: {verdict} ({summary.passed} passed, {summary.failed} failed, {summary.errors} errors)")
    print(f"wrote {len(written)} files; open {out / 'leaderboard.html'} in a browser")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """`conformance leaderboard`: check every model (reusing OUT/results unless --fresh), then write the board.

    Returns 0 when every model is conformant, else 1.
    """
    out = Path(args.out)
    documents = _check_models(args, out / "results", print_tables=False, resume=not args.fresh)
    _write_board(documents, out)
    return _exit_code(documents)


def cmd_report(args: argparse.Namespace) -> int:
    """`conformance report`: rebuild the leaderboard from stored result documents (no model is loaded); returns 0."""
    from .results import load_result

    documents = [load_result(Path(path)) for path in args.results]
    _write_board(documents, Path(args.out))
    return EXIT_CONFORMANT


def cmd_diff(args: argparse.Namespace) -> int:
    """`conformance diff`: print rule changes and metric deltas; 1 when a must rule newly fails, else 0."""
    from .report.diff import diff_documents
    from .results import load_result

    diff = diff_documents(load_result(Path(args.base)), load_result(Path(args.new)))
    print(diff.render_text())
    return EXIT_NONCONFORMANT if diff.newly_failing_must else EXIT_CONFORMANT


def _validate_card(path: Path) -> str:
    from .card import read_card

    facts = read_card(path, relative=str(path))
    if not facts.present:
        raise RequestError(f"{path}: file not found")
    problems = facts.errors + facts.schema_errors
    if problems:
        raise RequestError(f"{path}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return f"ok: {path} (model card, {len(facts.metadata)} metadata keys, {len(facts.sections)} sections)"


def cmd_validate(args: argparse.Namespace) -> int:
    """`conformance validate`: load each spec (or model card, for .md) and print `ok:` or the error.

    Returns 2 when any file is invalid, else 0.
    """
    from .spec import load_spec

    failed = False
    for name in args.files:
        path = Path(name)
        try:
            if path.suffix.lower() == ".md":
                print(_validate_card(path))
            else:
                spec = load_spec(path)
                print(f"ok: {path} (spec {spec.id} {spec.version}, {len(spec.rules)} rules)")
        except RequestError as exc:
            print(f"conformance: error: {exc}", file=sys.stderr)
            failed = True
    return EXIT_BAD_REQUEST if failed else EXIT_CONFORMANT


def cmd_rules(args: argparse.Namespace) -> int:
    """`conformance rules`: print the check catalogue as text, JSON or the README's Markdown table; returns 0."""
    from .catalogue import all_checks
    from .schema import catalogue_markdown, catalogue_markdown_params

    checks = all_checks()
    if args.format == "json":
        print(json.dumps([
            {
                "check": c.name, "family": c.family, "summary": c.summary, "probes": list(c.probes),
                "params": c.params, "required": list(c.required), "comparisons": list(c.comparisons),
                "needs_comparison": c.needs_comparison,
            }
            for c in checks
        ], indent=2))
    elif args.format == "markdown":
        print(catalogue_markdown())
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{c.name.ljust(width)}  {c.summary}")
            params = catalogue_markdown_params(c)
            if params:
                print(f"{''.ljust(width)}  parameters: {params}")
        print("\n* required. Comparison keys in [brackets]; see the README for their meaning.")
    return EXIT_CONFORMANT


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo zoo, run `leaderboard` on it against the demo standard, then report the canary."""
    out = Path(args.out)
    models = build_demo_zoo(out / "demo-models", log=lambda message: print(message, file=sys.stderr))
    code = main(["leaderboard", *map(str, models), "--spec", DEMO_STANDARD, "--out", str(out)])
    return demo_outcome(code, models, out)


def _add_model_run_options(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument(
        "models", nargs="+", metavar="MODEL",
        help="a model folder in Hugging Face layout, a .gguf file, or a repo id ORG/NAME[@REV] in the Hugging Face cache "
        "(offline unless HF_HUB_OFFLINE=0; a local path of the same spelling wins)",
    )
    parser.add_argument(
        "--revision", default=None, metavar="REV",
        help="branch, tag or commit of the one repo id given (default main); the result is named ORG/NAME@REV",
    )
    parser.add_argument("--spec", required=True, help="spec file, or the name of a shipped standard")
    parser.add_argument("--out", default="reports", help=out_help)
    parser.add_argument(
        "--hash-weights", choices=("auto", "always", "never"), default="auto",
        help="sha256 of the weights for the result's identity: auto hashes up to 2 GiB or when a rule needs it",
    )
    parser.add_argument("--device", default="auto", type=_device, help="auto | cpu | cuda | cuda:N (default auto: cuda when present)")
    parser.add_argument("--dtype", default="auto", choices=LOAD_DTYPES, help="weights dtype for runtime rules")
    parser.add_argument("--device-map-auto", action="store_true", help="spread a model too large for one device (accelerate)")
    parser.add_argument("--require-device", action="store_true", help="a rule for a device this machine lacks errors instead of skipping")
    _add_cache_options(parser)
    parser.add_argument("--executor", choices=("local", "ray"), default="local", help="run models here, or one Ray task per model")
    parser.add_argument("--ray-address", default=None, help="Ray cluster to connect to (default: RAY_ADDRESS, else a new local Ray)")
    parser.add_argument("--max-retries", type=int, default=2, help="retries of a Ray task whose worker died (default 2)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _add_cache_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=str(default_cache_dir()), help="evidence cache (default: %(default)s; env CONFORMANCE_CACHE_DIR)")
    parser.add_argument("--no-cache", action="store_true", help="measure everything again; do not read or write the cache")


def _device(text: str) -> str:
    if not is_device_choice(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, cpu, cuda or cuda:N")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The `conformance` argument parser: one subcommand per command, each with its handler as `handler`."""
    parser = argparse.ArgumentParser(prog="conformance", description="Check language models against written standards.")
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="check models against a spec", description="Check models against a spec.")
    _add_model_run_options(check, "folder for <model>.json and <model>.md (default: reports)")
    check.add_argument("--only", nargs="+", metavar="RULE_ID", help="run only these rules")
    check.set_defaults(handler=cmd_check)

    board = commands.add_parser("leaderboard", help="check models and write a leaderboard (html, md, csv, plots)")
    _add_model_run_options(board, "folder for leaderboard.html/.md/.csv, plots/ and results/ (default: reports)")
    board.add_argument("--fresh", action="store_true", help="do not reuse result documents already in OUT/results")
    board.set_defaults(handler=cmd_leaderboard)

    report = commands.add_parser("report", help="rebuild the leaderboard from stored result documents (no model is loaded)")
    report.add_argument("results", nargs="+", metavar="RESULT", help="result documents (.json) written by check or leaderboard")
    report.add_argument("--out", default="reports", help="output folder (default: reports)")
    report.set_defaults(handler=cmd_report)

    diff = commands.add_parser("diff", help="rule status changes and metric deltas between two result documents")
    diff.add_argument("base", metavar="BASE")
    diff.add_argument("new", metavar="NEW")
    diff.set_defaults(handler=cmd_diff)

    validate = commands.add_parser("validate", help="validate spec files and model cards (README.md)")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(handler=cmd_validate)

    rules = commands.add_parser("rules", help="list the check catalogue")
    rules.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    rules.set_defaults(handler=cmd_rules)
    add_scan_parser(commands)
    demo = commands.add_parser("demo", help="build tiny example models offline and check them (the quick start)")
    demo.add_argument("--out", default="reports", help="output folder (default: reports)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` (default sys.argv[1:]) and return the exit status.

    0 conformant, 1 a must rule broke, 2 a bad request (one line on stderr, never a traceback), 130 interrupted.
    Argument errors exit through argparse with status 2.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except RequestError as exc:
        print(f"conformance: error: {exc}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    except KeyboardInterrupt:
        print("conformance: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
