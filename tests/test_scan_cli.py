"""`conformance scan PATH...`: exit codes, file and folder targets, text, JSON, SARIF 2.1.0 and CycloneDX 1.6 output.

Malicious inputs are pickles assembled byte by byte (conformance.zoo.hostile); their payload only tries to
create a canary file, and every test that builds one asserts the canary never appears. The SARIF and
CycloneDX schemas are the official ones, vendored gzipped under tests/data (sources in tests/data/README.md).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource

from conformance import scan_command
from conformance.cli import main
from conformance.probes import scan as scan_module
from conformance.probes.hashes import SPARSE_MIN_BYTES
from conformance.report.cyclonedx import HashBudget, sha256_bounded
from conformance.scan_command import list_folder
from conformance.zoo.hostile import malicious_pickle

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


def _schema(name: str) -> dict:
    return json.loads(gzip.decompress((DATA / name).read_bytes()))


def safetensors_bytes() -> bytes:
    """A valid one-tensor safetensors file (F32 [2]), written by hand: 8-byte header length, JSON header, data."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * 8


def unknown_pickle() -> bytes:
    """{"args": argparse.Namespace()}: a global torch's weights-only loader refuses, though it runs no code."""
    return b"\x80\x02}X\x04\x00\x00\x00argscargparse\nNamespace\n)\x81s."


@pytest.fixture
def canary(tmp_path: Path):
    path = tmp_path / "canary-created-by-payload"
    yield path
    assert not path.exists(), "a malicious payload ran"


@pytest.fixture
def clean_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(safetensors_bytes())
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return folder


@pytest.fixture
def evil_dir(tmp_path: Path, canary: Path) -> Path:
    """A raw malicious pytorch_model.bin and a zip checkpoint whose archive/data.pkl is malicious."""
    folder = tmp_path / "evil"
    (folder / "nested").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(safetensors_bytes())
    (folder / "pytorch_model.bin").write_bytes(malicious_pickle(canary))
    with zipfile.ZipFile(folder / "nested" / "checkpoint.pt", "w") as archive:
        archive.writestr("archive/data.pkl", malicious_pickle(canary))
        archive.writestr("archive/version", "3\n")
    return folder


def scan(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["scan", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def scan_json(capsys, *args: str) -> tuple[int, dict]:
    code, out, _ = scan(capsys, *args, "--format", "json")
    return code, json.loads(out)


# ---------------------------------------------------------------------------------------------
# Exit codes and targets
# ---------------------------------------------------------------------------------------------


def test_clean_folder_exits_0_with_summary(clean_dir: Path, capsys) -> None:
    code, out, err = scan(capsys, str(clean_dir))
    assert code == 0
    assert out.splitlines()[-1].startswith("scanned 2 files (0 pickles) in ")
    assert out.rstrip().endswith("0 dangerous, 0 unknown, 0 errors: clean")
    assert len(out.splitlines()) == 1 and err == ""  # no findings, no progress off a terminal


def test_malicious_folder_exits_1_one_line_per_finding(evil_dir: Path, capsys) -> None:
    code, out, _ = scan(capsys, str(evil_dir))
    lines = out.splitlines()
    assert code == 1
    assert lines[0].split()[:4] == ["DANGEROUS", "nested/checkpoint.pt", "member=archive/data.pkl", "global=builtins.open"]
    assert lines[0].endswith(")") and "(builtins.open" in lines[0]  # the scanner's reason, in parentheses
    assert lines[1].split()[:3] == ["DANGEROUS", "pytorch_model.bin", "global=builtins.open"]
    assert len(lines) == 3 and "2 dangerous, 0 unknown, 0 errors: 2 failing" in lines[2]
    assert "scanned 3 files (2 pickles)" in lines[2]


def test_file_path_scans_that_file_alone(evil_dir: Path, capsys) -> None:
    # Its siblings include a malicious pickle and a FIFO: reading either would show (a finding) or hang.
    os.mkfifo(evil_dir / "extra.bin")
    started = time.monotonic()
    code, document = scan_json(capsys, str(evil_dir / "model.safetensors"))
    assert time.monotonic() - started < 20
    assert code == 0
    assert [f["file"] for f in document["files"]] == ["model.safetensors"]
    assert document["files"][0]["format"] == "safetensors"
    assert document["findings"] == [] and document["targets"] == [{"path": str(evil_dir / "model.safetensors"), "kind": "file",
                                                                     "root": "."}]
    assert main(["scan", str(evil_dir / "pytorch_model.bin"), "-q"]) == 1


def test_symlink_out_of_folder_is_reported_never_followed(tmp_path: Path, clean_dir: Path, canary: Path, capsys) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "payload.pkl").write_bytes(malicious_pickle(canary))
    (clean_dir / "pytorch_model.bin").symlink_to(outside / "payload.pkl")
    (clean_dir / "weights").symlink_to(outside, target_is_directory=True)
    code, document = scan_json(capsys, str(clean_dir))
    assert code == 1
    assert {(f["file"], f["rule"], f["severity"]) for f in document["findings"]} == {
        ("pytorch_model.bin", "unsafe-path", "error"), ("weights", "unsafe-path", "error")}
    assert all(f["global_name"] == "" for f in document["findings"])  # the payload outside was never parsed


def test_a_folder_and_a_file_inside_it_scan_each_file_once(evil_dir: Path, capsys) -> None:
    code, document = scan_json(capsys, str(evil_dir), str(evil_dir / "pytorch_model.bin"))
    assert code == 1
    files = [f["file"] for f in document["files"]]
    assert sorted(files) == ["model.safetensors", "nested/checkpoint.pt", "pytorch_model.bin"]
    assert document["summary"]["dangerous"] == 2


def test_several_paths_are_shown_relative_to_their_common_folder(tmp_path: Path, canary: Path, capsys) -> None:
    for name in ("a", "b"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "pytorch_model.bin").write_bytes(malicious_pickle(canary))
    code, document = scan_json(capsys, str(tmp_path / "models" / "a"), str(tmp_path / "models" / "b" / "pytorch_model.bin"))
    assert code == 1
    assert [f["file"] for f in document["findings"]] == ["a/pytorch_model.bin", "b/pytorch_model.bin"]
    assert document["base"] == str(tmp_path / "models")
    assert [t["root"] for t in document["targets"]] == ["a", "b"]


def test_allow_unknown_shows_unknown_globals_but_exits_0(tmp_path: Path, canary: Path, capsys) -> None:
    folder = tmp_path / "args"
    folder.mkdir()
    (folder / "training_args.bin").write_bytes(unknown_pickle())
    code, out, _ = scan(capsys, str(folder))
    assert code == 1 and out.split()[:3] == ["UNKNOWN", "training_args.bin", "global=argparse.Namespace"]
    code, out, _ = scan(capsys, str(folder), "--allow-unknown")
    assert code == 0
    assert out.startswith("UNKNOWN (allowed)  training_args.bin  global=argparse.Namespace")
    assert "1 unknown (allowed), 0 errors: clean" in out
    (folder / "pytorch_model.bin").write_bytes(malicious_pickle(canary))  # dangerous always counts
    assert main(["scan", str(folder), "--allow-unknown", "-q"]) == 1
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02}X\x01\x00\x00\x00a")  # truncated: an error always counts
    assert main(["scan", str(folder), "--allow-unknown", "-q"]) == 1


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d: [str(d / "missing")], "missing: not found"),
        (lambda d: [str(d / "dangling")], "dangling: not found (a broken symbolic link)"),
        (lambda d: [str(d / "fifo")], "fifo: not a regular file or folder"),
        (lambda d: [str(d / "clean"), "-o", str(d / "no-such-folder" / "out.json")], "no-such-folder does not exist"),
        (lambda d: [str(d / "clean"), "-o", str(d)], "is a folder"),
        (lambda d: [str(d / "clean"), "--relative-to", str(d / "clean" / "config.json")], "not a folder"),
        (lambda d: [str(d / "clean"), "--relative-to", str(d / "fifo-parent")], "not inside --relative-to"),
    ],
)
def test_bad_requests_exit_2_without_scanning(tmp_path: Path, clean_dir: Path, make_args, message: str, capsys) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "fifo-parent").mkdir()
    code, out, err = scan(capsys, *make_args(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith("conformance: error: ") and message in err


@pytest.mark.parametrize("bad", [["--format", "xml"], ["--no-such-option"], []])
def test_bad_options_exit_2(clean_dir: Path, bad: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", *([str(clean_dir)] if bad else []), *bad])
    assert exit_info.value.code == 2
    assert "usage: conformance" in capsys.readouterr().err


def test_quiet_prints_nothing(evil_dir: Path, clean_dir: Path, capsys) -> None:
    assert scan(capsys, str(evil_dir), "-q") == (1, "", "")
    assert scan(capsys, str(clean_dir), "-q", "--format", "sarif") == (0, "", "")


# ---------------------------------------------------------------------------------------------
# Output file, pipes, progress, hostile names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_output_file_is_atomic_and_follows_the_umask(evil_dir: Path, tmp_path: Path, umask: int, mode: int, capsys) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    previous = os.umask(umask)
    try:
        code, out, _ = scan(capsys, str(evil_dir), "--format", "json", "-o", str(target))
    finally:
        os.umask(previous)
    assert code == 1
    assert json.loads(target.read_text())["summary"]["dangerous"] == 2
    assert target.stat().st_mode & 0o777 == mode
    assert out.startswith("scanned 3 files") and out.rstrip().endswith(f"wrote {target}")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


def _make_link_to_file(path: Path) -> None:
    (path.parent / "linked.txt").write_text("kept")
    path.symlink_to(path.parent / "linked.txt")


def _make_dangling_link(path: Path) -> None:
    path.symlink_to(path.parent / "nowhere")


def _make_socket(path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.close()  # the socket file stays on disk after close


def _make_null_device(path: Path) -> None:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is on Linux
    except PermissionError:
        pytest.skip("creating a device node needs root")


@pytest.mark.parametrize(
    ("make", "kind", "is_kind"),
    [
        (_make_fifo, "a FIFO", stat.S_ISFIFO),
        (_make_link_to_file, "a symbolic link", stat.S_ISLNK),
        (_make_dangling_link, "a symbolic link", stat.S_ISLNK),
        (_make_socket, "a socket", stat.S_ISSOCK),
        (_make_null_device, "a character device", stat.S_ISCHR),
    ],
)
def test_output_refuses_links_and_special_files_and_leaves_them_alone(evil_dir: Path, tmp_path: Path, make, kind: str,
                                                                      is_kind, capsys) -> None:
    target = tmp_path / "out"
    make(target)
    code, out, err = scan(capsys, str(evil_dir), "-o", str(target), "-q")
    assert code == 2 and out == ""
    assert f"-o {target}: is {kind}; only a regular file is replaced" in err
    assert is_kind(os.lstat(target).st_mode)  # still what it was, not a report
    if (tmp_path / "linked.txt").exists():
        assert (tmp_path / "linked.txt").read_text() == "kept"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_output_turned_into_a_link_during_the_scan_is_refused(evil_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    target = tmp_path / "report.json"
    scan_for_real = scan_command.run_scan

    def scan_then_swap(*args, **kwargs):
        report = scan_for_real(*args, **kwargs)
        target.symlink_to(tmp_path / "victim.txt")  # appears between the first check and the write
        return report

    (tmp_path / "victim.txt").write_text("kept")
    monkeypatch.setattr(scan_command, "run_scan", scan_then_swap)
    code, _, err = scan(capsys, str(evil_dir), "--format", "json", "-o", str(target))
    assert code == 2 and "is a symbolic link" in err
    assert target.is_symlink() and (tmp_path / "victim.txt").read_text() == "kept"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_output_dash_is_stdout(evil_dir: Path, capsys) -> None:
    code, out, _ = scan(capsys, str(evil_dir), "--format", "json", "-o", "-")
    assert code == 1 and json.loads(out)["summary"]["dangerous"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([""], "PATH is empty"),
        (["CLEAN", ""], "PATH is empty"),
        (["CLEAN", "--relative-to", ""], "--relative-to is empty"),
        (["CLEAN", "-o", ""], "-o is empty"),
    ],
)
def test_empty_arguments_exit_2_and_never_mean_the_current_folder(evil_dir: Path, clean_dir: Path, monkeypatch, args: list[str],
                                                                  message: str, capsys) -> None:
    monkeypatch.chdir(evil_dir)  # what an empty PATH used to scan: findings, exit 1
    code, out, err = scan(capsys, *[str(clean_dir) if a == "CLEAN" else a for a in args])
    assert code == 2 and out == ""
    assert err.startswith("conformance: error: ") and message in err


def test_broken_pipe_ends_without_traceback(evil_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "conformance", "scan", str(evil_dir), "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written, as with `| head -0`
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_scan_imports_neither_torch_nor_numpy(evil_dir: Path) -> None:
    code = (f"import sys; from conformance.cli import main; "
            f"codes = [main(['scan', {str(evil_dir)!r}, '-q', '--format', f]) for f in ('text', 'json', 'sarif', 'cyclonedx')]; "
            "print(codes, sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.strip() == "[1, 1, 1, 1] []", done.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_goes_to_stderr_only_on_a_terminal(evil_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("conformance.scan_command.PROGRESS_INTERVAL_S", 0.0)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code = main(["scan", str(evil_dir), "--format", "json"])
    assert code == 1
    assert "scanning 1/3 model.safetensors" in terminal.getvalue()
    assert "scanning" not in capsys.readouterr().out
    monkeypatch.setattr(sys, "stderr", _Terminal())
    main(["scan", str(evil_dir), "-q"])
    assert sys.stderr.getvalue() == ""  # -q: no progress either


def test_hostile_file_names_are_escaped(tmp_path: Path, canary: Path, capsys) -> None:
    folder = tmp_path / "names"
    folder.mkdir()
    raw_name = b"evil\x1b[2J\xff\xe2\x80\xae.bin"  # an ESC sequence, a byte that is not UTF-8, RIGHT-TO-LEFT OVERRIDE
    with open(os.path.join(os.fsencode(folder), raw_name), "wb") as handle:
        handle.write(malicious_pickle(canary))
    code, out, _ = scan(capsys, str(folder))
    assert code == 1
    assert "\x1b" not in out and "\u202e" not in out
    assert "evil\\x1b[2J\\xff\\u202e.bin" in out
    code, out, _ = scan(capsys, str(folder), "--format", "sarif")
    out.encode("utf-8")  # strict UTF-8: no lone surrogates
    uri = json.loads(out)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "evil%1B%5B2J%FF%E2%80%AE.bin"  # the file's own bytes, percent-encoded


def test_non_utf8_terminal_gets_escapes_not_a_traceback(tmp_path: Path, canary: Path) -> None:
    folder = tmp_path / "cjk"
    folder.mkdir()
    (folder / "\u6a21\u578b.bin").write_bytes(malicious_pickle(canary))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "latin-1", "OMP_NUM_THREADS": "1"}
    for form, expected in (("text", "\\u6a21\\u578b.bin"), ("json", '"\\u6a21\\u578b.bin"')):
        done = subprocess.run([sys.executable, "-m", "conformance", "scan", str(folder), "--format", form],
                              capture_output=True, env=env, timeout=300)
        assert done.returncode == 1 and b"Traceback" not in done.stderr, done.stderr
        assert expected.encode() in done.stdout
    assert json.loads(done.stdout)["findings"][0]["file"] == "\u6a21\u578b.bin"


def test_a_scanner_crash_on_one_file_fails_that_file_and_the_scan_goes_on(evil_dir: Path, monkeypatch, capsys) -> None:
    real_scan_file = scan_module.scan_file

    def scan_file(folder: Path, relative: str, budget=None, link_roots=()):
        if relative == "model.safetensors":
            raise MemoryError("hostile header")
        return real_scan_file(folder, relative)

    monkeypatch.setattr(scan_module, "scan_file", scan_file)
    code, document = scan_json(capsys, str(evil_dir))
    assert code == 1
    assert [(f["file"], f["rule"], f["detail"]) for f in document["findings"] if f["severity"] == "error"] == [
        ("model.safetensors", "scan-error", "scan failed: MemoryError: hostile header")]
    assert document["summary"]["files"] == 3 and document["summary"]["dangerous"] == 2


# ---------------------------------------------------------------------------------------------
# SARIF 2.1.0
# ---------------------------------------------------------------------------------------------


def test_sarif_validates_against_the_official_schema(evil_dir: Path, tmp_path: Path, capsys) -> None:
    (evil_dir / "training_args.bin").write_bytes(unknown_pickle())
    (evil_dir / "broken.pkl").write_bytes(b"\x80\x02}X\x01\x00")
    target = tmp_path / "scan.sarif"
    code, _, _ = scan(capsys, str(evil_dir), "--format", "sarif", "-o", str(target))
    assert code == 1
    log = json.loads(target.read_text())
    jsonschema.Draft4Validator(_schema("sarif-schema-2.1.0.json.gz")).validate(log)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "conformance" and driver["version"] == "0.1.0"
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert {"dangerous-global", "unknown-global", "scan-error", "parser-differential", "unsafe-path"} <= set(rule_ids)
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == evil_dir.as_uri() + "/"
    by_uri: dict[str, list[dict]] = {}
    for result in run["results"]:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert location["uriBaseId"] == "%SRCROOT%"
        assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}  # GitHub places alerts by line
        assert run["artifacts"][location["index"]]["location"]["uri"] == location["uri"]
        by_uri.setdefault(location["uri"], []).append(result)
    assert {u: [(r["ruleId"], r["level"]) for r in rs] for u, rs in by_uri.items()} == {
        "broken.pkl": [("scan-error", "error")],
        "nested/checkpoint.pt": [("dangerous-global", "error")],
        "pytorch_model.bin": [("dangerous-global", "error")],
        "training_args.bin": [("unknown-global", "warning")],
    }
    zipped = by_uri["nested/checkpoint.pt"][0]
    assert [(loc["name"], loc["kind"]) for loc in zipped["locations"][0]["logicalLocations"]] == [
        ("archive/data.pkl", "resource"), ("builtins.open", "function")]
    assert "builtins.open" in zipped["message"]["text"]
    fingerprints = {r["partialFingerprints"]["conformanceFinding/v1"] for r in run["results"]}
    assert len(fingerprints) == 4
    assert run["invocations"][0]["exitCode"] == 1 and run["invocations"][0]["executionSuccessful"] is True


def test_sarif_uris_relative_to_the_chosen_root(evil_dir: Path, tmp_path: Path, capsys) -> None:
    code, out, _ = scan(capsys, str(evil_dir / "nested"), "--format", "sarif", "--relative-to", str(tmp_path))
    assert code == 1
    run = json.loads(out)["runs"][0]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]] == ["evil/nested/checkpoint.pt"]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.as_uri() + "/"


def test_clean_sarif_has_no_results_and_validates(clean_dir: Path, capsys) -> None:
    code, out, _ = scan(capsys, str(clean_dir), "--format", "sarif")
    log = json.loads(out)
    jsonschema.Draft4Validator(_schema("sarif-schema-2.1.0.json.gz")).validate(log)
    assert code == 0 and log["runs"][0]["results"] == [] and len(log["runs"][0]["artifacts"]) == 2


@dataclasses.dataclass(frozen=True)
class _FutureFinding:
    """A finding with a field the scanner may add later (`kind`); the reports must pick it up."""

    file: str
    member: str | None
    global_name: str
    severity: str
    detail: str
    kind: str


def test_finding_kinds_and_new_fields_from_the_scanner_are_picked_up(clean_dir: Path, monkeypatch, capsys) -> None:
    real_scan_file = scan_module.scan_file

    def scan_file(folder: Path, relative: str, budget=None, link_roots=()):
        scanned, findings = real_scan_file(folder, relative, budget=budget, link_roots=link_roots)
        if relative == "model.safetensors":
            findings = [_FutureFinding(relative, None, "", "error", "two readers disagree on the header", "parser-differential"),
                        _FutureFinding(relative, None, "", "novel", "a severity added later", "shiny-new-kind")]
        return scanned, findings

    monkeypatch.setattr(scan_module, "scan_file", scan_file)
    code, out, _ = scan(capsys, str(clean_dir), "--format", "sarif")
    assert code == 1  # an unrecognised severity fails closed
    log = json.loads(out)
    jsonschema.Draft4Validator(_schema("sarif-schema-2.1.0.json.gz")).validate(log)
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("parser-differential", "error"), ("shiny-new-kind", "error")]
    assert "shiny-new-kind" in [rule["id"] for rule in log["runs"][0]["tool"]["driver"]["rules"]]
    code, document = scan_json(capsys, str(clean_dir))
    assert document["findings"][0]["kind"] == "parser-differential" and document["findings"][0]["rule"] == "parser-differential"


# ---------------------------------------------------------------------------------------------
# CycloneDX 1.6
# ---------------------------------------------------------------------------------------------


def _cyclonedx_validator() -> jsonschema.Validator:
    resources = []
    for name in ("bom-1.6.schema.json", "spdx.schema.json", "jsf-0.82.schema.json"):
        schema = _schema(f"cyclonedx-{name}.gz")
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    bom_schema = _schema("cyclonedx-bom-1.6.schema.json.gz")
    return jsonschema.Draft7Validator(bom_schema, registry=registry, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def test_cyclonedx_validates_against_the_official_schema(evil_dir: Path, capsys) -> None:
    (evil_dir / "config.json").write_text("{}")
    code, out, _ = scan(capsys, str(evil_dir), "--format", "cyclonedx")
    assert code == 1
    bom = json.loads(out)
    _cyclonedx_validator().validate(bom)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6" and bom["serialNumber"].startswith("urn:uuid:")
    components = {c["name"]: c for c in bom["components"]}
    assert set(components) == {"config.json", "model.safetensors", "nested/checkpoint.pt", "pytorch_model.bin"}
    assert components["config.json"]["type"] == "data"
    assert components["pytorch_model.bin"]["type"] == "machine-learning-model"
    for name, component in components.items():
        expected = hashlib.sha256((evil_dir / name).read_bytes()).hexdigest()
        assert component["hashes"] == [{"alg": "SHA-256", "content": expected}]
    refs = {c["bom-ref"] for c in bom["components"]}
    vulnerabilities = bom["vulnerabilities"]
    assert len(vulnerabilities) == 2
    for vulnerability in vulnerabilities:
        assert vulnerability["id"] == "dangerous-global" and vulnerability["cwes"] == [502]
        assert vulnerability["ratings"][0]["severity"] == "critical"
        assert {a["ref"] for a in vulnerability["affects"]} <= refs
    assert {v["affects"][0]["ref"] for v in vulnerabilities} == {"file:pytorch_model.bin", "file:nested/checkpoint.pt"}


def test_cyclonedx_unknown_and_error_severities(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "training_args.bin").write_bytes(unknown_pickle())
    os.mkfifo(folder / "extra.bin")  # never opened: neither by the scan nor by hashing
    code, out, _ = scan(capsys, str(folder), "--format", "cyclonedx", "--allow-unknown")
    assert code == 1  # the FIFO is an error finding, which --allow-unknown does not excuse
    bom = json.loads(out)
    _cyclonedx_validator().validate(bom)
    ratings = {v["affects"][0]["ref"]: (v["id"], v["ratings"][0]["severity"]) for v in bom["vulnerabilities"]}
    assert ratings == {"file:training_args.bin": ("unknown-global", "medium"), "file:extra.bin": ("unsafe-path", "high")}
    fifo = next(c for c in bom["components"] if c["name"] == "extra.bin")
    assert "hashes" not in fifo
    assert any(p["name"] == "conformance:sha256" and "FIFO" in p["value"] for p in fifo["properties"])


def test_cyclonedx_does_not_hash_a_sparse_file(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "sparse"
    folder.mkdir()
    big = folder / "model.bin"
    with big.open("wb") as handle:
        handle.truncate(64 * SPARSE_MIN_BYTES)  # 4 GiB declared, nothing on disk
    if big.stat().st_blocks * 512 >= big.stat().st_size // 8:
        pytest.skip("this filesystem does not keep sparse files")
    (folder / "config.json").write_text("{}")
    started = time.monotonic()
    code, out, _ = scan(capsys, str(folder), "--format", "cyclonedx")
    assert time.monotonic() - started < 20  # reading 4 GiB of zeros would take seconds to minutes
    bom = json.loads(out)
    _cyclonedx_validator().validate(bom)
    components = {c["name"]: c for c in bom["components"]}
    assert "hashes" not in components["model.bin"]
    reason = next(p["value"] for p in components["model.bin"]["properties"] if p["name"] == "conformance:sha256")
    assert "sparse" in reason and str(64 * SPARSE_MIN_BYTES) in reason
    assert components["config.json"]["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(b"{}").hexdigest()}]


def test_hashing_is_bounded_in_bytes_and_seconds(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    digest, reason = sha256_bounded(tmp_path, "a.bin", HashBudget(max_bytes=999))
    assert digest is None and "over the 999-byte limit" in reason
    ticks = iter([0.0, 0.0, 5.0])  # start, first check, after the first chunk: past a 1 s budget
    digest, reason = sha256_bounded(tmp_path, "a.bin", HashBudget(seconds=1.0, clock=lambda: next(ticks)))
    assert digest is None and "time budget of 1 s spent" in reason
    assert sha256_bounded(tmp_path, "a.bin", HashBudget())[0] == hashlib.sha256(b"x" * 1000).hexdigest()
    (tmp_path / "out").symlink_to("/etc/hostname")
    digest, reason = sha256_bounded(tmp_path, "out", HashBudget())
    assert digest is None and "outside the model folder" in reason


def test_folder_listing_is_bounded_and_does_not_follow_links(tmp_path: Path) -> None:
    for index in range(5):
        (tmp_path / f"f{index}.bin").write_bytes(b"x")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)  # inside: skipped, never walked twice
    (tmp_path / "self").symlink_to(tmp_path / "self")  # a link loop: listed, so the scan reports it
    names, problems = list_folder(tmp_path)
    assert names == ["f0.bin", "f1.bin", "f2.bin", "f3.bin", "f4.bin", "self"] and problems == []
    names, problems = list_folder(tmp_path, max_files=2)
    assert len(names) == 2 and problems == [(".", "more than 2 files; the rest were not scanned")]


def test_one_budget_spans_the_whole_command_and_copies_are_scanned_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Many files each under the per-file bound must still end: the command shares one scan-wide budget."""
    from conformance.probes import scan

    folder = tmp_path / "floods"
    folder.mkdir()
    for index in range(4):  # distinct data-only pickles of about 2,000 opcodes each
        (folder / f"part{index}.pkl").write_bytes(b"\x80\x02]" + b"(" + b"K" + bytes([index]) + b"N0" * 1000 + b"e.")
    (folder / "copy.pkl").write_bytes((folder / "part0.pkl").read_bytes())
    monkeypatch.setattr(scan, "MAX_OPCODES_PER_SCAN", 5_000)
    assert main(["scan", str(folder), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    budget = [f for f in report["findings"] if f.get("kind") == "scan-budget"]
    assert any("scan-wide opcode budget" in f["detail"] for f in budget) and all("budget" in f["detail"] for f in budget)
    assert "part3.pkl" in {f["file"] for f in budget} and "part0.pkl" not in {f["file"] for f in budget}
    monkeypatch.setattr(scan, "MAX_OPCODES_PER_SCAN", 10_000_000)
    assert main(["scan", str(folder), "-q"]) == 0  # within budget: data-only pickles are clean, the copy too
