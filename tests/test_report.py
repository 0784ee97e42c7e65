"""Leaderboard, plots, page and diff: views of result documents, built from real runs and from hand-made documents."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.candidate import Candidate
from conformance.metrics import primary_metric
from conformance.report.diff import diff_documents
from conformance.report.figures import FAMILIES, family_legend, family_of, family_status, primary_speed_key
from conformance.report.leaderboard import write_leaderboard
from conformance.report.names import file_stems
from conformance.report.plots import FIGURE_SIZE_PX, HEATMAP_SIZE_PX, all_plots, axis_scale, pareto_front
from conformance.report.table import MEAN_NORMALIZED, WIN_RATE, build_leaderboard
from conformance.result_document import ResultDocument
from conformance.results import RuleResult, load_result, validate_document
from conformance.runner import RunOptions, run
from conformance.spec import load_spec
from conformance.tasks import chance_score

TASK_LIMIT = 20
TASKS = {"conformance_sentiment": "acc", "conformance_facts": "acc", "conformance_arithmetic": "acc", "conformance_lm": "word_perplexity"}
WORKLOAD = {"batch_size": 1, "prompt_tokens": 16, "new_tokens": 16}
SPEED_KEY = 'speed[measurement={"max_cv": 10.0},workload={"batch_size": 1, "new_tokens": 8, "prompt_tokens": 16}]'
PLOT_NAMES = ("quality_vs_throughput", "parameters_vs_quality", "task_scores", "rule_heatmap")


# --- real documents: the shipped release standard plus task and speed rules, run on the zoo ----------------

@pytest.fixture(scope="module")
def suite_documents(tmp_path_factory, llama_dir: Path, gpt2_dir: Path, bert_dir: Path, trained_llama_dir: Path) -> list[dict]:
    rules = [
        {"id": f"Q-{task}", "level": "should", "check": "quality.task_score", "task": task, "metric": metric,
         **({"max": 1e12} if metric == "word_perplexity" else {"min": 0.6}), "limit": TASK_LIMIT}
        for task, metric in TASKS.items()
    ]
    rules.append({"id": "PERF-DECODE", "level": "should", "check": "performance.decode_tokens_per_second", "min": 1,
                  "workload": WORKLOAD, "measurement": {"min_seconds": 0.2}})
    spec_path = tmp_path_factory.mktemp("report-spec") / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"id": "report-test", "version": "1", "extends": ["small-causal-lm-release"], "rules": rules}))
    spec = load_spec(spec_path)
    return [run(Candidate(path), spec, RunOptions(log=lambda message: None)).to_document()
            for path in (llama_dir, gpt2_dir, bert_dir, trained_llama_dir)]


def test_real_leaderboard_ranks_conformant_models_first_then_by_mean_normalized_score(suite_documents: list[dict]) -> None:
    board = build_leaderboard(suite_documents)
    frame = board.frame
    assert list(frame["rank"]) == [1, 2, 3, 4]
    assert list(frame["conformant"]) == [True, True, True, False]
    assert frame["model"].iloc[-1] == "tiny-bert"  # an encoder is not a causal LM: not conformant
    conformant_scores = list(frame[MEAN_NORMALIZED].iloc[:3])
    assert conformant_scores == sorted(conformant_scores, reverse=True)
    assert frame["model"].iloc[0] == "tiny-llama-trained"  # trained to beat chance on sentiment


def test_real_leaderboard_has_the_promised_columns_and_values(suite_documents: list[dict]) -> None:
    board = build_leaderboard(suite_documents)
    frame = board.frame.set_index("model")
    for column in ("rank", "parameters", "dtype", "architecture", "license", "weights_sha256", MEAN_NORMALIZED, WIN_RATE,
                   "decode_tokens_per_second", "prefill_tokens_per_second", "ttft_ms_p50", "peak_memory_bytes",
                   *(f"badge.{family}" for family in ("architecture", "size", "safety", "performance", "quality"))):
        assert column in frame.columns, column
    for task, metric in TASKS.items():
        assert f"{task}.{metric}" in frame.columns
        assert (f"{task}.{metric}.normalized" in frame.columns) == (metric != "word_perplexity")
    llama = frame.loc["tiny-llama"]
    document = suite_documents[0]
    assert llama["parameters"] == document["evidence"]["static"]["parameters"]["parameters"]
    assert llama["weights_sha256"] == document["model"]["sha256"][:12]
    assert (llama["dtype"], llama["architecture"], llama["license"]) == ("F32", "llama", "apache-2.0")
    speed = document["evidence"][board.speed_key]
    # A busy CPU can leave decode time unresolved (None in the evidence): the table shows what was measured.
    if speed["decode_tokens_per_second"] is None:
        assert math.isnan(llama["decode_tokens_per_second"])
    else:
        assert llama["decode_tokens_per_second"] == pytest.approx(speed["decode_tokens_per_second"])
    assert llama["prefill_tokens_per_second"] == pytest.approx(speed["prefill_tokens_per_second"])
    assert board.speed_workload.startswith("batch 1, 16 prompt tokens, 16 new tokens (")  # the device follows
    bert = frame.loc["tiny-bert"]
    assert math.isnan(bert[MEAN_NORMALIZED]) and math.isnan(bert["decode_tokens_per_second"])
    assert (bert["badge.architecture"], bert["badge.performance"], bert["badge.quality"]) == ("fail", "skip", "skip")


def test_normalized_scores_follow_the_formula_on_real_documents(suite_documents: list[dict]) -> None:
    frame = build_leaderboard(suite_documents).frame
    normalized_columns = [f"{task}.{metric}.normalized" for task, metric in TASKS.items() if metric != "word_perplexity"]
    for _, row in frame.iterrows():
        if row["model"] == "tiny-bert":
            continue
        for task, metric in TASKS.items():
            if metric == "word_perplexity":
                continue
            chance = chance_score(task, metric)
            assert row[f"{task}.{metric}.normalized"] == pytest.approx(max(0.0, (row[f"{task}.{metric}"] - chance) / (1 - chance)))
        assert row[MEAN_NORMALIZED] == pytest.approx(sum(row[c] for c in normalized_columns) / len(normalized_columns))


# --- hand-made documents: exact expectations ---------------------------------------------------------------

def rule(rule_id: str, check: str, status: str = "pass", level: str = "must", message: str = "") -> dict[str, Any]:
    return {"id": rule_id, "check": check, "level": level, "status": status, "observed": None, "expected": None,
            "message": message, "seconds": 0.0}


def make_document(name: str, *, scores: dict[str, dict[str, float]] | None = None, decode: float | None = None,
                  parameters: int | None = 1000, rules: list[dict] | None = None, spec_id: str = "hand",
                  decode_interval: tuple[float, float] | None = None, decided: bool | None = None) -> dict[str, Any]:
    """A minimal valid result document, with the evidence layout the probes write."""
    rules = rules if rules is not None else [rule("SIZE", "size.parameters"), rule("ARCH", "architecture.model_type")]
    evidence: dict[str, Any] = {"static": {"parameters": {"parameters": parameters} if parameters else {},
                                           "weight_dtypes": {"BF16": parameters or 0}, "weight_bytes": 2 * (parameters or 0),
                                           "architecture": {"model_type": "llama"}},
                                "card": {"metadata": {"license": "mit"}}}
    if scores is not None:
        evidence["tasks"] = {"scores": scores, "stderrs": {}}
    if decode is not None:
        evidence[SPEED_KEY] = {"decode_tokens_per_second": decode, "prefill_tokens_per_second": 10 * decode,
                               "ttft_ms": {"p50": 1000 / decode}, "tpot_ms": {"p50": 1000 / decode},
                               "peak_memory_bytes": 2**20, "process_peak_memory_bytes": 2**29, "environment": {"device": "cpu"}}
        if decode_interval is not None:
            low, high = decode_interval
            evidence[SPEED_KEY]["intervals"] = {"decode_tokens_per_second": {"low": low, "high": high, "level": 0.95}}
        if decided is not None:
            evidence[SPEED_KEY]["decided"] = decided
    broken = [r for r in rules if r["status"] in ("fail", "error")]
    document = {
        "schema_version": "1.0",
        "spec": {"id": spec_id, "version": "1", "sha256": hashlib.sha256(spec_id.encode()).hexdigest()},
        "model": {"name": name, "path": f"/models/{name}", "sha256": hashlib.sha256(name.encode()).hexdigest()},
        "environment": {},
        "summary": {"passed": sum(r["status"] == "pass" for r in rules), "failed": sum(r["status"] == "fail" for r in rules),
                    "skipped": sum(r["status"] == "skip" for r in rules), "errors": sum(r["status"] == "error" for r in rules),
                    "conformant": not any(r["level"] == "must" for r in broken)},
        "rules": rules,
        "evidence": evidence,
    }
    assert validate_document(document) == []
    return document


def sentiment(acc: float) -> dict[str, dict[str, float]]:
    return {"conformance_sentiment": {"acc": acc, "acc_norm": acc}}


def test_ranking_puts_conformant_first_then_score_then_name() -> None:
    documents = [
        make_document("zeta", scores=sentiment(0.7)),
        make_document("best-but-broken", scores=sentiment(1.0), rules=[rule("SIZE", "size.parameters", "fail")]),
        make_document("alpha", scores=sentiment(0.7)),
        make_document("top", scores=sentiment(0.9)),
        make_document("unscored"),
    ]
    frame = build_leaderboard(documents).frame
    assert list(frame["model"]) == ["top", "alpha", "zeta", "unscored", "best-but-broken"]
    assert list(frame["rank"]) == [1, 2, 3, 4, 5]


def test_normalization_is_chance_corrected_and_clipped_at_zero() -> None:
    chance = chance_score("conformance_sentiment", "acc")
    assert chance == 0.5  # two labels
    documents = [make_document("good", scores=sentiment(0.75)), make_document("bad", scores=sentiment(0.3))]
    frame = build_leaderboard(documents).frame.set_index("model")
    assert frame.loc["good", "conformance_sentiment.acc.normalized"] == pytest.approx(0.5)
    assert frame.loc["bad", "conformance_sentiment.acc.normalized"] == 0.0  # below chance clips at 0
    assert frame.loc["good", "conformance_sentiment.acc"] == 0.75  # raw kept beside it


def test_perplexity_is_raw_only_and_left_out_of_the_mean() -> None:
    scores = {**sentiment(0.75), "conformance_lm": {"word_perplexity": 12.5, "byte_perplexity": 2.0}}
    board = build_leaderboard([make_document("m", scores=scores)])
    assert "conformance_lm.word_perplexity" in board.frame.columns
    assert not any(column.startswith("conformance_lm") and column.endswith("normalized") for column in board.frame.columns)
    assert board.frame[MEAN_NORMALIZED].iloc[0] == pytest.approx(0.5)


def test_primary_metric_prefers_acc_then_acc_norm_then_perplexity() -> None:
    assert primary_metric(["acc_norm", "acc"]) == "acc"
    assert primary_metric(["acc_norm"]) == "acc_norm"
    assert primary_metric(["bits_per_byte", "word_perplexity", "byte_perplexity"]) == "word_perplexity"
    assert primary_metric([]) is None


def test_mean_win_rate_is_helms_with_ties_half_and_missing_columns_skipped() -> None:
    documents = [
        make_document("A", scores={**sentiment(0.9), "conformance_lm": {"word_perplexity": 10.0}}, decode=100.0),
        make_document("B", scores={**sentiment(0.6), "conformance_lm": {"word_perplexity": 20.0}}, decode=200.0),
        make_document("C", scores=sentiment(0.6), decode=50.0),
    ]
    rates = build_leaderboard(documents).frame.set_index("model")[WIN_RATE]
    # A: sentiment 1, perplexity 1 (lower wins), decode 0.5; B: 0.25, 0, 1; C: 0.25, (no perplexity), 0.
    assert rates["A"] == pytest.approx(2.5 / 3)
    assert rates["B"] == pytest.approx(1.25 / 3)
    assert rates["C"] == pytest.approx(0.25 / 2)


def test_an_undecided_speed_figure_is_marked_and_never_ranked() -> None:
    """The reported case: one model's decode rule ended inconclusive at 192.6 tokens/s (others ~950)."""
    from conformance.report.table import cell_text, render_markdown_table

    documents = [
        make_document("A", scores=sentiment(0.9), decode=950.0, decode_interval=(900.0, 1000.0), decided=True),
        make_document("B", scores=sentiment(0.6), decode=192.6, decode_interval=(100.0, 2000.0), decided=False),
        make_document("C", scores=sentiment(0.6), decode=500.0, decode_interval=(450.0, 550.0), decided=True),
    ]
    board = build_leaderboard(documents)
    frame = board.frame.set_index("model")
    assert math.isnan(frame.loc["B", "decode_tokens_per_second"]) and not frame.loc["B", "speed_decided"]
    assert frame.loc["B", "peak_memory_bytes"] == 2**20  # memory is not a timing: still shown
    # B's win rate counts sentiment only; A and C are ranked on decode against each other alone.
    assert frame.loc["B", WIN_RATE] == pytest.approx(0.25)
    assert frame.loc["A", WIN_RATE] == pytest.approx((1.0 + 1.0) / 2)
    assert frame.loc["C", WIN_RATE] == pytest.approx((0.25 + 0.0) / 2)
    record = board.frame.set_index("model").reset_index().to_dict("records")[1]
    assert cell_text("decode_tokens_per_second", record) == "undecided"
    assert "undecided" in render_markdown_table(board)
    plot = next(plot for plot in all_plots(board) if plot.name == "quality_vs_throughput")
    assert "B" not in plot.series["points"] and "B" not in plot.series["pareto_front"]


def test_overlapping_intervals_tie_in_win_rate_and_share_the_pareto_front() -> None:
    documents = [
        make_document("fast", scores=sentiment(0.6), decode=105.0, decode_interval=(95.0, 115.0)),
        make_document("slow", scores=sentiment(0.6), decode=100.0, decode_interval=(90.0, 110.0)),
        make_document("clearly-slower", scores=sentiment(0.6), decode=50.0, decode_interval=(45.0, 55.0)),
    ]
    frame = build_leaderboard(documents).frame.set_index("model")
    # decode: fast ties slow (overlap) and beats clearly-slower; sentiment ties all round.
    assert frame.loc["fast", WIN_RATE] == pytest.approx((0.5 + 0.75) / 2)
    assert frame.loc["slow", WIN_RATE] == pytest.approx((0.5 + 0.75) / 2)
    points = [("fast", 105.0, 0.2), ("slow", 100.0, 0.2), ("clearly-slower", 50.0, 0.2)]
    bounds = {"fast": (95.0, 115.0), "slow": (90.0, 110.0), "clearly-slower": (45.0, 55.0)}
    assert pareto_front(points) == ["fast"]  # on point figures 5 tokens/s of noise decide
    assert pareto_front(points, bounds) == ["slow", "fast"]  # not separated by overlapping intervals


def test_interval_levels_spent_over_looks_never_read_as_100_percent() -> None:
    from conformance.report.text import interval_text

    def with_interval(interval: dict | None) -> RuleResult:
        return RuleResult("P", "performance.decode_tokens_per_second", "should", "pass", interval=interval)

    assert interval_text(with_interval({"low": 18.13, "high": 18.31, "level": 0.99924})) == "99.92% [18.13, 18.31]"
    assert interval_text(with_interval({"low": "-inf", "high": "inf", "level": 0.98784})) == "98.78% [-inf, inf]"
    assert interval_text(with_interval({"low": 1.0, "high": 2.0, "level": 0.999964})) == "99.9964% [1, 2]"
    assert interval_text(with_interval(None)) == ""


def test_memory_columns_say_whose_memory() -> None:
    from conformance.report.html import _columns
    from conformance.report.table import markdown_label

    board = build_leaderboard([make_document("m", scores=sentiment(0.9), decode=100.0)])
    labels = {column.name: (column.label, column.sub) for column in _columns(board)}
    assert labels["peak_memory_bytes"] == ("peak memory", "model")
    assert labels["process_peak_memory_bytes"] == ("peak memory", "process")
    assert markdown_label("peak_memory_bytes") == "peak memory (model)"
    assert markdown_label("process_peak_memory_bytes") == "peak memory (process)"


def test_win_rate_needs_another_model_to_beat() -> None:
    assert math.isnan(build_leaderboard([make_document("alone", scores=sentiment(0.9))]).frame[WIN_RATE].iloc[0])


def test_speed_figures_come_from_the_workload_most_models_measured() -> None:
    a, b = make_document("a", decode=10.0), make_document("b", decode=20.0)
    other = 'speed[workload={"batch_size": 8}]'
    b["evidence"][other] = {"decode_tokens_per_second": 999.0}
    assert primary_speed_key([ResultDocument(a), ResultDocument(b)]) == SPEED_KEY
    frame = build_leaderboard([a, b]).frame.set_index("model")
    assert frame.loc["b", "decode_tokens_per_second"] == 20.0


def test_badges_per_family() -> None:
    assert family_of("card.present") == "safety" and family_of("tokenizer.present") == "architecture"
    assert family_of("runtime.loads") == "safety" and family_of("size.parameters") == "size"
    assert family_of("novel.check") == "other"
    def status_of(*rules: dict[str, Any]) -> str:
        return family_status([RuleResult.from_dict(entry) for entry in rules])

    assert status_of(rule("a", "size.x"), rule("b", "size.y", "fail")) == "fail"
    assert status_of(rule("a", "size.x", "error", "should")) == "warn"
    assert status_of(rule("a", "size.x", "fail", "may"), rule("b", "size.y")) == "warn"
    assert status_of(rule("a", "size.x", "skip"), rule("b", "size.y")) == "pass"
    assert status_of(rule("a", "size.x", "skip")) == "skip"
    assert status_of() == "na"
    board = build_leaderboard([make_document("m", rules=[rule("C", "card.present", "fail"), rule("S", "size.parameters")])])
    record = board.frame.iloc[0]
    assert (record["badge.safety"], record["badge.size"], record["badge.quality"]) == ("fail", "pass", "na")
    assert "other" not in board.families


def test_every_shipped_check_counts_under_one_of_the_five_families() -> None:
    from conformance.catalogue import all_checks

    prefixes = {definition.name.split(".", 1)[0] for definition in all_checks()}
    assert {prefix: family_of(f"{prefix}.x") for prefix in prefixes if family_of(f"{prefix}.x") not in FAMILIES} == {}
    assert family_legend() == ("Card, runtime, chat-template and generation rules count under safety; "
                               "tokenizer and file rules under architecture.")


def test_an_lm_eval_group_collapses_to_its_aggregate_behind_its_own_button() -> None:
    from conformance.report.html import render_html

    scores = {"suite": {"acc": 0.6}, "suite_a": {"acc": 0.7}, "suite_b": {"acc": 0.5}, "suite_b_deep": {"acc": 0.4},
              "other": {"acc": 0.3}, "loose_x": {"acc": 0.2}}
    documents = [make_document(name, scores=scores) for name in ("m1", "m2")]
    documents[0]["evidence"]["tasks"]["group_subtasks"] = {"suite": ["suite_a", "suite_b"], "suite_b": ["suite_b_deep"],
                                                           'loose"}<x>': ["loose_x"]}
    page = render_html(build_leaderboard(documents), [])
    buttons = re.findall(r'data-toggle="([^"]+)" aria-pressed="(true|false)" title="[^"]*">([^<]+)<', page)
    # A group with its aggregate column starts collapsed; one without starts shown; names reach the CSS made safe.
    assert buttons[-2:] == [("task-group:loose---x-", "true", "loose&#34;}&lt;x&gt; subtasks "),
                            ("task-group:suite", "false", "suite subtasks ")]
    groups = dict(re.findall(r'<th data-column="([^"]+)" data-group="([^"]+)"', page))
    assert groups["suite.acc"] == groups["other.acc"] == "tasks"  # unknown tasks: raw scores, no chance level
    assert groups["suite_a.acc"] == groups["suite_b.acc"] == groups["suite_b_deep.acc"] == "tasks task-group:suite"
    assert groups["loose_x.acc"] == "tasks task-group:loose---x-"
    assert re.search(r'<table id="leaderboard" data-hidden="families identity task-group:suite">', page)
    assert 'table[data-hidden~="task-group:suite"] [data-group~="task-group:suite"] { display: none; }' in page


def test_axes_are_log_only_over_a_decade_or_more() -> None:
    assert axis_scale([1.396e5, 1.492e5]) == "linear"  # the zoo: a log axis would show 1.40x10^5 ... 1.48x10^5
    assert axis_scale([1.35e8, 7e9]) == "log"  # 135M to 7B parameters
    assert axis_scale([0.0, 10.0]) == axis_scale([-1.0, 100.0]) == "linear"  # no log of zero or less
    assert axis_scale([5.0]) == axis_scale([]) == axis_scale([float("nan")]) == "linear"


def test_pareto_front_keeps_only_non_dominated_points() -> None:
    points = [("slow-good", 10.0, 0.9), ("fast-bad", 100.0, 0.1), ("dominated", 50.0, 0.05), ("middle", 50.0, 0.5),
              ("tie-slower", 40.0, 0.5)]
    assert pareto_front(points) == ["slow-good", "middle", "fast-bad"]


# --- files: CSV, Markdown, documents, PNGs, page -----------------------------------------------------------

@pytest.fixture(scope="module")
def written(suite_documents: list[dict], tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("leaderboard")
    return out, write_leaderboard(suite_documents, out)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) read from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_leaderboard_writes_every_output(written) -> None:
    out, paths = written
    expected = {"leaderboard.html", "leaderboard.md", "leaderboard.csv",
                *(f"plots/{name}.png" for name in PLOT_NAMES),
                *(f"results/{name}.json" for name in ("tiny-llama", "tiny-gpt2", "tiny-bert", "tiny-llama-trained"))}
    assert set(paths) == expected
    assert all((out / relative).is_file() for relative in expected)
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_csv_parses_with_pandas_in_rank_order(written, suite_documents: list[dict]) -> None:
    import pandas as pd

    out, _ = written
    frame = pd.read_csv(out / "leaderboard.csv")
    assert len(frame) == len(suite_documents)
    assert list(frame["rank"]) == [1, 2, 3, 4]
    assert frame["model"].iloc[0] == "tiny-llama-trained"
    assert frame["conformance_sentiment.acc"].iloc[0] > 0.5


def test_markdown_has_a_table_row_per_model(written) -> None:
    out, _ = written
    text = (out / "leaderboard.md").read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0].startswith("| rank | model | conformant |") and set(table[1]) <= {"|", "-"}
    assert len(table) == 2 + 4
    assert table[2].startswith("| 1 | tiny-llama-trained | yes |")
    assert all(f"(plots/{name}.png)" in text for name in PLOT_NAMES)
    assert "Speed figures: batch 1, 16 prompt tokens, 16 new tokens" in text
    assert family_legend() in text
    lines = text.splitlines()
    images = [index for index, line in enumerate(lines) if line.startswith("![")]
    assert len(images) == len(PLOT_NAMES)
    for index in images:  # one image per paragraph, nothing after it on its line
        assert lines[index].endswith(".png)") and lines[index + 1] == "", lines[index]
    assert "*not shown (no chance level): conformance_lm.word_perplexity*" in lines


def test_result_documents_are_written_valid_and_unchanged(written, suite_documents: list[dict]) -> None:
    out, _ = written
    assert load_result(out / "results" / "tiny-llama.json") == suite_documents[0]


def test_plots_are_pngs_of_the_fixed_size(written) -> None:
    out, _ = written
    for name in PLOT_NAMES:
        size = HEATMAP_SIZE_PX if name == "rule_heatmap" else FIGURE_SIZE_PX
        assert png_size(out / "plots" / f"{name}.png") == size, name
    import matplotlib.image

    pixels = matplotlib.image.imread(out / "plots" / "task_scores.png")
    assert pixels.shape[:2] == (FIGURE_SIZE_PX[1], FIGURE_SIZE_PX[0])
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::97]}) > 5  # drawn, not blank


def test_plots_draw_the_expected_series(suite_documents: list[dict]) -> None:
    board = build_leaderboard(suite_documents)
    plots = {plot.name: plot for plot in all_plots(board)}
    scored = ["tiny-llama-trained", "tiny-gpt2", "tiny-llama"]  # the encoder has no task scores or speed

    quality = plots["quality_vs_throughput"]
    timed = [m for m, decode in zip(board.frame["model"], board.frame["decode_tokens_per_second"], strict=True)
             if m in scored and not math.isnan(decode)]  # a busy CPU may leave a decode time unresolved
    assert quality.has_data == bool(timed)
    if timed:
        axes = quality.figure.axes[0]
        assert sorted(quality.series["points"]) == sorted(timed)
        assert len(next(c for c in axes.collections if c.get_gid() == "models").get_offsets()) == len(timed)
        front_line = next(line for line in axes.lines if line.get_gid() == "pareto_front")
        assert len(front_line.get_xdata()) == len(quality.series["pareto_front"]) >= 1
        best = max(timed, key=lambda m: board.frame.set_index("model").loc[m, MEAN_NORMALIZED])
        assert best in quality.series["pareto_front"]  # the best quality is never dominated

    parameters = plots["parameters_vs_quality"]
    assert parameters.figure.axes[0].get_xscale() == "linear"  # the zoo's sizes span less than a decade
    assert "log" not in parameters.figure.axes[0].get_xlabel()
    assert parameters.figure.axes[0].xaxis.get_major_formatter()(139584, 0) == "139.6K"  # as the table writes it
    assert sorted(parameters.series["points"]) == sorted(scored)

    bars = plots["task_scores"]
    axes = bars.figure.axes[0]
    assert bars.series["tasks"] == ["conformance_arithmetic", "conformance_facts", "conformance_sentiment"]
    assert bars.series["bars"] == {model: 3 for model in board.frame["model"] if model in scored}
    assert len(axes.patches) == 9
    assert [text.get_text() for text in axes.get_legend().get_texts()] == [m for m in board.frame["model"] if m in scored]
    assert "conformance_lm.word_perplexity" in bars.note  # left out: no chance level

    heatmap = plots["rule_heatmap"]
    image = heatmap.figure.axes[0].images[0]
    assert image.get_array().shape == (4, len(heatmap.series["rules"]))
    assert heatmap.series["models"] == list(board.frame["model"])
    bert_row = heatmap.series["grid"][heatmap.series["models"].index("tiny-bert")]
    assert bert_row[heatmap.series["rules"].index("ARCH-TYPE")] == "fail"
    assert bert_row[heatmap.series["rules"].index("PERF-DECODE")] == "skip"


def test_html_is_self_contained_with_rows_badges_and_inline_images(written, suite_documents: list[dict]) -> None:
    out, _ = written
    page = (out / "leaderboard.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page and "<script src" not in page and "url(" not in page and "@import" not in page
    assert re.findall(r'<tr data-model="([^"]+)"', page) == ["tiny-llama-trained", "tiny-gpt2", "tiny-llama", "tiny-bert"]
    assert page.count('<img src="data:image/png;base64,') == len(PLOT_NAMES)
    badges = re.findall(r'class="badge badge-(pass|fail|warn|skip|na)" data-family="(\w+)"', page)
    assert len(badges) == 4 * 5
    assert ("fail", "architecture") in badges  # the encoder
    assert family_legend() in page
    # Task columns come before speed and identity; identity and raw scores start collapsed.
    headers = re.findall(r'<th data-column="([^"]+)" data-group="([^"]+)"', page)
    order = [group for _, group in headers]
    assert order.index("tasks") < order.index("speed") < order.index("identity")
    assert [name for name, group in headers if group == "identity"] == ["dtype", "architecture", "license", "weights_sha256"]
    assert [name for name, group in headers if group == "tasks"] == [
        "conformance_arithmetic.acc.normalized", "conformance_facts.acc.normalized", "conformance_lm.word_perplexity",
        "conformance_sentiment.acc.normalized"]
    assert re.search(r'<table id="leaderboard" data-hidden="tasks-raw families identity">', page)
    assert re.findall(r'<button type="button" data-toggle="([^"]+)" aria-pressed="(true|false)"', page) == [
        ("tasks", "true"), ("tasks-raw", "false"), ("families", "false"), ("speed", "true"), ("identity", "false")]
    bert = page[page.index('<tr data-model="tiny-bert"'):]
    assert re.search(r'data-column="family.architecture" data-group="families" data-sort="[^"]+" class="number family-fail"', bert)


def test_missing_data_still_gives_every_plot_with_a_no_data_note(tmp_path: Path) -> None:
    documents = [make_document("static-only-a"), make_document("static-only-b", parameters=None)]
    paths = write_leaderboard(documents, tmp_path)
    plots = {plot.name: plot for plot in all_plots(build_leaderboard(documents))}
    for name in ("quality_vs_throughput", "parameters_vs_quality", "task_scores"):
        assert not plots[name].has_data and plots[name].note.startswith("no data:")
        assert png_size(paths[f"plots/{name}.png"]) == FIGURE_SIZE_PX
    assert plots["rule_heatmap"].has_data
    page = paths["leaderboard.html"].read_text()
    assert page.count('data-has-data="false"') == 3 and page.count("no data:") >= 3
    assert page.count('<img src="data:image/png;base64,') == len(PLOT_NAMES)


def test_report_rebuilds_identical_outputs_from_stored_documents(written, tmp_path: Path) -> None:
    """`conformance report` reads results/*.json alone: same page, table and Markdown, no model loaded."""
    out, paths = written
    stored = [load_result(path) for path in sorted((out / "results").glob("*.json"))]
    rebuilt = write_leaderboard(stored, tmp_path)
    for relative in ("leaderboard.csv", "leaderboard.md", "leaderboard.html", *(f"plots/{n}.png" for n in PLOT_NAMES)):
        assert rebuilt[relative].read_bytes() == paths[relative].read_bytes(), relative


def test_repeated_names_get_unique_labels_and_files(tmp_path: Path) -> None:
    documents = [make_document("model"), make_document("model"), make_document("a/b"), make_document("a_b")]
    paths = write_leaderboard(documents, tmp_path)
    assert sorted(p for p in paths if p.startswith("results/")) == [
        "results/a_b-2.json", "results/a_b.json", "results/model-2.json", "results/model.json"]
    assert file_stems(["x y", "x_y", ""]) == ["x_y", "x_y-2", "model"]


def test_an_invalid_document_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    good, bad = make_document("good"), make_document("bad")
    bad["rules"][0]["status"] = "maybe"
    with pytest.raises(ValueError, match="bad"):
        write_leaderboard([good, bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- diff ----------------------------------------------------------------------------------------------------

def test_diff_reports_a_new_must_failure_a_fix_and_metric_deltas() -> None:
    base = make_document("m", scores=sentiment(0.8), decode=100.0, rules=[
        rule("SIZE", "size.parameters"), rule("SAFE", "safety.license", "fail"), rule("Q", "quality.task_score", "fail", "should")])
    new = make_document("m", scores=sentiment(0.7), decode=120.0, parameters=2000, rules=[
        rule("SIZE", "size.parameters", "fail", message="too big"), rule("SAFE", "safety.license"), rule("Q", "quality.task_score", "fail", "should")])
    diff = diff_documents(base, new)
    assert diff.newly_failing_must == ["SIZE"]
    kinds = {change.id: change.kind for change in diff.rule_changes}
    assert kinds == {"SIZE": "newly failing", "SAFE": "fixed"}  # Q failed before and after: no change
    deltas = {metric.name: metric for metric in diff.metric_deltas}
    assert deltas["conformance_sentiment.acc"].delta == pytest.approx(-0.1)
    assert deltas["conformance_sentiment.acc"].direction == "worse"
    assert deltas["decode_tokens_per_second"].delta == pytest.approx(20.0)
    assert deltas["decode_tokens_per_second"].relative == pytest.approx(0.2)
    assert deltas["decode_tokens_per_second"].direction == "better"
    assert deltas["ttft_ms_p50"].direction == "better"  # lower latency
    assert (deltas["parameters"].delta, deltas["parameters"].direction) == (1000.0, "up")
    text = diff.render_text()
    assert "SIZE" in text and "newly failing: too big" in text and "NEWLY FAILING MUST RULES: SIZE" in text
    assert "decode_tokens_per_second" in text and "+20" in text
    markdown = diff.render_markdown()
    assert "| SIZE | must | pass | fail | newly failing | too big |" in markdown
    assert "| conformance_sentiment.acc | 0.8 | 0.7 |" in markdown


def test_diff_counts_new_rules_level_escalation_and_keeps_old_failures_out() -> None:
    base = make_document("m", rules=[rule("OLD", "size.parameters", "fail"), rule("UP", "card.present", "fail", "should"),
                                     rule("GONE", "size.weight_bytes"), rule("SKIPPED", "runtime.loads", "skip")])
    new = make_document("m", rules=[rule("OLD", "size.parameters", "fail"), rule("UP", "card.present", "fail", "must"),
                                    rule("NEW", "safety.license", "error"), rule("SKIPPED", "runtime.loads", "error")])
    diff = diff_documents(base, new)
    assert diff.newly_failing_must == ["UP", "NEW", "SKIPPED"]  # OLD already failed as a must rule
    kinds = {change.id: change.kind for change in diff.rule_changes}
    assert kinds == {"UP": "changed", "NEW": "added", "SKIPPED": "newly failing", "GONE": "removed"}


def test_diff_of_identical_documents_is_empty_and_notes_identity_changes() -> None:
    document = make_document("m", scores=sentiment(0.8), decode=100.0)
    diff = diff_documents(document, copy.deepcopy(document))
    assert diff.rule_changes == [] and diff.newly_failing_must == [] and diff.changed_metrics == [] and diff.notes == []
    assert "rules: no status changes" in diff.render_text() and "metrics: no changes" in diff.render_text()
    other = make_document("m2", scores=sentiment(0.8), spec_id="other")
    notes = " ".join(diff_documents(document, other).notes)
    assert "specs differ" in notes and "weights differ" in notes


def test_diff_on_real_documents_trained_vs_untrained(suite_documents: list[dict]) -> None:
    untrained, trained = suite_documents[0], suite_documents[3]
    diff = diff_documents(untrained, trained)
    sentiment_delta = next(m for m in diff.metric_deltas if m.name == "conformance_sentiment.acc")
    assert sentiment_delta.direction == "better"
    assert diff.newly_failing_must == []
    json.dumps(diff.render_markdown())  # plain text, ready for a pull-request comment


def test_plots_are_redrawn_only_when_their_inputs_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.report import plots as plots_module
    from conformance.report.leaderboard import write_leaderboard

    drawn: list[str] = []
    original = plots_module.Plot.png_bytes
    monkeypatch.setattr(plots_module.Plot, "png_bytes", lambda self: drawn.append(self.name) or original(self))
    documents = [make_document("a", scores=sentiment(0.9)), make_document("b", scores=sentiment(0.6))]
    write_leaderboard(documents, tmp_path)
    first = {p.name: p.read_bytes() for p in (tmp_path / "plots").glob("*.png")}
    assert len(drawn) == 4
    write_leaderboard(documents, tmp_path)
    assert len(drawn) == 4  # same inputs: the images on disk are reused
    assert {p.name: p.read_bytes() for p in (tmp_path / "plots").glob("*.png")} == first
    write_leaderboard([make_document("a", scores=sentiment(0.9)), make_document("b", scores=sentiment(0.7))], tmp_path)
    assert len(drawn) == 8  # a changed score redraws every plot
