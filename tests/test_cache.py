"""The evidence cache: a rerun with unchanged models only re-judges; any change measures again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cache import EvidenceCache, HashCache, decode, encode
from conformance.cli import main

RULES = [
    {"id": "LOADS", "level": "must", "check": "runtime.loads"},
    {"id": "LOGITS", "level": "must", "check": "runtime.logits_finite"},
    {"id": "SENT", "level": "must", "check": "quality.task_score", "task": "conformance_sentiment", "min": 0.0, "limit": 10},
    {"id": "DECODE", "level": "should", "check": "performance.decode_tokens_per_second", "min": 1,
     "workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4},
     "measurement": {"warmup_runs": 1, "min_runs": 3, "min_seconds": 0.05, "max_cv": 10.0}},
    {"id": "MBU", "level": "may", "check": "performance.mbu", "min": 0, "peak_bytes_per_second": 1e11,
     "workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4},
     "measurement": {"warmup_runs": 1, "min_runs": 3, "min_seconds": 0.05, "max_cv": 10.0}},
    {"id": "SIZE", "level": "must", "check": "size.parameters", "max": 1e9},
]


@pytest.fixture
def counters(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    import lm_eval

    from conformance.probes import load as load_module

    counts = {"load": 0, "evaluate": 0}
    load_model, evaluate = load_module.load_model, lm_eval.simple_evaluate

    def counting_load(*args, **kwargs):
        counts["load"] += 1
        return load_model(*args, **kwargs)

    def counting_evaluate(*args, **kwargs):
        counts["evaluate"] += 1
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(load_module, "load_model", counting_load)
    monkeypatch.setattr(lm_eval, "simple_evaluate", counting_evaluate)
    return counts


def check(model: Path, spec: Path, out: Path, cache: Path, *extra: str) -> dict:
    code = main(["check", str(model), "--spec", str(spec), "--out", str(out), "--cache-dir", str(cache), "-q", *extra])
    document = json.loads((out / f"{model.name}.json").read_text())
    assert code == 0, document["rules"]
    return document


def statuses(document: dict) -> dict[str, tuple[str, object]]:
    return {r["id"]: (r["status"], r["observed"]) for r in document["rules"]}


def test_warm_rerun_only_rejudges(llama_dir: Path, copy_model, write_spec, tmp_path: Path, counters: dict) -> None:
    model = copy_model(llama_dir, "cached-llama")
    spec, cache = write_spec(RULES), tmp_path / "cache"
    cold = check(model, spec, tmp_path / "cold", cache)
    assert counters == {"load": 1, "evaluate": 1}
    warm = check(model, spec, tmp_path / "warm", cache)
    assert counters == {"load": 1, "evaluate": 1}  # nothing loaded or scored again
    assert statuses(warm) == statuses(cold)
    assert warm["evidence"]["load"] == cold["evidence"]["load"]

    check(model, spec, tmp_path / "forced", cache, "--no-cache")
    assert counters == {"load": 2, "evaluate": 2}

    card = model / "README.md"
    card.write_text(card.read_text() + "\nA changed card.\n")
    check(model, spec, tmp_path / "changed", cache)
    assert counters == {"load": 3, "evaluate": 3}  # any change to the folder's files measures again


def test_cached_load_facts_are_replaced_by_a_live_model_when_needed(llama_dir: Path, copy_model, write_spec, tmp_path: Path, counters: dict) -> None:
    model = copy_model(llama_dir, "partly-cached")
    cache = tmp_path / "cache"
    check(model, write_spec(RULES[:1], name="loads.yaml"), tmp_path / "one", cache)
    document = check(model, write_spec(RULES[:2], name="loads-and-logits.yaml"), tmp_path / "two", cache)
    assert counters["load"] == 2  # load facts came from the cache; the forward pass needed the model itself
    assert {s for s, _ in statuses(document).values()} == {"pass"}


def test_file_hashes_are_cached_by_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes import hashes as hashes_module

    target = tmp_path / "weights.bin"
    target.write_bytes(b"a" * 1000)
    reads: list[Path] = []
    original = hashes_module.sha256_file
    monkeypatch.setattr(hashes_module, "sha256_file", lambda path: reads.append(path) or original(path))
    cache = HashCache(tmp_path / "cache")
    first = cache.sha256(target)
    cache.save()
    assert HashCache(tmp_path / "cache").sha256(target) == first and len(reads) == 1
    target.write_bytes(b"b" * 1000)
    assert HashCache(tmp_path / "cache").sha256(target) != first and len(reads) == 2


def test_codec_round_trips_evidence_and_refuses_other_types(tmp_path: Path) -> None:
    from conformance.probes.stats import SampleStats
    from conformance.probes.tasks import TaskScores

    scores = TaskScores(scores={"t": {"acc": 0.5}}, stderrs={"t": {"acc": float("nan")}}, limits={"t": None})
    again = decode(json.loads(json.dumps(encode(scores))), {"TaskScores": TaskScores})
    assert again.scores == scores.scores and again.limits == {"t": None}
    stats = SampleStats.of([1.0, 2.0, 3.0])
    assert decode(encode(stats), {"SampleStats": SampleStats}) == stats
    with pytest.raises(ValueError, match="not cacheable"):
        decode({"__type__": "Popen", "fields": {}}, {"TaskScores": TaskScores})
    cache = EvidenceCache(tmp_path)
    (tmp_path / "evidence" / "ab").mkdir(parents=True)
    (tmp_path / "evidence" / "ab" / "abc.json").write_text('{"__type__": "os.system", "fields": {}}')
    assert cache.get("abc") == (False, None)  # a tampered entry is a miss, never executed


def test_task_requests_are_part_of_the_key(llama_dir: Path, copy_model, write_spec, tmp_path: Path, counters: dict) -> None:
    model = copy_model(llama_dir, "task-keys")
    cache = tmp_path / "cache"
    sentiment = {"id": "T", "level": "must", "check": "quality.task_score", "task": "conformance_sentiment", "min": 0.0, "limit": 10}
    first = check(model, write_spec([sentiment], name="one.yaml"), tmp_path / "one", cache)
    second = check(model, write_spec([{**sentiment, "task": "conformance_facts"}], name="two.yaml"), tmp_path / "two", cache)
    assert counters["evaluate"] == 2  # a different task list is a different measurement
    assert set(first["evidence"]["tasks"]["scores"]) == {"conformance_sentiment"}
    assert set(second["evidence"]["tasks"]["scores"]) == {"conformance_facts"}


def test_probes_that_do_not_apply_are_cached_too(bert_dir: Path, copy_model, write_spec, tmp_path: Path, counters: dict) -> None:
    model = copy_model(bert_dir, "cached-bert")
    spec, cache = write_spec(RULES), tmp_path / "cache"
    first = check(model, spec, tmp_path / "first", cache)
    assert first["summary"]["skipped"] >= 2 and counters["load"] == 1  # tasks and speed skip an encoder
    second = check(model, spec, tmp_path / "second", cache)
    assert counters["load"] == 1 and statuses(second) == statuses(first)
