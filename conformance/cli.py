"""Command line only: parse, call the API, print, exit code (0 conformant, 1 a must rule broke, 2 bad request).

Every subcommand takes `-q` (print nothing but `conformance: error:` lines; files are still written, the
exit code tells the result). What other libraries print while models are measured (lm-eval's and
transformers' logging, their progress bars, warnings, git) goes to OUT/conformance.log, never the terminal.
A reader that goes away (`| head`) ends the command quietly with status 141, as a shell reports SIGPIPE.

What building the parser needs is imported here; each command's machinery (the spec loader with its schema and
every check, the runner, the reports) is imported by its handler, so `--help`, `--version` and `conformance
scan` start without paying for jsonschema, PyYAML, regex and the check catalogue (about 0.9 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import DISTRIBUTION, __version__
from .check_command import check_models, say, shown, third_party_log, writable_folder
from .console import silence_stdout, third_party_output
from .demo import DEMO_STANDARD, build_demo_zoo, demo_outcome
from .errors import RequestError
from .options import LOAD_DTYPES, is_device_choice
from .paths import default_cache_dir
from .scan_command import add_scan_parser

EXIT_CONFORMANT, EXIT_NONCONFORMANT, EXIT_BAD_REQUEST = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `yes | head`


def _exit_code(documents: list[dict[str, Any]]) -> int:
    from .result_document import ResultDocument

    return EXIT_CONFORMANT if all(ResultDocument(d).conformant for d in documents) else EXIT_NONCONFORMANT


def cmd_check(args: argparse.Namespace) -> int:
    """`conformance check`: judge each model, write <model>.json and .md, print tables; exit 0, or 1 if a must rule broke."""
    return _exit_code(check_models(args, Path(args.out), print_tables=True))


def _write_board(args: argparse.Namespace, documents: list[dict[str, Any]], out: Path, log: Path) -> None:
    """Write the leaderboard into `out`; what matplotlib and others warn meanwhile goes to `log`, not the terminal."""
    from .report.leaderboard import write_leaderboard
    from .result_document import ResultDocument

    with third_party_output(log):
        written = write_leaderboard(documents, out)
    for document in documents:
        summary = ResultDocument(document).summary
        verdict = "conformant" if summary.conformant else "NOT conformant"
        say(args, f"{shown(document['model']['name'])}: {verdict} ({summary.passed} passed, {summary.failed} failed, {summary.errors} errors)")
    say(args, f"wrote {len(written)} files; open {out / 'leaderboard.html'} in a browser")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """`conformance leaderboard`: check every model (reusing OUT/results unless --fresh), then write the board.

    Returns 0 when every model is conformant, else 1.
    """
    out = Path(args.out)
    writable_folder(out)  # before any probe runs
    with third_party_log(args, out) as log:
        documents = check_models(args, out / "results", print_tables=False, resume=not args.fresh, log=log)
        _write_board(args, documents, out, log)
    return _exit_code(documents)


def cmd_report(args: argparse.Namespace) -> int:
    """`conformance report`: rebuild the leaderboard from stored result documents (no model is loaded); returns 0."""
    from .results import load_result

    documents = [load_result(Path(path)) for path in args.results]
    out = Path(args.out)
    writable_folder(out)
    with third_party_log(args, out) as log:
        _write_board(args, documents, out, log)
    return EXIT_CONFORMANT


def cmd_diff(args: argparse.Namespace) -> int:
    """`conformance diff`: print rule changes and metric deltas; 1 when a must rule newly fails, else 0."""
    from .report.diff import diff_documents
    from .results import load_result

    diff = diff_documents(load_result(Path(args.base)), load_result(Path(args.new)))
    say(args, diff.render_text())
    return EXIT_NONCONFORMANT if diff.newly_failing_must else EXIT_CONFORMANT


def cmd_validate(args: argparse.Namespace) -> int:
    """`conformance validate`: specs, model cards (.md) and model folders; `ok:` lines, or every problem.

    Returns 2 when any file is invalid, else 0.
    """
    from .validate_command import validate_path

    failed = False
    for name in args.files:
        try:
            found = validate_path(name)
        except RequestError as exc:
            found_ok, problems = [], str(exc).splitlines()
        else:
            found_ok, problems = found.ok, found.problems
        say(args, *found_ok)
        for problem in problems:
            print(f"conformance: error: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
    return EXIT_BAD_REQUEST if failed else EXIT_CONFORMANT


def cmd_rules(args: argparse.Namespace) -> int:
    """`conformance rules`: print the check catalogue as text, JSON or the README's Markdown table; returns 0."""
    from .catalogue import all_checks
    from .schema import catalogue_markdown, catalogue_markdown_params

    checks = all_checks()
    if args.quiet:
        return EXIT_CONFORMANT  # as `grep -q`: the catalogue loaded, nothing to say
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
    writable_folder(out)  # before the zoo is built
    quiet = ["-q"] if args.quiet else []
    models = build_demo_zoo(out / "demo-models", log=lambda message: say(args, message, error=True))
    code = main(["leaderboard", *map(str, models), "--spec", DEMO_STANDARD, "--out", str(out), *quiet])
    with open(os.devnull, "w") if args.quiet else contextlib.nullcontext(sys.stdout) as stream:
        with contextlib.redirect_stdout(stream):
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


def _add_cache_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=str(default_cache_dir()), help="evidence cache (default: %(default)s; env CONFORMANCE_CACHE_DIR)")
    parser.add_argument("--no-cache", action="store_true", help="measure everything again; do not read or write the cache")


def _rule_ids(text: str) -> list[str]:
    """`--only` takes one value per use, comma-separated ids allowed: it never swallows the MODEL after it."""
    ids = [part.strip() for part in text.split(",")]
    if not all(ids):
        raise argparse.ArgumentTypeError(f"{text!r}: an empty rule id (write --only A,B)")
    return ids


def _common_options() -> argparse.ArgumentParser:
    """The options every subcommand takes (`parents=`): -q."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true",
        help="print nothing but error lines; files are still written and the exit code tells the result",
    )
    return common


def _device(text: str) -> str:
    if not is_device_choice(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, cpu, cuda or cuda:N")
    return text


def _add_result_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """`export` and `card` (results other tools read), with the shared -q."""
    from .cli_results import add_parsers

    add_parsers(commands, common)


def build_parser() -> argparse.ArgumentParser:
    """The `conformance` argument parser: one subcommand per command, each with its handler as `handler`."""
    parser = argparse.ArgumentParser(prog="conformance", description="Check language models against written standards.")
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()

    check = commands.add_parser("check", parents=[common], help="check models against a spec", description="Check models against a spec.")
    _add_model_run_options(check, "folder for <model>.json and <model>.md (default: reports)")
    check.add_argument(
        "--only", action="extend", type=_rule_ids, metavar="RULE_ID[,RULE_ID...]",
        help="run only these rules (repeat --only or separate ids with commas)",
    )
    check.set_defaults(handler=cmd_check)

    board = commands.add_parser("leaderboard", parents=[common], help="check models and write a leaderboard (html, md, csv, plots)")
    _add_model_run_options(board, "folder for leaderboard.html/.md/.csv, plots/ and results/ (default: reports)")
    board.add_argument("--fresh", action="store_true", help="do not reuse result documents already in OUT/results")
    board.set_defaults(handler=cmd_leaderboard)

    report = commands.add_parser("report", parents=[common], help="rebuild the leaderboard from stored result documents (no model is loaded)")
    report.add_argument("results", nargs="+", metavar="RESULT", help="result documents (.json) written by check or leaderboard")
    report.add_argument("--out", default="reports", help="output folder (default: reports)")
    report.set_defaults(handler=cmd_report)

    diff = commands.add_parser("diff", parents=[common], help="rule status changes and metric deltas between two result documents")
    diff.add_argument("base", metavar="BASE")
    diff.add_argument("new", metavar="NEW")
    diff.set_defaults(handler=cmd_diff)

    validate = commands.add_parser("validate", parents=[common], help="validate spec files, model cards (README.md) and model folders")
    validate.add_argument("files", nargs="+", metavar="FILE", help="a spec file or shipped standard, a model card (.md), or a model folder")
    validate.set_defaults(handler=cmd_validate)

    rules = commands.add_parser("rules", parents=[common], help="list the check catalogue")
    rules.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    rules.set_defaults(handler=cmd_rules)
    add_scan_parser(commands)  # scan defines its own -q, of the same meaning
    _add_result_commands(commands, common)
    demo = commands.add_parser("demo", parents=[common], help="build tiny example models offline and check them (the quick start)")
    demo.add_argument("--out", default="reports", help="output folder (default: reports)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` (default sys.argv[1:]) and return the exit status.

    0 conformant, 1 a must rule broke, 2 a bad request (one `conformance: error:` line per problem on
    stderr, never a traceback), 130 interrupted, 141 the reader of stdout went away. Argument errors exit
    through argparse with status 2.
    """
    args = build_parser().parse_args(argv)
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return code
    except RequestError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"conformance: error: {line}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    except BrokenPipeError:
        silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # the last resort: a file that could not be written or read, as one line, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"conformance: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    except KeyboardInterrupt:
        print("conformance: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
