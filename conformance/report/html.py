"""leaderboard.html: one self-contained page (jinja2), with inline styles, sort script and base64 plots."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..metrics import MEAN_NORMALIZED, METRICS, WIN_RATE
from ..result_document import SPEED_DECIDED, SPEED_FIGURES, TIMED_FIGURES
from .plots import Plot
from .table import Leaderboard, cell_text, display_value
from .text import interval_text, short, status_css, status_text

TEMPLATES_DIR = Path(__file__).parent / "templates"
# How bad a badge is, for sorting the badge column: the worst models sort together.
BADGE_SEVERITY = {"fail": 3, "warn": 2, "skip": 1, "na": 0, "pass": 0}

# Help for the columns that are not metrics (a metric's help is in metrics.METRICS).
_COLUMN_HELP = {
    "rank": "conformant first, then mean normalized task score, then name",
    "conformant": "every must rule passed",
    "dtype": "stored weight dtypes, most parameters first",
    "architecture": "config.json model_type",
    "license": "the model card's license",
    "weights_sha256": "sha256 over the weight files' digests (first 12 hex digits)",
    "families": "one badge per rule family",
}


@dataclass(frozen=True)
class Column:
    """One column of the page's table: header lines, sort kind and hover help."""

    name: str  # the frame's column, or "families" for the badges
    label: str
    sub: str = ""
    kind: str = "text"  # "number" sorts numerically
    help: str = ""


def _metric_column(name: str) -> Column:
    """A numeric column headed and explained as the metric table says."""
    metric = METRICS[name]
    return Column(name, metric.label, metric.detail, "number", metric.help)


def _columns(board: Leaderboard) -> list[Column]:
    """Headline first (rank, model, verdict, badges, average, win rate), then identity, tasks and speed."""
    number = "number"
    columns = [
        Column("rank", "rank", kind=number, help=_COLUMN_HELP["rank"]),
        Column("model", "model"),
        Column("conformant", "conformant", help=_COLUMN_HELP["conformant"]),
        Column("families", "rules", "per family", number, _COLUMN_HELP["families"]),
        _metric_column(MEAN_NORMALIZED),
        _metric_column(WIN_RATE),
        _metric_column("parameters"),
        *(Column(name, name, help=_COLUMN_HELP[name]) for name in ("dtype", "architecture", "license")),
        Column("weights_sha256", "weights", "sha256", help=_COLUMN_HELP["weights_sha256"]),
    ]
    for task in board.tasks:
        label = task.task.replace("_", "_\u200b")  # a zero-width space lets long task names wrap at underscores
        columns.append(Column(task.raw, label, task.metric, number,
                              f"{task.metric}, {'lower' if task.lower_is_better else 'higher'} is better"))
        if task.normalized:
            columns.append(Column(task.normalized, label, f"{task.metric}, normalized", number,
                                  f"({task.metric} − {task.chance:g}) / (1 − {task.chance:g}), clipped at 0"))
    undecided = board.frame[SPEED_DECIDED].eq(False).any()
    for name in SPEED_FIGURES:
        if board.frame[name].notna().any() or (undecided and name in TIMED_FIGURES):
            columns.append(_metric_column(name))
    if len(board.spec_ids) > 1:
        columns.append(Column("spec", "spec"))
    return columns


def _sort_key(value: Any, kind: str) -> str:
    if display_value("", value) == "–":  # missing: empty, which the script sorts last
        return ""
    if kind == "number":
        return repr(float(value))
    return str(value)


@dataclass(frozen=True)
class Cell:
    """One table cell as the template draws it."""

    text: str = ""
    sort: str = ""  # data-sort: what the script sorts by ("" sorts last)
    css: str = ""
    code: bool = False
    badges: tuple[dict[str, str], ...] = ()


def _cell(column: Column, record: dict[str, Any], families: list[str]) -> Cell:
    if column.name == "families":
        badges = tuple({"family": family, "status": str(record[f"badge.{family}"])} for family in families)
        # Worse badges in earlier families weigh more, so sorting groups failing models together.
        severity = sum(BADGE_SEVERITY.get(badge["status"], 0) * 10 ** (len(families) - i) for i, badge in enumerate(badges))
        return Cell(sort=str(severity), badges=badges)
    value = record[column.name]
    if column.name == "conformant":
        return Cell("yes" if value else "no", "1" if value else "0", "yes" if value else "no")
    return Cell(cell_text(column.name, record), _sort_key(value, column.kind), "number" if column.kind == "number" else "",
                code=column.name == "weights_sha256")


def _details(board: Leaderboard) -> list[dict[str, Any]]:
    details = []
    for model in board.models:
        document = board.documents[model]
        summary = document.summary
        verdict = "conformant" if summary.conformant else "not conformant"
        details.append({
            "model": model,
            "summary": f"{verdict}: {summary.passed} passed, {summary.failed} failed, "
                       f"{summary.skipped} skipped, {summary.errors} errors",
            "rules": [
                {
                    "id": rule.id, "check": rule.check, "level": rule.level.value, "status": status_text(rule),
                    "css": status_css(rule),
                    "observed": short(rule.observed, 60), "interval": interval_text(rule) or "–", "expected": short(rule.expected, 40),
                    "message": short(rule.message, 160),
                }
                for rule in document.rules
            ],
        })
    return details


def render_html(board: Leaderboard, plots: list[tuple[Plot, bytes]], title: str = "Model leaderboard") -> str:
    """The page; `plots` pairs each plot with its PNG bytes (rendered once, also written to plots/)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=False, keep_trailing_newline=True,
    )
    columns = _columns(board)
    rows = [
        {"model": record["model"], "conformant": bool(record["conformant"]),
         "cells": [_cell(column, record, board.families) for column in columns]}
        for record in board.records()
    ]
    plot_context = [
        {
            "name": plot.name, "title": plot.title, "note": plot.note, "has_data": plot.has_data,
            "base64": base64.b64encode(png).decode("ascii"),
            "width_px": int(plot.figure.get_figwidth() * plot.figure.dpi),
            "height_px": int(plot.figure.get_figheight() * plot.figure.dpi),
        }
        for plot, png in plots
    ]
    return environment.get_template("leaderboard.html.j2").render(
        title=title, specs=board.spec_ids, models_count=len(rows), columns=columns, rows=rows,
        plots=plot_context, details=_details(board), speed_workload=board.speed_workload,
    )
