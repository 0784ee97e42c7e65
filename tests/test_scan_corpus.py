"""The scan against the corpus of malicious and benign model files (conformance/zoo/scan_corpus.py).

Every malicious sample must get a finding ("dangerous" when its load reaches a code-execution global),
every benign one none; the benign pickles are ones torch's own weights_only loader accepts, so the
scan blocks nothing torch would load safely. No malicious sample is ever loaded: their payloads would
only create the canary file, which must never appear.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance.probes.scan import ScanEvidence, scan_folder
from conformance.zoo.scan_corpus import Sample, all_samples, build_corpus, call, value, wrap

SAMPLES = all_samples()
MALICIOUS = [sample for sample in SAMPLES if sample.expected == "malicious"]
BENIGN = [sample for sample in SAMPLES if sample.expected == "benign"]
# Opcodes that import or call something: a "pure-data" pickle has none of them.
_IMPORT_OR_CALL = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"}
# Generous bound proving the corpus scan does not hang (it takes seconds); not a speed assertion.
CORPUS_SCAN_BOUND_S = 300.0


@dataclass
class Corpus:
    folders: dict[str, Path]
    canary: Path
    evidence: dict[str, ScanEvidence]
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("scan-corpus")
    canary = tmp_path_factory.mktemp("canary") / "CANARY"
    folders = build_corpus(root, canary)
    evidence: dict[str, ScanEvidence] = {}
    seconds: dict[str, float] = {}
    for sample_id, folder in folders.items():
        start = time.perf_counter()
        evidence[sample_id] = scan_folder(folder)
        seconds[sample_id] = time.perf_counter() - start
    return Corpus(folders, canary, evidence, seconds)


def _seen(evidence: ScanEvidence) -> str:
    return "; ".join(f"{f.severity} {f.global_name or f.detail}" for f in evidence.findings) or "no finding"


def test_corpus_size_ids_and_sources() -> None:
    assert len(MALICIOUS) >= 150
    assert len(BENIGN) >= 45
    assert len({sample.id for sample in SAMPLES}) == len(SAMPLES)
    for sample in SAMPLES:
        assert sample.source and sample.main_file, sample.id
        assert sample.expected in ("malicious", "benign")
        assert sample.expected == "malicious" or not sample.code_execution
    projects = {sample.source.split()[0] for sample in SAMPLES}
    assert {"picklescan", "modelscan", "fickling"} <= projects


@pytest.mark.parametrize("sample", MALICIOUS, ids=lambda sample: sample.id)
def test_malicious_sample_is_flagged(corpus: Corpus, sample: Sample) -> None:
    evidence = corpus.evidence[sample.id]
    severities = {finding.severity for finding in evidence.findings}
    assert (corpus.folders[sample.id] / sample.main_file).is_file()
    assert severities, f"{sample.id} ({sample.source}): expected a finding, saw none"
    if sample.code_execution:
        assert "dangerous" in severities, f"{sample.id} ({sample.source}): expected dangerous, saw {_seen(evidence)}"
    assert not corpus.canary.exists()


@pytest.mark.parametrize("sample", BENIGN, ids=lambda sample: sample.id)
def test_benign_sample_is_not_flagged(corpus: Corpus, sample: Sample) -> None:
    evidence = corpus.evidence[sample.id]
    assert evidence.files, f"{sample.id}: nothing scanned"
    assert evidence.findings == [], f"{sample.id} ({sample.source}): expected no finding, saw {_seen(evidence)}"


@pytest.mark.parametrize("sample", [s for s in BENIGN if s.torch_check is not None], ids=lambda sample: sample.id)
def test_benign_pickle_is_accepted_by_torch_weights_only(corpus: Corpus, sample: Sample) -> None:
    """Our own benign files, loaded to prove torch's weights_only loader accepts what the scan must let through."""
    import torch
    from torch import _weights_only_unpickler

    path = corpus.folders[sample.id] / sample.main_file
    if sample.torch_check == "torch.load":
        torch.load(path, weights_only=True)
    elif sample.torch_check == "unpickler":
        _weights_only_unpickler.Unpickler(io.BytesIO(path.read_bytes()), encoding="utf-8").load()
    else:  # pure data: torch's unpickler refuses some of these for FRAME/BINBYTES opcodes, never for content
        opcodes = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
        assert opcodes, sample.id
        assert not opcodes & _IMPORT_OR_CALL, f"{sample.id}: {sorted(opcodes & _IMPORT_OR_CALL)}"
    assert not corpus.canary.exists()


def test_whole_corpus_scan_is_bounded(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    total = sum(corpus.seconds.values())
    slowest = sorted(corpus.seconds.items(), key=lambda item: -item[1])[:3]
    with capsys.disabled():
        print(f"\nscan corpus: {len(MALICIOUS)} malicious + {len(BENIGN)} benign samples scanned in {total:.2f} s; "
              f"slowest {', '.join(f'{name} {seconds:.2f} s' for name, seconds in slowest)}")
    assert total < CORPUS_SCAN_BOUND_S


def test_assembler_writes_what_it_claims() -> None:
    # The corpus is only as good as its assembler: decode (never load) what it writes.
    for protocol in range(6):
        for style in ("global", "stack", "memo") if protocol >= 4 else ("global",):
            ops = list(pickletools.genops(call("posix", "system", ["touch x"], protocol, style)))
            names = [op.name for op, _, _ in ops]
            assert names[-2:] == ["REDUCE", "STOP"], (protocol, style)
            if style == "global":
                assert ("GLOBAL", "posix system") in [(op.name, arg) for op, arg, _ in ops]
            else:
                assert "STACK_GLOBAL" in names
            assert ("PROTO" in names) == (protocol >= 2)
    assert pickle.loads(wrap(value({"a": [1, (2, "b")], "c": None}, 2), 2)) == {"a": [1, (2, "b")], "c": None}
    assert pickle.loads(wrap(value([b"\xff\x00", "é\n"], 0), 0)) == [b"\xff\x00", "é\n"]
    with pytest.raises(TypeError):
        value(object())


def test_build_refuses_an_existing_sample_folder(tmp_path: Path) -> None:
    sample = BENIGN[0]
    build_corpus(tmp_path, tmp_path / "CANARY", [sample])
    with pytest.raises(FileExistsError):
        build_corpus(tmp_path, tmp_path / "CANARY", [sample])


def test_canary_never_appears(corpus: Corpus) -> None:
    assert corpus.evidence and not corpus.canary.exists()
