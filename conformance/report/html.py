"""leaderboard.html: one self-contained page (jinja2), with inline styles, sort script and base64 plots."""

from __future__ import annotations

import base64
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..metrics import MEAN_NORMALIZED, METRICS, WIN_RATE
from ..result_document import SPEED_DECIDED, SPEED_FIGURES, TIMED_FIGURES, ResultDocument
from .figures import family_legend, family_of, task_groups
from .names import unique_name
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
# A badge's short label (the column stays narrow); its title and data-family keep the family's name.
FAMILY_SHORT_LABELS: dict[str, str] = {"architecture": "arch", "performance": "perf"}


@dataclass(frozen=True)
class ColumnGroup:
    """A set of columns one button shows or hides; `shown` is its state when the link does not say."""

    name: str  # data-group of its cells, and the word in the link (`#show=identity`)
    label: str
    shown: bool
    help: str


# The groups a reader can collapse, in the order of their buttons. Columns of no group ("pinned": rank and
# model, "summary": verdict, badges, average, win rate, parameters) are always shown.
COLUMN_GROUPS: tuple[ColumnGroup, ...] = (
    ColumnGroup("tasks", "task scores", True, "one column per task: the normalized score where chance is known, else the raw score"),
    ColumnGroup("tasks-raw", "raw task scores", False, "each task's primary metric as measured, beside its normalized score"),
    ColumnGroup("families", "rule families", False, "rules passed of rules judged, one column per family"),
    ColumnGroup("speed", "speed", True, "speed and memory figures of the shared workload"),
    ColumnGroup("identity", "identity", False, "stored dtypes, architecture, license and weights digest"),
)


@dataclass(frozen=True)
class Column:
    """One column of the page's table: header lines, sort kind and hover help."""

    name: str  # the frame's column, "families" for the badges, "family.<name>" for a family's counts
    label: str
    sub: str = ""
    kind: str = "text"  # "number" sorts numerically
    help: str = ""
    group: str = "summary"  # "pinned", "summary" or `COLUMN_GROUPS` names (a group subtask's: "tasks task-group:<group>")


def _metric_column(name: str, group: str = "summary") -> Column:
    """A numeric column headed and explained as the metric table says."""
    metric = METRICS[name]
    return Column(name, metric.label, metric.detail, "number", metric.help, group)


def _task_group_buttons(board: Leaderboard) -> tuple[list[ColumnGroup], dict[str, str]]:
    """One button per lm-eval group with scored subtasks, and task -> that button's group name.

    A group whose own aggregate score is a column starts collapsed (its aggregate stays, its subtasks
    hide); one without starts shown. The group name in the page is made of safe characters only: it is
    written into the page's CSS, where HTML escaping does not apply.
    """
    scored = {task.task for task in board.tasks}
    buttons: list[ColumnGroup] = []
    membership: dict[str, str] = {}
    taken: set[str] = set()
    for group, members in task_groups(board.documents.values()).items():
        subtasks = [task for task in members if task in scored and task not in membership]
        if not subtasks:
            continue
        name = unique_name("task-group:" + re.sub(r"[^A-Za-z0-9_.-]", "-", group)[:80], taken)
        taken.add(name)
        buttons.append(ColumnGroup(name, f"{short(group, 40)} subtasks", group not in scored,
                                   f"the {len(subtasks)} scored tasks of lm-eval group {short(group, 200)}"))
        membership.update({task: name for task in subtasks})
    return buttons, membership


def _task_columns(board: Leaderboard, membership: dict[str, str]) -> list[Column]:
    """Per task, the normalized score (group `tasks`) and the raw one behind it (`tasks-raw`); raw alone without a chance level.

    A subtask of an lm-eval group is in its group's button too (`membership`): either button hides it.
    """
    columns = []
    for task in board.tasks:
        label = task.task.replace("_", "_\u200b")  # a zero-width space lets long task names wrap at underscores
        raw_help = f"{task.metric}, {'lower' if task.lower_is_better else 'higher'} is better"
        extra = f" {membership[task.task]}" if task.task in membership else ""
        if task.normalized:
            columns.append(Column(task.normalized, label, f"{task.metric}, norm.", "number",
                                  f"({task.metric} − {task.chance:g}) / (1 − {task.chance:g}), clipped at 0", "tasks" + extra))
        columns.append(Column(task.raw, label, task.metric, "number", raw_help, ("tasks-raw" if task.normalized else "tasks") + extra))
    return columns


def _columns(board: Leaderboard, membership: dict[str, str] | None = None) -> list[Column]:
    """What a reader wants first fits 1,400 px: rank, model, verdict, badges, average, win rate, tasks, size.

    Then speed, then identity (collapsed); raw task scores and per-family counts are behind their buttons.
    """
    number = "number"
    columns = [
        Column("rank", "rank", kind=number, help=_COLUMN_HELP["rank"], group="pinned"),
        Column("model", "model", group="pinned"),
        Column("conformant", "conformant", help=_COLUMN_HELP["conformant"]),
        Column("families", "rules", "per family", number, _COLUMN_HELP["families"]),
        *(Column(f"family.{family}", FAMILY_SHORT_LABELS.get(family, family), "passed/judged", number,
                 f"{family} rules: passed of judged (skipped rules are not judged)", "families")
          for family in board.families),
        _metric_column(MEAN_NORMALIZED),
        _metric_column(WIN_RATE),
        *_task_columns(board, membership or {}),
        _metric_column("parameters"),
    ]
    undecided = board.frame[SPEED_DECIDED].eq(False).any()
    for name in SPEED_FIGURES:
        if board.frame[name].notna().any() or (undecided and name in TIMED_FIGURES):
            columns.append(_metric_column(name, "speed"))
    columns += [
        *(Column(name, name, help=_COLUMN_HELP[name], group="identity") for name in ("dtype", "architecture", "license")),
        Column("weights_sha256", "weights", "sha256", help=_COLUMN_HELP["weights_sha256"], group="identity"),
    ]
    if len(board.spec_ids) > 1:
        columns.append(Column("spec", "spec", group="identity"))
    return columns


def _groups(columns: list[Column], task_buttons: list[ColumnGroup]) -> list[dict[str, Any]]:
    """The buttons of the groups these columns use: name, label, default state, help and column count."""
    groups = [*COLUMN_GROUPS, *task_buttons]
    counts = {group.name: sum(group.name in column.group.split() for column in columns) for group in groups}
    return [{"name": group.name, "label": group.label, "shown": group.shown, "help": group.help, "count": counts[group.name]}
            for group in groups if counts[group.name]]


def _family_counts(document: ResultDocument) -> dict[str, tuple[int, int, str]]:
    """Family -> (passed, judged, the counts in words); skipped rules are not judged."""
    counts: dict[str, Counter[str]] = {}
    for rule in document.rules:
        counts.setdefault(family_of(rule.check), Counter())[rule.status.value] += 1
    result = {}
    for family, counter in counts.items():
        judged = sum(counter.values()) - counter["skip"]
        words = ", ".join(f"{counter[status]} {word}" for status, word in
                          (("pass", "passed"), ("fail", "failed"), ("error", "errors"), ("skip", "skipped")) if counter[status])
        result[family] = (counter["pass"], judged, words)
    return result


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
    title: str = ""


def _cell(column: Column, record: dict[str, Any], families: list[str], counts: dict[str, tuple[int, int, str]]) -> Cell:
    if column.name == "families":
        badges = tuple({"family": family, "label": FAMILY_SHORT_LABELS.get(family, family), "status": str(record[f"badge.{family}"])}
                       for family in families)
        # Worse badges in earlier families weigh more, so sorting groups failing models together.
        severity = sum(BADGE_SEVERITY.get(badge["status"], 0) * 10 ** (len(families) - i) for i, badge in enumerate(badges))
        return Cell(sort=str(severity), badges=badges)
    if column.name.startswith("family."):
        family = column.name.removeprefix("family.")
        passed, judged, words = counts.get(family, (0, 0, "no rules"))
        status = str(record[f"badge.{family}"])
        # Sorted by the share passed; a family with nothing judged sorts last.
        return Cell(f"{passed}/{judged}" if judged else "–", repr(passed / judged) if judged else "", f"number family-{status}",
                    title=words)
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
    task_buttons, membership = _task_group_buttons(board)
    columns = _columns(board, membership)
    rows = [
        {"model": record["model"], "conformant": bool(record["conformant"]),
         "cells": [_cell(column, record, board.families, _family_counts(board.documents[record["model"]])) for column in columns]}
        for record in board.records()
    ]
    groups = _groups(columns, task_buttons)
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
        title=title, specs=board.spec_ids, models_count=len(rows), columns=columns, rows=rows, groups=groups,
        hidden=" ".join(group["name"] for group in groups if not group["shown"]),
        plots=plot_context, details=_details(board), speed_workload=board.speed_workload, family_legend=family_legend(),
        short_labels=", ".join(f"{label} = {family}" for family, label in FAMILY_SHORT_LABELS.items() if family in board.families),
    )
