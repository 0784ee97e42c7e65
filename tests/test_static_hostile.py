"""Static facts are independent: one bad file errors only the rules whose facts need it, through the real runner.

Each hostile folder is the tiny llama with one file made bad; every static rule's verdict is compared with the
same rule on the untouched folder: the rules that need the bad fact error (or fail) with its reason, all others
keep their verdicts.
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance import zoo
from conformance.candidate import Candidate
from conformance.catalogue import get_check
from conformance.errors import CheckError
from conformance.evidence import Evidence
from conformance.probes.scan import ScanEvidence, ScanFinding, ScannedFile
from conformance.probes.static import probe_static
from conformance.results import RuleResult, validate_document
from conformance.rule import Rule
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

STATIC_RULES = [
    {"id": "FORMAT", "level": "must", "check": "safety.weights_format"},
    {"id": "CODE", "level": "must", "check": "safety.remote_code"},
    {"id": "ARCH-TYPE", "level": "must", "check": "architecture.model_type", "equals": "llama"},
    {"id": "ARCH-LAYERS", "level": "must", "check": "architecture.num_layers", "min": 1},
    {"id": "ARCH-CONTEXT", "level": "must", "check": "architecture.context_length", "max": 1_000_000},
    {"id": "ARCH-FIELD", "level": "must", "check": "architecture.config", "path": "num_hidden_layers", "min": 1},
    {"id": "PARAMS", "level": "must", "check": "size.parameters", "max": 1.0e9},
    {"id": "BYTES", "level": "must", "check": "size.weight_bytes", "max": 1.0e10},
    {"id": "DTYPES", "level": "must", "check": "size.weight_dtypes", "in": ["F32", "BF16", "F16"]},
    {"id": "TOKENIZER", "level": "must", "check": "tokenizer.present"},
    {"id": "TOKENIZER-FITS", "level": "must", "check": "tokenizer.vocab_matches_embeddings"},
]
TENSOR_RULES = {"PARAMS", "BYTES", "DTYPES"}
CONFIG_RULES = {"ARCH-TYPE", "ARCH-LAYERS", "ARCH-CONTEXT", "ARCH-FIELD"}


def verdicts(folder: Path, write_spec) -> dict[str, RuleResult]:
    spec = load_spec(write_spec(STATIC_RULES, name="static.yaml"))
    result = run(Candidate(folder), spec, RunOptions(log=lambda m: None))
    assert validate_document(result.to_document()) == []
    return {r.id: r for r in result.rules}


@pytest.fixture(scope="module")
def base(llama_dir: Path) -> Path:
    """The zoo's tiny llama (shared with other tests); every case copies it before breaking one file."""
    return llama_dir


@pytest.fixture(scope="module")
def base_verdicts(base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("base-spec")

    def write_spec(rules: list[dict], name: str) -> Path:
        import yaml

        path = out / name
        path.write_text(yaml.safe_dump({"id": "static", "version": "1", "rules": rules}))
        return path

    statuses = {rule_id: r.status for rule_id, r in verdicts(base, write_spec).items()}
    assert set(statuses.values()) == {"pass"}, statuses  # every rule decided on the good folder
    return statuses


def _remove_vocab_files(folder: Path) -> None:
    for name in ("tokenizer.json", "vocab.json"):
        (folder / name).unlink(missing_ok=True)


# name -> (build the bad folder from the base, rules that error, rules that fail, a word their messages name)
CASES: dict[str, tuple[Callable[[Path, Path], object], set[str], set[str], str]] = {
    "dtype-list": (lambda out, base: zoo.hostile.build_dtype_list(out, base=base), TENSOR_RULES, set(), "dtype"),
    "deep-header": (lambda out, base: zoo.hostile.build_deep_json(out, "header", base=base), TENSOR_RULES, set(), "nests"),
    # config.json unreadable: the architecture rules error; CODE too (an unread config may hold an auto_map)
    "deep-config": (lambda out, base: zoo.hostile.build_deep_json(out, "config", base=base), CONFIG_RULES | {"CODE"}, set(), "config.json"),
    "deep-tokenizer": (
        lambda out, base: zoo.hostile.build_deep_json(out, "tokenizer", base=base), {"TOKENIZER-FITS"}, {"TOKENIZER"}, "tokenizer.json",
    ),
    "vocab-infinity": (lambda out, base: zoo.hostile.build_vocab_infinity(out, base=base), {"TOKENIZER-FITS"}, {"TOKENIZER"}, "inf"),
    "symlink-loop": (lambda out, base: zoo.hostile.build_symlink_loop(out, base=base), set(), set(), ""),
    "nan-layers": (
        lambda out, base: zoo.hostile.build_config_nonfinite(out, "nan-layers", base=base), {"ARCH-LAYERS", "ARCH-FIELD"}, set(), "not a finite number",
    ),
    "inf-context": (
        lambda out, base: zoo.hostile.build_config_nonfinite(out, "inf-context", base=base), {"ARCH-CONTEXT"}, set(), "not a finite number",
    ),
    "fifo-weights": (lambda out, base: zoo.hostile.build_fifo(out, "model.safetensors", base=base), TENSOR_RULES, set(), "FIFO"),
    "fifo-vocab": (
        lambda out, base: (zoo.hostile.build_fifo(out, "vocab.txt", base=base), _remove_vocab_files(out)), {"TOKENIZER-FITS"}, {"TOKENIZER"}, "FIFO",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_bad_file_errors_only_its_rules(case: str, base: Path, base_verdicts: dict[str, str], tmp_path: Path, write_spec) -> None:
    build, erroring, failing, word = CASES[case]
    folder = tmp_path / case
    build(folder, base)
    started = time.monotonic()
    results = verdicts(folder, write_spec)
    assert time.monotonic() - started < 20  # a FIFO or a deep file never hangs the static path
    for rule_id, result in results.items():
        expected = "error" if rule_id in erroring else "fail" if rule_id in failing else base_verdicts[rule_id]
        assert result.status == expected, (rule_id, result.status, result.message)
        if rule_id in erroring | failing:
            assert word.lower() in result.message.lower(), (rule_id, result.message)
    assert "Traceback" not in " ".join(r.message for r in results.values())


def test_probe_static_never_raises_and_records_nonfinite_config(base: Path, tmp_path: Path) -> None:
    folder = zoo.hostile.build_config_nonfinite(tmp_path / "nan", "nan-layers", base=base)
    facts = probe_static(Candidate(folder))
    assert facts.architecture["num_layers"] != facts.architecture["num_layers"]  # NaN recorded as given
    assert facts.config_error is None and facts.architecture_error is None and facts.weights.tensors


def _auto_map_case(folder: Path) -> None:
    import json

    (folder / "processor_config.json").write_text(json.dumps({"auto_map": {"AutoProcessor": "processing_x.XProcessor"}}))
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"image_processor": {"auto_map": {"AutoImageProcessor": "other/repo--imgproc.P"}}})
    )


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("tokenizer-auto-map", ["tokenizer_config.json auto_map", "evil/repo--tokenization_evil.EvilTokenizer", "another repository: evil/repo"]),
        ("custom-pipelines", ["config.json custom_pipelines", "evil/repo--pipe.EvilPipeline"]),
        ("processor-configs", ["processor_config.json auto_map: AutoProcessor: processing_x.XProcessor", "preprocessor_config.json auto_map", "other/repo"]),
        ("code-files", ["code files", "sub/modeling_x.pyo", "lib/native.so.1", "plugin.dylib", "ext.pyd", "w.dll",
                        "compiled Python caches __pycache__"]),
    ],
)
def test_remote_code_reasons_are_each_listed(case: str, words: list[str], base: Path, base_verdicts: dict[str, str], tmp_path: Path, write_spec) -> None:
    folder = tmp_path / case
    if case == "tokenizer-auto-map":
        zoo.hostile.build_tokenizer_auto_map(folder, base=base)
    elif case == "custom-pipelines":
        zoo.hostile.build_custom_pipelines(folder, base=base)
    else:
        shutil.copytree(base, folder, symlinks=True)
        if case == "processor-configs":
            _auto_map_case(folder)
        else:
            for name in ("sub/modeling_x.pyo", "lib/native.so.1", "plugin.dylib", "ext.pyd", "w.dll", "__pycache__/m.cpython-312.pyc"):
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(b"\0")
    results = verdicts(folder, write_spec)
    assert results["CODE"].status == "fail"
    for word in words:
        assert word in results["CODE"].message, (word, results["CODE"].message)
    others = {rule_id: r.status for rule_id, r in results.items() if rule_id != "CODE"}
    assert others == {k: v for k, v in base_verdicts.items() if k != "CODE"}


def _torchscript_zip(path: Path) -> None:
    """A zip laid out as torch.jit.save writes one (members only; nothing in it is ever loaded)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("model/constants.pkl", b"\x80\x02).")
        archive.writestr("model/code/__torch__/module.py", b"class Module: pass\n")
        archive.writestr("model/version", b"3\n")


def test_torchscript_archive_is_its_own_format(base: Path, tmp_path: Path, write_spec) -> None:
    import torch

    folder = tmp_path / "torchscript"
    shutil.copytree(base, folder, symlinks=True)
    _torchscript_zip(folder / "model.pt")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(folder / "scripted.bin"))
    torch.save({"w": torch.zeros(2)}, folder / "pytorch_model.bin")  # a plain torch zip: still "pickle"
    facts = probe_static(Candidate(folder))
    assert facts.weights.files["model.pt"] == facts.weights.files["scripted.bin"] == "torchscript"
    assert facts.weights.files["pytorch_model.bin"] == "pickle"
    results = verdicts(folder, write_spec)
    assert results["FORMAT"].status == "fail"
    assert "torchscript" in results["FORMAT"].message and "scripted.bin" in results["FORMAT"].message
    assert results["PARAMS"].status == "pass"  # the safetensors weights are still read


def test_unreadable_archive_errors_the_format_rule_only_when_it_could_pass(base: Path, tmp_path: Path) -> None:
    folder = tmp_path / "fifo-bin"
    shutil.copytree(base, folder, symlinks=True)
    os.mkfifo(folder / "extra.bin")
    facts = probe_static(Candidate(folder))
    assert facts.weights.format_errors and "FIFO" in facts.weights.format_errors[0]
    evidence = Evidence()
    evidence.put("static", facts)
    check = get_check("safety.weights_format").function
    allow_pickle = Rule("F", "must", "safety.weights_format", {"in": ["safetensors", "pickle"]}, {})
    with pytest.raises(CheckError, match="FIFO"):
        check(evidence, allow_pickle)  # extra.bin might be TorchScript: no pass on a guess
    assert check(evidence, Rule("F", "must", "safety.weights_format", {}, {})).status == "fail"  # pickle is out anyway


def _scan(*severities: str) -> Evidence:
    findings = [ScanFinding(f"f{i}.bin", None, f"mod.name{i}" if s != "error" else "", s, f"{s} finding") for i, s in enumerate(severities)]
    evidence = Evidence()
    evidence.put("scan", ScanEvidence("test", [ScannedFile(f.file, "pickle", 1, []) for f in findings], findings))
    return evidence


@pytest.mark.parametrize(
    ("severities", "allow_unknown", "status"),
    [
        ((), False, "pass"),
        (("unknown",), False, "fail"),
        (("unknown",), True, "pass"),
        (("error",), False, "error"),
        (("error", "unknown"), True, "error"),
        (("error", "unknown"), False, "fail"),
        (("unknown", "error", "dangerous"), True, "fail"),
    ],
)
def test_serialization_scan_severities(severities: tuple[str, ...], allow_unknown: bool, status: str) -> None:
    check = get_check("safety.serialization_scan").function
    rule = Rule("SCAN", "must", "safety.serialization_scan", {}, {"allow_unknown": allow_unknown})
    try:
        verdict = check(_scan(*severities), rule)
    except CheckError as exc:
        assert status == "error"
        assert "not every file could be scanned" in str(exc) and "f0.bin" in str(exc)
        return
    assert verdict.status == status
    if status == "fail":
        first = severities.index("dangerous") if "dangerous" in severities else severities.index("unknown")
        assert verdict.message.startswith(f"f{first}.bin"), verdict.message  # dangerous findings are listed first


def test_safetensors_with_trailing_bytes_errors_the_tensor_rules(base: Path, tmp_path: Path, base_verdicts: dict[str, str], write_spec) -> None:
    """The library refuses a file whose data does not end at the end of the file: every rule on tensor facts errors,
    while the format rule keeps its verdict (the file holds no code a loader would run: trailing bytes are never read)."""
    from safetensors import safe_open

    folder = shutil.copytree(base, tmp_path / "trailing")
    with (folder / "model.safetensors").open("ab") as handle:
        handle.write(b"\x80\x02cposix\nsystem\n.")  # bytes after the tensor data: no loader reads them as weights
    with pytest.raises(Exception, match="(?i)not fully covered|invalid|metadata"):
        with safe_open(str(folder / "model.safetensors"), framework="numpy"):
            pass
    results = verdicts(folder, write_spec)
    assert results["FORMAT"].status == base_verdicts["FORMAT"]
    assert results["PARAMS"].status == "error" and "tensor data ends at" in results["PARAMS"].message
    assert results["CODE"].status == base_verdicts["CODE"]


def test_keras_archives_are_a_weight_format_of_their_own(base: Path, tmp_path: Path, write_spec) -> None:
    """A `.keras` archive (a zip of config.json and HDF5 weights that Keras deserializes) is listed, so the
    format rule (default: safetensors only) judges it instead of passing on the safetensors beside it."""
    folder = shutil.copytree(base, tmp_path / "keras")
    with zipfile.ZipFile(folder / "model.keras", "w") as archive:
        archive.writestr("config.json", '{"class_name": "Sequential", "config": {"layers": []}}')
        archive.writestr("metadata.json", '{"keras_version": "3.0.0"}')
    results = verdicts(folder, write_spec)
    assert results["FORMAT"].status == "fail" and "keras" in results["FORMAT"].message
