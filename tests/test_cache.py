"""The evidence cache: a rerun with unchanged models only re-judges; any change measures again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cache import EvidenceCache, HashCache, decode, encode
from conformance.cli import main
from conformance.probe_catalogue import cacheable_types

RULES = [
    {"id": "LOADS", "level": "must", "check": "runtime.loads"},
    {"id": "LOGITS", "level": "must", "check": "runtime.logits_finite"},
    {"id": "SENT", "level": "must", "check": "quality.task_score", "task": "conformance_sentiment", "min": 0.0, "limit": 10},
    {"id": "DECODE", "level": "should", "check": "performance.decode_tokens_per_second", "min": 1,
     "workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4},
     "measurement": {"warmup_runs": 1, "min_runs": 3, "min_seconds": 0.05}},
    {"id": "MBU", "level": "may", "check": "performance.mbu", "min": 0, "peak_bytes_per_second": 1e11,
     "workload": {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 4},
     "measurement": {"warmup_runs": 1, "min_runs": 3, "min_seconds": 0.05}},
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
    cache = EvidenceCache(tmp_path, cacheable_types())
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


# --- never cache what failed -----------------------------------------------------------------------

DECODE_WORKLOAD = {"batch_size": 1, "prompt_tokens": 8, "new_tokens": 5}


def decode_rule(bar: float, **measurement: object) -> dict:
    return {"id": "DECODE", "level": "must", "check": "performance.decode_tokens_per_second", "min": bar,
            "workload": DECODE_WORKLOAD, "measurement": {"warmup_runs": 0, "min_runs": 2, "min_seconds": 0.0, **measurement}}


def run(model: Path, spec: Path, out: Path, cache: Path) -> tuple[int, dict]:
    code = main(["check", str(model), "--spec", str(spec), "--out", str(out), "--cache-dir", str(cache), "-q"])
    return code, json.loads((out / f"{model.name}.json").read_text())


def speed_evidence(document: dict) -> dict:
    return next(value for key, value in document["evidence"].items() if key.startswith("speed["))


@pytest.fixture
def speed_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts speed measurements (the real probe runs)."""
    from conformance.probes import speed as speed_module

    calls: list[int] = []
    real = speed_module.measure_speed

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(speed_module, "measure_speed", counting)
    return calls


def test_an_inconclusive_measurement_is_never_cached(llama_dir: Path, copy_model, write_spec, tmp_path: Path, speed_calls: list[int]) -> None:
    """At 0.99 confidence the first look's median interval needs 8 runs; with max_runs 7 no bar can be decided."""
    model, cache = copy_model(llama_dir, "inconclusive"), tmp_path / "cache"
    spec = write_spec([decode_rule(1, max_runs=7, confidence=0.99)])
    for attempt in (1, 2):
        code, document = run(model, spec, tmp_path / f"run{attempt}", cache)
        rule = document["rules"][0]
        assert code == 1 and rule["status"] == "error" and rule["expected"] == ">= 1"  # the bar stays in view
        assert "inconclusive: decode tokens/s 98.78% CI [-inf, inf] straddles >= 1 after 7 runs (max_runs; look 1, verdict confidence 99%)" in rule["message"]
        speed = speed_evidence(document)
        assert (speed["stopping_reason"], speed["decided"], speed["runs"]) == ("max_runs", False, 7)
        assert len(speed_calls) == attempt  # measured again: nothing undecided was served from the cache
    assert not [p for p in (cache / "evidence").rglob("*.json") if "SpeedEvidence" in p.read_text()]


def test_a_probe_that_raised_is_measured_again(llama_dir: Path, copy_model, write_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes import speed as speed_module

    model, cache = copy_model(llama_dir, "raised-once"), tmp_path / "cache"
    spec = write_spec([decode_rule(1)])
    real, calls = speed_module.measure_speed, []

    def fails_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("device lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(speed_module, "measure_speed", fails_first)
    code, document = run(model, spec, tmp_path / "first", cache)
    assert code == 1 and "RuntimeError: device lost" in document["rules"][0]["message"]
    code, document = run(model, spec, tmp_path / "second", cache)
    assert code == 0 and document["rules"][0]["status"] == "pass" and len(calls) == 2
    code, _ = run(model, spec, tmp_path / "third", cache)
    assert code == 0 and len(calls) == 2  # the decided measurement is cached


def test_a_cached_measurement_serves_only_the_bars_it_decides(llama_dir: Path, copy_model, write_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs with other bars share the measurement's cache key; one it cannot decide measures again (longer)."""
    import random

    from conformance.probes import speed as speed_module
    from conformance.probes.stopping import run_until_decided

    generator = random.Random(11)
    pairs = [(0.001 * generator.lognormvariate(0, 0.2), 0.005 * generator.lognormvariate(0, 0.2)) for _ in range(2000)]
    calls: list[int] = []

    def recorded(loaded, params, decided=None):  # the real loop and summary on recorded timings
        calls.append(1)
        workload, policy = speed_module.parse_speed_params(params)
        index = iter(pairs)
        now = [0.0]

        def one_round() -> tuple[float, float]:
            prefill, full = next(index)
            now[0] += prefill + full
            return prefill, full

        def summarize(rounds):
            return speed_module.build_evidence(workload, policy, rounds, {"device": "cpu"}, "recorded")

        return summarize(run_until_decided(one_round, policy, summarize, decided, clock=lambda: now[0]))

    monkeypatch.setattr(speed_module, "measure_speed", recorded)
    model, cache = copy_model(llama_dir, "two-bars"), tmp_path / "cache"
    _, far = run(model, write_spec([decode_rule(1)], name="far.yaml"), tmp_path / "far", cache)
    assert speed_evidence(far)["runs"] == 6 and len(calls) == 1
    figure = speed_evidence(far)["decode_tokens_per_second"]
    _, near = run(model, write_spec([decode_rule(round(figure * 0.93))], name="near.yaml"), tmp_path / "near", cache)
    assert len(calls) == 2 and speed_evidence(near)["runs"] > 6  # the 6-run figure could not decide it
    assert near["rules"][0]["status"] in ("pass", "fail") and speed_evidence(near)["stopping_reason"] == "decided"
    _, again = run(model, write_spec([decode_rule(1)], name="far-again.yaml"), tmp_path / "again", cache)
    assert len(calls) == 2 and speed_evidence(again)["runs"] == speed_evidence(near)["runs"]  # the longer one serves both


def test_evidence_measured_by_other_code_is_not_served(tmp_path: Path) -> None:
    """The environment carries a digest of the package's code: same version, other code, another key."""
    import conformance
    from conformance.cache import code_digest, environment_fingerprint
    from conformance.runner import LoadOptions

    package = tmp_path / "package"
    (package / "probes" / "__pycache__").mkdir(parents=True)
    (package / "probes" / "load.py").write_text("KIND = 'encoder'\n")
    (package / "_specs").mkdir()
    (package / "_specs" / "families.json").write_text("{}")
    before = code_digest(package)
    (package / "probes" / "__pycache__" / "load.cpython-311.pyc").write_bytes(b"compiled")  # not code we ship
    (package / "notes.txt").write_text("not read")
    assert code_digest(package) == before
    (package / "probes" / "load.py").write_text("KIND = 'seq2seq'\n")
    assert code_digest(package) != before
    (package / "probes" / "load.py").write_text("KIND = 'encoder'\n")
    (package / "_specs" / "families.json").write_text('{"t5": {}}')  # the family table decides static facts too
    assert code_digest(package) != before

    installed = Path(conformance.__file__).resolve().parent
    assert environment_fingerprint(LoadOptions())["code"] == code_digest(installed)
