"""`conformance scan PATH...`: the serialization scan of files or folders, without a spec.

Resolves the paths (a file is scanned alone, its folder as the root, no sibling read; a folder is
scanned whole, links out of it reported and never followed), runs the scan one file at a time
(progress on a terminal), and renders text, JSON, SARIF 2.1.0 or CycloneDX 1.6. Exit codes: 0 clean,
1 findings, 2 bad request. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from . import hub
from .console import silence_stdout
from .errors import RequestError
from .report.scan_rules import clean_text, counts_as_finding, rule_id

EXIT_CLEAN, EXIT_FINDINGS, EXIT_BAD_REQUEST = 0, 1, 2
FORMATS = ("text", "json", "sarif", "cyclonedx")
MAX_FILES_PER_PATH = 100_000  # files listed under one folder; more is reported as an error, never silently dropped
TEXT_LIMIT = 300  # characters of a global, member or detail on a terminal line
PROGRESS_INTERVAL_S = 0.2


@dataclass(frozen=True)
class ScanTarget:
    """One PATH argument: the root folder the scan is confined to, and the file under it (None: the whole folder)."""

    argument: str
    root: Path  # absolute, not resolved: the user's view of the path
    file: str | None
    prefix: str  # root relative to the report's base folder, posix ("" when they are the same)


@dataclass
class ScanReport:
    """Everything the renderers need; `files` and `findings` carry report paths (relative to `base`)."""

    base: Path
    targets: list[ScanTarget]
    scanner: str
    files: list[Any]  # ScannedFile, `file` rewritten to the report path
    findings: list[Any]  # ScanFinding, `file` rewritten to the report path
    allow_unknown: bool
    started: dt.datetime
    seconds: float
    sources: dict[str, tuple[Path, str]] = field(default_factory=dict)  # report path -> (root, path relative to root)

    def counts(self) -> dict[str, int]:
        """Findings per severity, plus `counted`: those that fail the scan under the --allow-unknown choice."""
        result = {"dangerous": 0, "unknown": 0, "error": 0}
        for finding in self.findings:
            result[finding.severity] = result.get(finding.severity, 0) + 1
        result["counted"] = sum(counts_as_finding(f.severity, self.allow_unknown) for f in self.findings)
        return result

    @property
    def exit_code(self) -> int:
        """The command's exit status: EXIT_FINDINGS (1) when any finding fails the scan, else EXIT_CLEAN (0)."""
        return EXIT_FINDINGS if self.counts()["counted"] else EXIT_CLEAN


# ---------------------------------------------------------------------------------------------
# Resolving the request
# ---------------------------------------------------------------------------------------------


def resolve_targets(arguments: list[str], relative_to: str | None = None) -> tuple[Path, list[ScanTarget]]:
    """The report's base folder and one target per PATH; RequestError for an empty, missing, unreadable or special path.

    Nothing is opened here except a folder's listing (to prove it is readable): a PATH that is a
    FIFO or device is refused from its stat alone.
    """
    roots: list[tuple[str, Path, str | None]] = []
    for argument in arguments:
        if not argument:
            raise RequestError("PATH is empty; name a file or folder (. for the current folder)")
        path = Path(os.path.abspath(argument))
        try:
            mode = os.stat(path).st_mode  # follows a link the user named: their choice of root
        except FileNotFoundError:
            raise RequestError(f"{argument}: not found" + (" (a broken symbolic link)" if os.path.islink(path) else "")) from None
        except OSError as exc:
            raise RequestError(f"{argument}: cannot be read: {exc.strerror}") from None
        if stat.S_ISDIR(mode):
            try:
                with os.scandir(path):
                    pass
            except OSError as exc:
                raise RequestError(f"{argument}: folder cannot be listed: {exc.strerror}") from None
            roots.append((argument, path, None))
        elif stat.S_ISREG(mode):
            if not os.access(path, os.R_OK):
                raise RequestError(f"{argument}: file is not readable")
            roots.append((argument, path.parent, path.name))
        else:
            raise RequestError(f"{argument}: not a regular file or folder (a pipe, socket or device is never opened)")
    if relative_to is not None:
        if not relative_to:
            raise RequestError("--relative-to is empty; name a folder (. for the current folder)")
        base = Path(os.path.abspath(relative_to))
        if not base.is_dir():
            raise RequestError(f"--relative-to {relative_to}: not a folder")
    else:
        base = Path(os.path.commonpath([str(root) for _, root, _ in roots]))
    targets = []
    for argument, root, file in roots:
        prefix = os.path.relpath(root, base)
        if prefix == ".." or prefix.startswith(".." + os.sep):
            raise RequestError(f"{argument}: not inside --relative-to {relative_to}")
        targets.append(ScanTarget(argument, root, file, "" if prefix == "." else PurePosixPath(*Path(prefix).parts).as_posix()))
    return base, targets


def list_folder(root: Path, max_files: int = MAX_FILES_PER_PATH) -> tuple[list[str], list[tuple[str, str]]]:
    """Every file under `root` (posix, relative, sorted) and every symlink; and (path, problem) for what could not be listed.

    Links are never followed: a link to a folder inside `root` is skipped (its target is walked on
    its own; following it could loop); other links are listed so the scan reports them.
    """
    real_root = Path(os.path.realpath(root))
    names: list[str] = []
    problems: list[tuple[str, str]] = []

    def unlistable(exc: OSError) -> None:
        where = os.path.relpath(exc.filename, root) if exc.filename else "."
        problems.append((Path(where).as_posix(), f"folder cannot be listed: {exc.strerror}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
            full = here / name
            if full.is_symlink():
                target = Path(os.path.realpath(full))
                if target.is_dir() and (target == real_root or real_root in target.parents):
                    continue
            names.append(full.relative_to(root).as_posix())
            if len(names) >= max_files:
                problems.append((".", f"more than {max_files} files; the rest were not scanned"))
                return sorted(names), problems
    return sorted(names), problems


# ---------------------------------------------------------------------------------------------
# Running the scan
# ---------------------------------------------------------------------------------------------


class _Progress:
    """A single rewritten line on a terminal: files done of files listed, and the file being scanned."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream, self.total, self.done, self.shown_at = stream, total, 0, 0.0

    def step(self, name: str) -> None:
        self.done += 1
        now = time.monotonic()
        if self.stream is None or now - self.shown_at < PROGRESS_INTERVAL_S:
            return
        self.shown_at = now
        self.stream.write(f"\r\x1b[Kscanning {self.done}/{self.total} {clean_text(name, 80, for_terminal=True)}")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.shown_at:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run_scan(
    base: Path,
    targets: list[ScanTarget],
    allow_unknown: bool = False,
    progress: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ScanReport:
    """Scan every target; a file reached twice (a file PATH inside a folder PATH) is scanned once.

    `progress` is a stream for a one-line progress display (pass a terminal only). Raises nothing for
    a hostile file: what cannot be scanned is an "error" finding of that file.
    """
    from .probes.scan import ScanBudget, ScanFinding, scan_file, scanner_description

    started, start = dt.datetime.now(dt.timezone.utc), clock()
    work: list[tuple[ScanTarget, str]] = []
    findings: list[Any] = []
    for target in targets:
        if target.file is not None:
            work.append((target, target.file))
            continue
        names, problems = list_folder(target.root)
        work.extend((target, name) for name in names)
        for where, problem in problems:
            findings.append(ScanFinding(_report_path(target, where), None, "", "error", problem))

    report = ScanReport(base, targets, scanner_description(), [], findings, allow_unknown, started, 0.0)
    bar = _Progress(progress, len(work))
    budget = ScanBudget.start()  # one opcode and seconds budget for the whole command; identical files scanned once
    try:
        for target, name in work:
            shown = _report_path(target, name)
            if shown in report.sources:
                continue
            bar.step(shown)
            report.sources[shown] = (target.root, name)
            try:
                # A hub cache snapshot's links lead into its own repository's blobs/, and only there.
                roots = hub.link_roots(Path(os.path.realpath(target.root)))
                scanned, file_findings = scan_file(target.root, name, budget=budget, link_roots=roots)
            except Exception as exc:  # a scanner bug on one hostile file fails that file closed; the scan goes on
                scanned = _unscanned(name)
                file_findings = [ScanFinding(name, None, "", "error", f"scan failed: {type(exc).__name__}: {clean_text(exc, 300)}")]
            report.files.append(_with_file(scanned, shown))
            report.findings.extend(_with_file(finding, shown) for finding in file_findings)
    finally:
        bar.close()
    report.seconds = clock() - start
    return report


def _unscanned(name: str) -> Any:
    from .probes.scan import ScannedFile

    return ScannedFile(name, "other", 0, [])


def _report_path(target: ScanTarget, name: str) -> str:
    if name in ("", "."):
        return target.prefix or "."
    return f"{target.prefix}/{name}" if target.prefix else name


def _with_file(record: Any, shown: str) -> Any:
    # The scan's records are dataclasses whose fields may grow; replace keeps every field it has.
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.replace(record, file=shown)
    return record


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def record_dict(record: Any) -> dict[str, Any]:
    """A scan record (finding or file) as a JSON-safe dict, every field it has, untrusted text cleaned."""
    raw = dataclasses.asdict(record) if dataclasses.is_dataclass(record) and not isinstance(record, type) else dict(vars(record))
    return _json_safe(raw)


def _json_safe(value: Any, depth: int = 0) -> Any:
    if depth > 16:
        return clean_text(repr(value), 200)
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, dict):
        return {clean_text(k, 200): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_json_safe(v, depth + 1) for v in items]
    return clean_text(value)


def summary_dict(report: ScanReport) -> dict[str, Any]:
    """The JSON report's `summary`: file, pickle and finding counts (ints), the exit code and the wall time in seconds.

    Keys: files, pickles_scanned, findings, dangerous, unknown, errors, failing_findings (those that fail
    the scan under `allow_unknown`), allow_unknown, exit_code, seconds (rounded to milliseconds).
    """
    counts = report.counts()
    return {
        "files": len(report.files),
        "pickles_scanned": sum(int(getattr(f, "pickles_scanned", 0) or 0) for f in report.files),
        "findings": len(report.findings),
        "dangerous": counts.get("dangerous", 0),
        "unknown": counts.get("unknown", 0),
        "errors": counts.get("error", 0),
        "failing_findings": counts["counted"],
        "allow_unknown": report.allow_unknown,
        "exit_code": report.exit_code,
        "seconds": round(report.seconds, 3),
    }


def render_json(report: ScanReport) -> str:
    """The scan as one JSON document: tool, targets, summary, files and findings (with their rule ids)."""
    from .report.sarif import tool_version

    document = {
        "tool": {"name": "conformance", "version": tool_version()},
        "scanner": report.scanner,
        "base": clean_text(str(report.base)),
        "targets": [{"path": clean_text(t.argument), "kind": "folder" if t.file is None else "file",
                     "root": clean_text(t.prefix or ".")} for t in report.targets],
        "started": report.started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "summary": summary_dict(report),
        "files": [record_dict(f) for f in report.files],
        "findings": [{**record_dict(f), "rule": rule_id(f), "counts": counts_as_finding(f.severity, report.allow_unknown)}
                     for f in report.findings],
    }
    return _dumps(document)


def finding_line(finding: Any, allow_unknown: bool) -> str:
    """One terminal line: severity, file, member, global and the reason, every untrusted part escaped and bounded."""
    label = finding.severity.upper() + ("" if counts_as_finding(finding.severity, allow_unknown) else " (allowed)")
    parts = [f"{label:<17}", clean_text(finding.file, TEXT_LIMIT, for_terminal=True)]
    if finding.member:
        parts.append(f"member={clean_text(finding.member, TEXT_LIMIT, for_terminal=True)}")
    if finding.global_name:
        parts.append(f"global={clean_text(finding.global_name, TEXT_LIMIT, for_terminal=True)}")
    return "  ".join(parts) + f"  ({clean_text(finding.detail, TEXT_LIMIT, for_terminal=True)})"


def summary_line(report: ScanReport) -> str:
    """The closing terminal line: files and pickles scanned, seconds taken, counts per severity and the verdict.

    For example `scanned 3 files (2 pickles) in 0.01 s: 0 dangerous, 1 unknown, 0 errors: 1 failing`.
    """
    s = summary_dict(report)
    verdict = "clean" if s["exit_code"] == EXIT_CLEAN else f"{s['failing_findings']} failing"
    return (f"scanned {_count(s['files'], 'file')} ({_count(s['pickles_scanned'], 'pickle')}) in {report.seconds:.2f} s: "
            f"{s['dangerous']} dangerous, {s['unknown']} unknown{' (allowed)' if report.allow_unknown else ''}, "
            f"{_count(s['errors'], 'error')}: {verdict}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def render_text(report: ScanReport) -> str:
    """The terminal report: one `finding_line` per finding, then the `summary_line`, newline-terminated."""
    lines = [finding_line(f, report.allow_unknown) for f in report.findings]
    return "\n".join([*lines, summary_line(report)]) + "\n"


def _dumps(document: Any) -> str:
    # ASCII with \u escapes: valid JSON whatever the encoding of the terminal or pipe it is printed to.
    return json.dumps(document, indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def render(report: ScanReport, form: str) -> str:
    """The report in `form` (one of FORMATS) as text ready to write."""
    if form == "json":
        return render_json(report)
    if form == "sarif":
        from .report.sarif import render_sarif

        return _dumps(render_sarif(report))
    if form == "cyclonedx":
        from .report.cyclonedx import render_cyclonedx

        return _dumps(render_cyclonedx(report))
    return render_text(report)


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


STDOUT_NAME = "-"  # `-o -` writes the report to stdout, as without -o


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_output(path: Path) -> None:
    """RequestError unless a report may be written at `path`: a new name in an existing folder, or a regular file.

    An existing symbolic link, folder, device, FIFO or socket is refused, never replaced or written
    through: renaming over `/dev/null` or a link would destroy it, and writing into a FIFO could block.
    The name is examined itself (lstat), never the target of a link. Stdout is `-o -`.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise RequestError(f"-o {path}: cannot be examined: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise RequestError(f"-o {path}: is {_file_kind(mode)}; only a regular file is replaced "
                           f"(for stdout use -o {STDOUT_NAME} or leave out -o)")
    if not path.parent.is_dir():
        raise RequestError(f"-o {path}: folder {path.parent} does not exist")


def write_output(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temporary file beside it, then rename), mode 0666 less the umask.

    The mode is that of a new file whatever `path` held before, as `conformance scan` has always done.
    RequestError as `check_output`, checked again just before the rename because the scan may have
    taken minutes: a link or special file put there meanwhile is refused, the temporary file removed.
    A reader never sees half a report.
    """
    from .atomic_write import write_atomic

    check_output(path)
    try:
        write_atomic(path, text, before_replace=lambda: check_output(path))
    except OSError as exc:
        raise RequestError(f"-o {path}: cannot write: {exc.strerror}") from None


def _emit(text: str) -> bool:
    """Print to stdout; False when the reader went away (`conformance scan X | head`)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        # A file name shown in text output may not exist in a non-UTF-8 terminal's charset: escape, never crash.
        sys.stdout.write(text.encode(encoding, "backslashreplace").decode(encoding))
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def add_scan_parser(commands: Any) -> None:
    """Register `scan` on the CLI's subparsers."""
    scan = commands.add_parser(
        "scan", help="scan model files or folders for unsafe serialization (no spec needed)",
        description="Scan files or folders for pickles that run code, unknown globals and unscannable files. "
                    "Exit 0 clean, 1 findings, 2 bad request. Nothing is loaded or unpickled.",
    )
    scan.add_argument("paths", nargs="+", metavar="PATH", help="a file (scanned alone) or a folder (every file under it)")
    scan.add_argument("--format", choices=FORMATS, default="text", help="report format (default: text)")
    scan.add_argument("-o", "--output", metavar="FILE", default=None, help="write the report to FILE (atomically) instead of stdout; FILE must be new or a regular file "
                           "(a link, device or FIFO is refused); - is stdout")
    scan.add_argument("--allow-unknown", action="store_true",
                      help="globals off the allowlist are shown but do not fail the scan (dangerous and errors still do)")
    scan.add_argument("--relative-to", metavar="DIR", default=None,
                      help="report paths relative to DIR (default: the folder common to every PATH); "
                           "use the repository root for GitHub code scanning")
    scan.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors; the exit code tells the result")
    scan.set_defaults(handler=cmd_scan)


def cmd_scan(args: Any) -> int:
    """Run `conformance scan`; returns the exit code (RequestError propagates to the CLI's handler: exit 2)."""
    base, targets = resolve_targets(args.paths, args.relative_to)
    if args.output == "":
        raise RequestError(f"-o is empty; name a file (or {STDOUT_NAME} for stdout)")
    output = Path(args.output) if args.output not in (None, STDOUT_NAME) else None
    if output is not None:
        check_output(output)  # before minutes of scanning, not after
    progress = sys.stderr if not args.quiet and _is_terminal(sys.stderr) else None
    report = run_scan(base, targets, allow_unknown=args.allow_unknown, progress=progress)
    text = render(report, args.format)
    if output is not None:
        write_output(output, text)
        if not args.quiet:
            _emit(summary_line(report) + f"; wrote {output}\n")
    elif not args.quiet:
        _emit(text)
    return report.exit_code


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
