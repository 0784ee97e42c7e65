"""Hostile model folders, each through the API (`run`) and the command line: clear verdicts, no tracebacks.

A candidate model is untrusted input: a pickle bomb is never unpickled (its canary file never appears),
broken headers and configs error only the rules that need them, and nothing outside the folder is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from conformance import zoo
from conformance.candidate import Candidate
from conformance.cli import main
from conformance.results import RuleResult, load_result, validate_document
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The zoo's smallest llama (conformance.zoo.hostile builds its hostile folders on it).
TINY_LLAMA = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 32}

HOSTILE_RULES = [
    {"id": "SCAN", "level": "must", "check": "safety.serialization_scan"},
    {"id": "FORMAT", "level": "must", "check": "safety.weights_format"},
    {"id": "CODE", "level": "must", "check": "safety.remote_code"},
    {"id": "ARCH-TYPE", "level": "must", "check": "architecture.model_type", "equals": "llama"},
    {"id": "ARCH-LAYERS", "level": "must", "check": "architecture.num_layers", "min": 1},
    {"id": "ARCH-ROPE", "level": "should", "check": "architecture.config", "path": "rope_parameters.rope_type", "equals": "default"},
    {"id": "PARAMS", "level": "must", "check": "size.parameters", "max": 1.0e9},
    {"id": "DTYPES", "level": "must", "check": "size.weight_dtypes", "in": ["F32", "BF16", "F16"]},
    {"id": "TOKENIZER", "level": "must", "check": "tokenizer.present"},
    {"id": "TOKENIZER-FITS", "level": "must", "check": "tokenizer.vocab_matches_embeddings"},
    {"id": "CARD", "level": "should", "check": "card.present"},
    {"id": "LICENSE", "level": "should", "check": "safety.license", "in": ["apache-2.0", "mit"]},
    {"id": "SECTIONS", "level": "should", "check": "card.sections", "required": ["Limitations"]},
    {"id": "CLAIMS", "level": "should", "check": "card.claims"},
    {"id": "SUMS", "level": "should", "check": "safety.checksums"},
]
RULE_IDS = {r["id"] for r in HOSTILE_RULES}


def check(model_dir: Path, rules: list[dict], write_spec, **options) -> dict[str, RuleResult]:
    spec = load_spec(write_spec(rules))
    result = run(Candidate(model_dir), spec, RunOptions(log=lambda m: None, **options))
    assert validate_document(result.to_document()) == []
    return {r.id: r for r in result.rules}


def check_cli(model_dir: Path, write_spec, capsys: pytest.CaptureFixture, out: Path) -> tuple[int, dict]:
    """`conformance check` on one model: the exit code and the result document it wrote."""
    spec = write_spec(HOSTILE_RULES, name="cli-spec.yaml")
    code = main(["check", str(model_dir), "--spec", str(spec), "--out", str(out)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    written = sorted(out.glob("*.json"))
    assert len(written) == 1, written
    document = load_result(written[0])  # raises unless the file is a whole, valid result document
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"
    assert {r["id"] for r in document["rules"]} == RULE_IDS
    assert "Traceback" not in json.dumps(document)
    return code, document


def cli_statuses(document: dict) -> dict[str, str]:
    return {r["id"]: r["status"] for r in document["rules"]}


def one_line(result: RuleResult) -> str:
    assert result.message and "\n" not in result.message and "Traceback" not in result.message, result.message
    return result.message


_recording: list[set[Path]] = []


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and _recording and isinstance(args[0], (str, bytes, os.PathLike)):
        _recording[-1].add(Path(os.fsdecode(args[0])).resolve())


@pytest.fixture(scope="module")
def opened_files():
    """Records every file Python opens (the `open` audit event) in a `with` block, as resolved paths."""
    sys.addaudithook(_record_opens)  # hooks cannot be removed; it records only inside the block

    @contextlib.contextmanager
    def recording():
        _recording.append(set())
        try:
            yield _recording[-1]
        finally:
            _recording.pop()

    return recording


# --------------------------------------------------------------------------------------------------
# Pickle bombs
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """name -> (bomb folder, canary that unpickling its weights would create)."""
    base = tmp_path_factory.mktemp("bombs")
    built = {}
    for name, zip_format in (("raw", False), ("zip", True)):
        canary = base / f"canary-{name}"
        built[name] = (zoo.build_pickle_bomb(base / f"bomb-{name}", canary, zip_format=zip_format), canary)
    for _, canary in built.values():
        assert not canary.exists()
    yield built
    for _, canary in built.values():
        assert not canary.exists(), f"{canary} exists: a pickle was unpickled"


def data_pkl_member(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return next(name for name in archive.namelist() if name.endswith("data.pkl"))


@pytest.mark.parametrize("kind", ["raw", "zip"])
def test_pickle_bomb(kind: str, bombs, write_spec, capsys, tmp_path: Path) -> None:
    model, canary = bombs[kind]
    results = check(model, HOSTILE_RULES, write_spec)
    scan = results["SCAN"]
    assert scan.status == "fail"
    assert "pytorch_model.bin" in scan.message and "builtins.open" in scan.message
    if kind == "zip":
        assert f"pytorch_model.bin:{data_pkl_member(model / 'pytorch_model.bin')}" in scan.message
    assert results["FORMAT"].status == "fail" and "pickle" in results["FORMAT"].message
    # The static rules read config.json and report as usual.
    assert results["ARCH-TYPE"].status == "pass" and results["ARCH-LAYERS"].observed == 1
    assert results["CODE"].status == "pass" and results["TOKENIZER"].status == "pass"
    # No safetensors headers to count from: an error saying why, not a guess.
    assert results["PARAMS"].status == "error" and "pickle" in one_line(results["PARAMS"])
    assert not canary.exists()

    code, document = check_cli(model, write_spec, capsys, tmp_path / "out")
    assert code == 1
    assert cli_statuses(document)["SCAN"] == "fail" and cli_statuses(document)["ARCH-TYPE"] == "pass"
    assert document["summary"]["conformant"] is False
    assert not canary.exists()


@pytest.mark.parametrize("kind", ["raw", "zip"])
def test_pickle_bomb_under_an_unexpected_name(kind: str, bombs, llama_dir: Path, copy_model, write_spec, capsys, tmp_path: Path) -> None:
    bomb, canary = bombs[kind]
    model = copy_model(llama_dir)
    (model / "extra").mkdir()
    shutil.copyfile(bomb / "pytorch_model.bin", model / "extra" / "notes.txt")
    results = check(model, HOSTILE_RULES, write_spec)
    scan = results["SCAN"]
    assert scan.status == "fail"
    assert "extra/notes.txt" in scan.message and "builtins.open" in scan.message
    if kind == "zip":
        assert f"extra/notes.txt:{data_pkl_member(bomb / 'pytorch_model.bin')}" in scan.message
    # Nothing else about the model is wrong: the name hides the file from every other rule.
    assert {rule_id for rule_id, r in results.items() if r.status != "pass"} == {"SCAN"}
    assert not canary.exists()

    code, document = check_cli(model, write_spec, capsys, tmp_path / "out")
    assert code == 1 and cli_statuses(document)["SCAN"] == "fail"
    assert not canary.exists()


def test_clean_model_scans_clean(llama_dir: Path, write_spec) -> None:
    """The control for the bombs: the same rules on the intact zoo llama all pass."""
    results = check(llama_dir, HOSTILE_RULES, write_spec)
    assert {rule_id: r.status for rule_id, r in results.items()} == dict.fromkeys(RULE_IDS, "pass")


# --------------------------------------------------------------------------------------------------
# Broken safetensors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["huge_header_length", "overlapping_offsets", "truncated", "non_json_header"])
def test_bad_safetensors(kind: str, llama_dir: Path, copy_model, write_spec, capsys, tmp_path: Path) -> None:
    model = copy_model(llama_dir)
    zoo.write_bad_safetensors(model / "model.safetensors", kind)
    results = check(model, HOSTILE_RULES, write_spec)
    assert set(results) == RULE_IDS  # the whole run completes
    for rule_id in ("PARAMS", "DTYPES"):
        assert results[rule_id].status == "error"
        assert "model.safetensors" in one_line(results[rule_id])
    for rule_id in ("ARCH-TYPE", "ARCH-LAYERS", "ARCH-ROPE", "CODE", "TOKENIZER", "CARD", "LICENSE", "SECTIONS"):
        assert results[rule_id].status == "pass", (rule_id, results[rule_id].message)
    assert results["FORMAT"].status == "pass" and results["FORMAT"].observed == ["safetensors"]
    assert results["SCAN"].status == "pass"  # broken, but holds no pickle: the scan reads it as data
    # The card's claims can no longer be confirmed, and its checksum no longer matches.
    assert results["CLAIMS"].status == "fail" and "parameters" in results["CLAIMS"].message
    assert results["SUMS"].status == "fail" and "model.safetensors" in results["SUMS"].message

    code, document = check_cli(model, write_spec, capsys, tmp_path / "out")
    assert code == 1
    statuses = cli_statuses(document)
    assert statuses["PARAMS"] == "error" and statuses["ARCH-TYPE"] == "pass" and statuses["FORMAT"] == "pass"
    assert document["summary"]["errors"] >= 2 and document["summary"]["conformant"] is False


# --------------------------------------------------------------------------------------------------
# Broken config.json
# --------------------------------------------------------------------------------------------------

CONFIG_REASONS = {
    "missing": "config.json is missing",
    "corrupt": "config.json is not valid JSON",
    "wrong_type": "config.json must hold a JSON object",
}


@pytest.fixture(scope="module")
def tiny_llama_parameters(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, bytes]:
    """Ground truth for the corrupt-config folders: their healthy twin, loaded by transformers."""
    twin = zoo.build_llama(tmp_path_factory.mktemp("twin") / "tiny", card=False, **TINY_LLAMA)
    return zoo.parameter_count(twin), (twin / "model.safetensors").read_bytes()


@pytest.mark.parametrize("kind", sorted(CONFIG_REASONS))
def test_corrupt_config(kind: str, tiny_llama_parameters, write_spec, capsys, tmp_path: Path) -> None:
    parameters, twin_weights = tiny_llama_parameters
    model = zoo.build_corrupt_config(tmp_path / f"config-{kind}", kind)
    assert (model / "model.safetensors").read_bytes() == twin_weights  # the same model, but for its config
    (model / "README.md").write_text(
        f"---\nlicense: mit\nconformance:\n  parameters: {parameters}\n---\n# Tiny\n\n## Limitations\n\nMany.\n"
    )
    rules = [*HOSTILE_RULES, {"id": "PARAMS-EXACT", "level": "must", "check": "size.parameters", "equals": parameters}]
    results = check(model, rules, write_spec)
    for rule_id in ("ARCH-TYPE", "ARCH-LAYERS", "ARCH-ROPE"):
        assert results[rule_id].status == "error"
        assert one_line(results[rule_id]).startswith(CONFIG_REASONS[kind])
    # Sizes come from the safetensors headers alone.
    assert results["PARAMS-EXACT"].status == "pass", results["PARAMS-EXACT"].message
    assert results["PARAMS-EXACT"].observed == parameters
    assert results["DTYPES"].status == "pass" and results["TOKENIZER-FITS"].status == "pass"
    # The card is read and judged as usual.
    for rule_id in ("CARD", "LICENSE", "SECTIONS", "CLAIMS"):
        assert results[rule_id].status == "pass", (rule_id, results[rule_id].message)
    assert results["SUMS"].status == "fail" and "claims no checksums" in results["SUMS"].message

    code, document = check_cli(model, write_spec, capsys, tmp_path / "out")
    assert code == 1
    statuses = cli_statuses(document)
    assert statuses["ARCH-TYPE"] == "error" and statuses["PARAMS"] == "pass" and statuses["CARD"] == "pass"
    reason = next(r["message"] for r in document["rules"] if r["id"] == "ARCH-TYPE")
    assert reason.startswith(CONFIG_REASONS[kind])


# --------------------------------------------------------------------------------------------------
# Broken model cards
# --------------------------------------------------------------------------------------------------

BROKEN_CARDS = {
    "flow-sequence": "---\nlicense: [apache-2.0\nlanguage: en\n---\n# Model\n\n## Limitations\n",
    "tabs": "---\nlicense:\tmit\n\t- x: : y\n---\n# Model\n",
    "not-a-mapping": "---\n- license\n- mit\n---\n# Model\n\n## Limitations\n",
    "binary": b"---\nlicense: mit\n---\n\xff\xfe\x00\x81 not text",
}


@pytest.mark.parametrize("kind", sorted(BROKEN_CARDS))
def test_broken_card_front_matter(kind: str, llama_dir: Path, copy_model, write_spec, capsys, tmp_path: Path) -> None:
    model = copy_model(llama_dir)
    content = BROKEN_CARDS[kind]
    readme = model / "README.md"
    readme.write_bytes(content) if isinstance(content, bytes) else readme.write_text(content)
    results = check(model, HOSTILE_RULES, write_spec)
    assert results["CARD"].status == "fail"
    reason = one_line(results["CARD"])
    assert "README.md" in reason
    for rule_id in ("LICENSE", "SECTIONS", "CLAIMS", "SUMS"):
        assert results[rule_id].status == "error"
        assert one_line(results[rule_id]) == reason
    for rule_id in ("ARCH-TYPE", "PARAMS", "FORMAT", "SCAN", "TOKENIZER"):
        assert results[rule_id].status == "pass", (rule_id, results[rule_id].message)

    code, document = check_cli(model, write_spec, capsys, tmp_path / "out")
    assert code == 0  # only `should` rules broke
    assert cli_statuses(document)["CARD"] == "fail" and document["summary"]["conformant"] is True


def test_oversized_card_is_not_parsed(llama_dir: Path, copy_model, write_spec) -> None:
    model = copy_model(llama_dir)
    (model / "README.md").write_text("---\nlicense: mit\n---\n" + "x" * (5 * 1024 * 1024))
    results = check(model, HOSTILE_RULES, write_spec)
    assert results["CARD"].status == "fail" and "larger than" in one_line(results["CARD"])
    assert results["LICENSE"].status == "error"


# --------------------------------------------------------------------------------------------------
# Symlinks out of the model folder
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def outside_card(tmp_path: Path, llama_dir: Path) -> Path:
    """A perfectly good card outside the model folder: if it were read, the card rules would pass."""
    target = tmp_path / "outside" / "README.md"
    target.parent.mkdir()
    shutil.copyfile(llama_dir / "README.md", target)
    return target


@pytest.mark.parametrize("target", ["outside-card", "/etc/passwd"])
def test_card_symlink_outside_the_folder(
    target: str, llama_dir: Path, copy_model, outside_card: Path, write_spec, capsys, tmp_path: Path, opened_files
) -> None:
    model = copy_model(llama_dir)
    (model / "README.md").unlink()
    link_target = outside_card if target == "outside-card" else Path(target)
    (model / "README.md").symlink_to(link_target)
    with opened_files() as opened:
        results = check(model, HOSTILE_RULES, write_spec)
    assert (model / "config.json").resolve() in opened  # the recorder works...
    assert link_target.resolve() not in opened  # ...and the card outside was never opened
    assert results["CARD"].status == "fail" and "outside the model folder" in one_line(results["CARD"])
    for rule_id in ("LICENSE", "SECTIONS", "CLAIMS", "SUMS"):
        assert results[rule_id].status == "error" and "outside the model folder" in one_line(results[rule_id])
    assert results["SCAN"].status == "error" and "README.md" in results["SCAN"].message
    assert "outside the model folder" in results["SCAN"].message
    assert results["PARAMS"].status == "pass" and results["ARCH-TYPE"].status == "pass"

    code, document = check_cli(model, write_spec, capsys, tmp_path / "out")
    assert code == 1  # SCAN is a must rule
    assert cli_statuses(document)["CARD"] == "fail"


def test_weights_symlink_outside_the_folder(llama_dir: Path, copy_model, write_spec, capsys, tmp_path: Path, opened_files) -> None:
    model = copy_model(llama_dir)
    outside = tmp_path / "outside.safetensors"
    (model / "model.safetensors").rename(outside)  # the real weights: reading them would pass every rule
    (model / "model.safetensors").symlink_to(outside)
    with opened_files() as opened:
        results = check(model, HOSTILE_RULES, write_spec)
    assert (model / "config.json").resolve() in opened
    assert outside.resolve() not in opened
    for rule_id in ("PARAMS", "DTYPES"):
        assert results[rule_id].status == "error" and "outside the model folder" in one_line(results[rule_id])
    assert results["SUMS"].status == "error" and "outside the model folder" in one_line(results["SUMS"])
    assert results["SCAN"].status == "error" and "model.safetensors" in results["SCAN"].message
    assert results["ARCH-TYPE"].status == "pass" and results["CARD"].status == "pass"

    code, document = check_cli(model, write_spec, capsys, tmp_path / "out")
    assert code == 1
    assert cli_statuses(document)["PARAMS"] == "error"
    assert document["model"]["sha256"] is None  # the weights outside were never hashed either


def test_index_names_a_shard_outside_the_folder(sharded_dir: Path, copy_model, write_spec, capsys, tmp_path: Path, opened_files) -> None:
    model = copy_model(sharded_dir)
    shards = sorted(model.glob("model-*.safetensors"))
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(shards[0], outside)  # a valid shard, one level up: reading it would count its tensors
    index_path = model / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"] = {name: ("../outside.safetensors" if file == shards[0].name else file) for name, file in index["weight_map"].items()}
    index_path.write_text(json.dumps(index))

    with opened_files() as opened:
        results = check(model, HOSTILE_RULES, write_spec)
    assert shards[1].resolve() in opened  # the shards inside were read...
    assert outside.resolve() not in opened  # ...the one outside was not
    assert results["PARAMS"].status == "error"
    assert "../outside.safetensors" in one_line(results["PARAMS"]) and "outside the model folder" in results["PARAMS"].message
    assert results["ARCH-TYPE"].status == "pass" and results["FORMAT"].status == "pass"

    code, document = check_cli(model, write_spec, capsys, tmp_path / "out")
    assert code == 1 and cli_statuses(document)["PARAMS"] == "error"


def test_symlink_inside_the_folder_is_followed(llama_dir: Path, copy_model, write_spec) -> None:
    """The Hugging Face cache layout, within one folder: a weight file that links to a blob beside it."""
    model = copy_model(llama_dir)
    (model / "blobs").mkdir()
    (model / "model.safetensors").rename(model / "blobs" / "0123abcd")
    (model / "model.safetensors").symlink_to(Path("blobs") / "0123abcd")
    results = check(model, HOSTILE_RULES, write_spec)
    assert {rule_id: r.status for rule_id, r in results.items()} == dict.fromkeys(RULE_IDS, "pass")


# --------------------------------------------------------------------------------------------------
# Requests that are wrong before any model is opened
# --------------------------------------------------------------------------------------------------


def test_missing_model_folder(tmp_path: Path, write_spec, capsys) -> None:
    spec = write_spec(HOSTILE_RULES)
    missing = tmp_path / "no-such-model"
    assert main(["check", str(missing), "--spec", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_model_that_is_a_file(tmp_path: Path, write_spec, capsys, llama_dir: Path) -> None:
    spec = write_spec(HOSTILE_RULES)
    assert main(["check", str(llama_dir / "model.safetensors"), "--spec", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.safetensors" in err and "folder" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_one_bad_folder_among_good_ones_stops_before_any_run(tmp_path: Path, write_spec, capsys, llama_dir: Path) -> None:
    spec = write_spec(HOSTILE_RULES)
    missing = tmp_path / "gone"
    assert main(["check", str(llama_dir), str(missing), "--spec", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
