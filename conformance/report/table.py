"""The leaderboard table: one pandas row per result document, ranked as public leaderboards rank.

Ranking: conformant models first, then the mean normalized task score (higher first), then the name.
A task's *normalized* score is (score − chance) / (1 − chance) clipped at 0 (Open LLM Leaderboard v2),
so a task with four choices and one with two weigh alike; metrics without a chance level (perplexity)
are shown raw and left out of the mean. The *mean win rate* is HELM's: per column, the share of other
models this model beats (ties count half), averaged over the columns where the model has a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..checks.quality import normalize
from ..metrics import MEAN_NORMALIZED, METRICS, WIN_RATE, lower_is_better, primary_metric
from ..result_document import INTERVAL_COLUMNS, SPEED_DECIDED, SPEED_DEVICE, SPEED_FIGURES, TIMED_FIGURES, ResultDocument
from ..tasks import chance_score
from .figures import FAMILIES, OTHER_FAMILY, describe_workload, family_statuses, primary_speed_key
from .names import unique_names
from .text import csv_text, markdown_text, short

if TYPE_CHECKING:
    import pandas as pd

SHA256_SHORT_CHARS = 12
IDENTITY_COLUMNS: tuple[str, ...] = ("rank", "model", "conformant", "parameters", "dtype", "architecture", "license", "weights_sha256")
RULE_COUNT_COLUMNS: tuple[str, ...] = ("passed", "failed", "skipped", "errors")


@dataclass(frozen=True)
class TaskColumn:
    """One task as the leaderboard shows it: its primary metric raw, and normalized where chance is known."""

    task: str
    metric: str
    chance: float | None

    @property
    def lower_is_better(self) -> bool:
        """The metric table says a lower score is better (perplexities)."""
        return lower_is_better(self.metric) is True

    @property
    def raw(self) -> str:
        """Column of the raw score: `task.metric`."""
        return f"{self.task}.{self.metric}"

    @property
    def normalized(self) -> str | None:
        """Column of the normalized score; None when the metric has no chance level (perplexity, unknown task)."""
        if self.lower_is_better or self.chance is None:
            return None
        return f"{self.task}.{self.metric}.normalized"


@dataclass
class Leaderboard:
    """The ranked table and what it was built from."""

    frame: pd.DataFrame  # one row per model in rank order: identity, tasks, average, win rate, speed, counts, badges
    tasks: list[TaskColumn]
    families: list[str]  # badge columns are `badge.<family>`
    speed_key: str | None  # the evidence key of the one workload models are compared on
    documents: dict[str, ResultDocument]  # model label (the `model` column, unique) -> its result document
    spec_ids: list[str]  # "id version" of each spec the documents were checked against
    speed_workload: str | None = None  # the speed key's workload in words

    @property
    def models(self) -> list[str]:
        """Model labels in rank order."""
        return list(self.frame["model"])

    def records(self) -> list[dict[str, Any]]:
        """The frame's rows in rank order, one dict per model keyed by column name."""
        # pandas types row keys as Hashable; every column of this frame is named by a str.
        return [{str(column): value for column, value in row.items()} for row in self.frame.to_dict("records")]

    def badge_column(self, family: str) -> str:
        """The frame's column of one family's badge."""
        return f"badge.{family}"

    def win_rate_columns(self) -> list[str]:
        """Columns the mean win rate is taken over: each task's primary metric, and decode throughput."""
        columns = [task.raw for task in self.tasks]
        if self.frame["decode_tokens_per_second"].notna().any():
            columns.append("decode_tokens_per_second")
        return columns


def _task_columns(documents: list[ResultDocument]) -> list[TaskColumn]:
    """Every task any document scored, with the primary metric chosen over all of them (one metric per column)."""
    metrics_by_task: dict[str, set[str]] = {}
    for document in documents:
        for task, metrics in document.task_scores().items():
            metrics_by_task.setdefault(task, set()).update(metrics)
    columns = []
    for task in sorted(metrics_by_task):
        metric = primary_metric(metrics_by_task[task])
        if metric is not None:
            columns.append(TaskColumn(task, metric, chance_score(task, metric)))
    return columns


def normalized_score(score: float | None, column: TaskColumn) -> float | None:
    """(score − chance) / (1 − chance), clipped at 0; None without a score or a chance level below 1."""
    if score is None or column.normalized is None or column.chance is None or column.chance >= 1:
        return None
    return normalize(score, column.chance)


def _row(label: str, document: ResultDocument, tasks: list[TaskColumn], speed_key: str | None) -> dict[str, Any]:
    facts = document.static_facts()
    sha256 = document.model.sha256
    summary = document.summary
    row: dict[str, Any] = {
        "model": label,
        "conformant": summary.conformant,
        "parameters": facts.parameters,
        "dtype": facts.dtype,
        "architecture": facts.architecture,
        "license": facts.license,
        "weights_sha256": sha256[:SHA256_SHORT_CHARS] if sha256 else None,
    }
    scores = document.task_scores()
    normalized_values = []
    for column in tasks:
        raw = scores.get(column.task, {}).get(column.metric)
        row[column.raw] = raw
        if column.normalized is not None:
            value = normalized_score(raw, column)
            row[column.normalized] = value
            if value is not None:
                normalized_values.append(value)
    row[MEAN_NORMALIZED] = sum(normalized_values) / len(normalized_values) if normalized_values else None
    row.update(document.speed_figures(speed_key))
    row.update({"passed": summary.passed, "failed": summary.failed, "skipped": summary.skipped, "errors": summary.errors})
    row["spec"] = document.spec.label
    return row


def _beats(mine: float, theirs: float, lower_is_better: bool) -> float:
    """1 for a win, 0.5 for a tie, 0 for a loss."""
    if mine == theirs:
        return 0.5
    return float((mine < theirs) if lower_is_better else (mine > theirs))


def _overlap(a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
    """Two (low, high) confidence intervals overlap; a missing interval never overlaps."""
    if not all(_present(end) for end in (*a, *b)):
        return False
    return bool(a[0] <= b[1] and b[0] <= a[1])


def mean_win_rates(
    frame: pd.DataFrame, columns: list[str], lower_is_better: set[str], intervals: dict[str, tuple[str, str]] | None = None,
) -> list[float | None]:
    """HELM's mean win rate of each row (None where no column has a value to compare).

    Per column, the share of other rows with a value that this row beats (ties half); the mean over the
    columns where this row and at least one other row have a value.

    For a column with confidence intervals (`intervals`: column -> (low column, high column)), two rows
    whose intervals overlap tie: a difference the measurement cannot resolve is no win.
    """
    intervals = intervals or {}
    rates: list[float | None] = []
    for position in range(len(frame)):
        per_column = []
        for column in columns:
            values = frame[column].tolist()
            bounds = list(zip(*(frame[name].tolist() for name in intervals[column]), strict=True)) if column in intervals else None
            mine = values[position]
            if not _present(mine):
                continue
            scores = []
            for index, theirs in enumerate(values):
                if index == position or not _present(theirs):
                    continue
                tied = bounds is not None and _overlap(bounds[position], bounds[index])
                scores.append(0.5 if tied else _beats(mine, theirs, column in lower_is_better))
            if scores:
                per_column.append(sum(scores) / len(scores))
        rates.append(sum(per_column) / len(per_column) if per_column else None)
    return rates


def _present(value: Any) -> bool:
    """False for None, NaN and pandas' NA (a missing Int64 parameter count)."""
    if value is None or value is _pandas_na():
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _pandas_na() -> Any:
    import pandas as pd

    return pd.NA


def build_leaderboard(documents: Sequence[ResultDocument | Mapping[str, Any]]) -> Leaderboard:
    """Rank result documents into a leaderboard; reads only the documents (no model is loaded).

    ValueError for no documents.
    """
    import pandas as pd

    if not documents:
        raise ValueError("a leaderboard needs at least one result document")
    readers = [ResultDocument.of(document) for document in documents]
    labels = unique_names(document.model.name for document in readers)
    tasks = _task_columns(readers)
    speed_key = primary_speed_key(readers)
    rows = [_row(label, document, tasks, speed_key) for label, document in zip(labels, readers, strict=True)]
    statuses = [family_statuses(document) for document in readers]
    families = [family for family in (*FAMILIES, OTHER_FAMILY) if any(family in status for status in statuses)]
    for row, status in zip(rows, statuses, strict=True):
        row.update({f"badge.{family}": status.get(family, "na") for family in families})

    task_columns = [name for column in tasks for name in (column.raw, column.normalized) if name is not None]
    interval_columns = [name for pair in INTERVAL_COLUMNS.values() for name in pair]
    columns = [*IDENTITY_COLUMNS[1:], *task_columns, MEAN_NORMALIZED, *SPEED_FIGURES, *interval_columns, SPEED_DECIDED, SPEED_DEVICE,
               *RULE_COUNT_COLUMNS, *(f"badge.{family}" for family in families), "spec"]
    frame = pd.DataFrame(rows, columns=columns)
    for name in [*task_columns, MEAN_NORMALIZED, *SPEED_FIGURES, *interval_columns]:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    frame["parameters"] = frame["parameters"].astype("Int64")

    lower = {column.raw for column in tasks if column.lower_is_better} | {name for name in SPEED_FIGURES if lower_is_better(name)}
    board = Leaderboard(frame, tasks, families, speed_key, dict(zip(labels, readers, strict=True)),
                        sorted({row["spec"] for row in rows}), describe_workload(readers, speed_key))
    frame[WIN_RATE] = pd.Series(mean_win_rates(frame, board.win_rate_columns(), lower, INTERVAL_COLUMNS), dtype="float64")

    # Rank: conformant first, then mean normalized score (missing last), then name for a stable order.
    frame["_missing_score"] = frame[MEAN_NORMALIZED].isna()
    frame = frame.sort_values(
        by=["conformant", "_missing_score", MEAN_NORMALIZED, "model"], ascending=[False, True, False, True], kind="stable",
    ).drop(columns="_missing_score").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    ordered = [*IDENTITY_COLUMNS, *task_columns, MEAN_NORMALIZED, WIN_RATE]
    board.frame = frame[ordered + [name for name in frame.columns if name not in ordered]]
    return board


# --- display -------------------------------------------------------------------------------------------

BADGE_MARK = {"pass": "✅ pass", "fail": "❌ fail", "warn": "⚠️ warn", "skip": "⏭ skip", "na": "–"}


def compact_count(value: float) -> str:
    """139584 -> 139.6K, 1.24e9 -> 1.24B: parameter counts as people say them."""
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= threshold:
            return f"{value / threshold:.4g}{suffix}"
    return f"{value:g}"


def display_value(column: str, value: Any) -> str:
    """A cell as people read it; the CSV keeps the exact numbers."""
    if not _present(value):
        return "–"
    if column.startswith("badge."):
        return BADGE_MARK.get(str(value), str(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column == "parameters":
        return compact_count(float(value))
    if column in ("peak_memory_bytes", "process_peak_memory_bytes"):
        return f"{float(value) / 2**20:.1f} MiB"
    if column.endswith("_per_second") or column.endswith("_ms_p50"):
        return f"{float(value):.1f}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


UNDECIDED_TEXT = "undecided"


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as leaderboard.csv writes it: numbers exact, every text cell and header through `report.text.csv_text`.

    A model's license or name with a control character, a line break or a leading `=` would otherwise
    reach a terminal or a spreadsheet as it is.
    """
    from pandas.api.types import is_numeric_dtype

    shown = frame.copy()
    for column in shown.columns:
        if not is_numeric_dtype(shown[column]):  # text columns: object, or pandas' string dtype
            shown[column] = shown[column].map(lambda value: csv_text(value) if isinstance(value, str) else value)
    shown.columns = [csv_text(str(column)) for column in shown.columns]
    return shown


def cell_text(column: str, record: dict[str, Any]) -> str:
    """`display_value`, except that an undecided timed figure reads "undecided".

    A timed figure of a measurement that left a rule undecided is blank in the frame; the reader sees it
    was measured and not trusted.
    """
    decided = record.get(SPEED_DECIDED)
    if column in TIMED_FIGURES and _present(decided) and not bool(decided):  # numpy's False is not `False`
        return UNDECIDED_TEXT
    return display_value(column, record[column])


def markdown_columns(board: Leaderboard) -> list[str]:
    """The columns worth a pull request's width: identity, normalized (or raw) task scores, speed, badges."""
    tasks = [column.normalized or column.raw for column in board.tasks]
    undecided = board.frame[SPEED_DECIDED].eq(False).any()
    speed = [name for name in ("decode_tokens_per_second", "ttft_ms_p50") if board.frame[name].notna().any() or undecided]
    speed += [name for name in ("peak_memory_bytes", "process_peak_memory_bytes") if board.frame[name].notna().any()]
    badges = [board.badge_column(family) for family in board.families]
    return ["rank", "model", "conformant", "parameters", "dtype", MEAN_NORMALIZED, WIN_RATE, *tasks, *speed, *badges]


def markdown_label(column: str) -> str:
    """Short headers for a pull request's width (the metric table's short labels).

    The CSV keeps the full column names.
    """
    if column in METRICS:
        return METRICS[column].short_label
    if column.startswith("badge."):
        return column.removeprefix("badge.")
    if column.endswith(".normalized"):
        task, metric, _ = column.rsplit(".", 2)
        return f"{task} {metric} (norm.)"
    if "." in column:
        task, metric = column.rsplit(".", 1)
        return f"{task} {metric}"
    return column


def _markdown_cell(text: str) -> str:
    """One cell: a model's name, license or architecture shows as its text (`report.text`), on one line."""
    return markdown_text(short(text, 200))


def render_markdown_table(board: Leaderboard) -> str:
    """The leaderboard as a Markdown table of `markdown_columns`, in rank order; every cell through `_markdown_cell`."""
    columns = markdown_columns(board)
    lines = ["| " + " | ".join(_markdown_cell(markdown_label(name)) for name in columns) + " |", "|" + "---|" * len(columns)]
    for record in board.records():
        lines.append("| " + " | ".join(_markdown_cell(cell_text(name, record)) for name in columns) + " |")
    return "\n".join(lines) + "\n"
