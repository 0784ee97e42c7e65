"""Command line only: parse, call the API, print, exit code (0 conformant, 1 a must rule broke, 2 bad request)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from . import __version__
from .errors import RequestError

EXIT_CONFORMANT, EXIT_NONCONFORMANT, EXIT_BAD_REQUEST = 0, 1, 2


def _output_names(names: list[str]) -> list[str]:
    """File-safe, unique stems for each model's outputs."""
    stems: list[str] = []
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
        unique, index = stem, 2
        while unique in stems:
            unique, index = f"{stem}-{index}", index + 1
        stems.append(unique)
    return stems


def cmd_check(args: argparse.Namespace) -> int:
    from .candidate import Candidate
    from .probes.load import LoadOptions
    from .progress import progress_for
    from .report.markdown import render_markdown
    from .report.terminal import render_table
    from .results import write_atomic, write_result
    from .runner import RunOptions, run
    from .spec import load_spec

    spec = load_spec(args.spec)
    spec.select(args.only)  # reject unknown --only ids before any model is opened
    candidates = [Candidate(path) for path in args.models]
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    if args.quiet or not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's and transformers' bars: only on a terminal
    options = RunOptions(
        only=args.only,
        hash_weights=args.hash_weights,
        load=LoadOptions(device=args.device, dtype=args.dtype, device_map_auto=args.device_map_auto),
        require_device=args.require_device,
        cache_dir=None if args.no_cache else Path(args.cache_dir),
        log=log,
        progress=progress_for(args.quiet),
    )
    out = Path(args.out)
    exit_code = EXIT_CONFORMANT
    for candidate, stem in zip(candidates, _output_names([c.name for c in candidates]), strict=True):
        result = run(candidate, spec, options)
        document = result.to_document()
        write_result(document, out / f"{stem}.json")
        write_atomic(out / f"{stem}.md", render_markdown(document))
        print(render_table(document))
        print(f"wrote {out / (stem + '.json')} and {stem}.md\n")
        if not result.conformant:
            exit_code = EXIT_NONCONFORMANT
    return exit_code


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
    from .registry import all_checks
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
    from .demo import run_demo

    return run_demo(Path(args.out))


def _add_cache_options(parser: argparse.ArgumentParser) -> None:
    from .cache import default_cache_dir

    parser.add_argument("--cache-dir", default=str(default_cache_dir()), help="evidence cache (default: %(default)s; env CONFORMANCE_CACHE_DIR)")
    parser.add_argument("--no-cache", action="store_true", help="measure everything again; do not read or write the cache")


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, cpu, cuda or cuda:N")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conformance", description="Check language models against written standards.")
    parser.add_argument("--version", action="version", version=f"conformance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="check models against a spec", description="Check models against a spec.")
    check.add_argument("models", nargs="+", metavar="MODEL", help="model folder in Hugging Face layout")
    check.add_argument("--spec", required=True, help="spec file, or the name of a shipped standard")
    check.add_argument("--out", default="reports", help="folder for <model>.json and <model>.md (default: reports)")
    check.add_argument("--only", nargs="+", metavar="RULE_ID", help="run only these rules")
    check.add_argument(
        "--hash-weights", choices=("auto", "always", "never"), default="auto",
        help="sha256 of the weights for the result's identity: auto hashes up to 2 GiB or when a rule needs it",
    )
    check.add_argument("--device", default="auto", type=_device, help="auto | cpu | cuda | cuda:N (default auto: cuda when present)")
    check.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"), help="weights dtype for runtime rules")
    check.add_argument("--device-map-auto", action="store_true", help="spread a model too large for one device (accelerate)")
    check.add_argument("--require-device", action="store_true", help="a rule for a device this machine lacks errors instead of skipping")
    _add_cache_options(check)
    check.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    check.set_defaults(handler=cmd_check)

    validate = commands.add_parser("validate", help="validate spec files and model cards (README.md)")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(handler=cmd_validate)

    rules = commands.add_parser("rules", help="list the check catalogue")
    rules.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    rules.set_defaults(handler=cmd_rules)
    demo = commands.add_parser("demo", help="build tiny example models offline and check them (the quick start)")
    demo.add_argument("--out", default="reports", help="output folder (default: reports)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
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
