"""Leaderboard plots with matplotlib (Agg, no pyplot state): each returns a Plot whose figure the page inlines.

Every plot is always drawn, at a fixed pixel size, so a page and a test know what to expect: where the
documents hold no data for it (no task scores, no speed figures), the figure says "no data" and why,
and `Plot.has_data` is False. `Plot.series` records what was drawn (points, bars, the Pareto front) so
tests can check the content without reading pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..metrics import MEAN_NORMALIZED
from ..result_document import INTERVAL_COLUMNS
from ..results import RuleResult
from .table import Leaderboard, compact_count
from .text import status_css

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
FIGURE_SIZE_PX: tuple[int, int] = (800, 500)  # width, height of every plot but the heatmap
HEATMAP_SIZE_PX: tuple[int, int] = (1000, 600)  # wider: one column per rule
STATUS_COLORS: dict[str, str] = {
    "pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828", "error": "#6a1b9a", "skip": "#9e9e9e", "absent": "#ffffff",
}
QUALITY_LABEL = "mean normalized task score"
# A log axis only when the values span at least a decade (135M to 7B parameters): over 1.40e5-1.49e5 a
# log axis shows nothing a linear one does not, and its ticks read worse.
LOG_AXIS_MIN_RATIO = 10.0


@dataclass
class Plot:
    """One drawn figure: its file stem, title, the matplotlib figure and what it shows."""

    name: str  # file stem: plots/<name>.png
    title: str
    figure: Figure
    has_data: bool
    note: str = ""  # why a plot has no data, or what it leaves out
    series: dict[str, Any] = field(default_factory=dict)

    def png_bytes(self) -> bytes:
        """The figure as PNG bytes at `DPI` (the same input gives the same bytes)."""
        buffer = io.BytesIO()
        # No bbox_inches="tight": it would change the pixel size. No Software metadata: same input, same bytes.
        self.figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
        return buffer.getvalue()


def _figure(size_px: tuple[int, int] = FIGURE_SIZE_PX) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(size_px[0] / DPI, size_px[1] / DPI), dpi=DPI, layout="constrained")


def _no_data(plot: Plot, reason: str) -> None:
    """Draw the plot's title and why there is nothing to show; the file still exists at its fixed size."""
    import textwrap

    plot.note = f"no data: {reason}"
    axes = plot.figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(plot.title)
    axes.text(0.5, 0.55, "no data", ha="center", va="center", fontsize=20, color="#555555", transform=axes.transAxes)
    axes.text(0.5, 0.42, textwrap.fill(reason, 70), ha="center", va="top", fontsize=11, color="#555555", transform=axes.transAxes)


def pareto_front(points: list[tuple[str, float, float]], x_intervals: dict[str, tuple[float, float]] | None = None) -> list[str]:
    """Labels of the points no other point dominates (higher x and higher y are better), ordered by x.

    A dominates B when A is no worse on both axes and better on one. With `x_intervals` (label -> (low,
    high), the x figure's confidence interval), A is better on x only when its interval lies wholly above
    B's: models whose intervals overlap are not separated by x, so noise cannot push one off the front.
    Without intervals this is the classic front (a point equal on one axis and better on the other dominates).
    """
    x_intervals = x_intervals or {}

    def faster(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
        if a[0] in x_intervals and b[0] in x_intervals:
            return x_intervals[a[0]][0] > x_intervals[b[0]][1]
        return a[1] > b[1]

    def dominates(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
        no_worse = a[2] >= b[2] and not faster(b, a)
        return no_worse and (a[2] > b[2] or faster(a, b))

    front = [point for point in points if not any(dominates(other, point) for other in points if other is not point)]
    return [label for label, _, _ in sorted(front, key=lambda point: (point[1], point[0]))]


def axis_scale(values: list[float]) -> str:
    """"log" when every value is positive and max/min >= `LOG_AXIS_MIN_RATIO`, else "linear"."""
    finite = [value for value in values if value == value]  # NaN is the only value unequal to itself
    if not finite or min(finite) <= 0:
        return "linear"
    return "log" if max(finite) / min(finite) >= LOG_AXIS_MIN_RATIO else "linear"


def _set_x_axis(axes: Any, values: list[float], label: str) -> None:
    """The x axis scaled by `axis_scale`; a linear axis of large numbers reads 139.6K or 7B (as the table), not 1.396x10^5."""
    from matplotlib.ticker import FuncFormatter

    scale = axis_scale(values)
    axes.set_xscale(scale)
    if scale == "linear" and max(abs(value) for value in values) >= 1e4:
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: compact_count(value)))
    axes.set_xlabel(label + (" (log scale)" if scale == "log" else ""))


def _records(board: Leaderboard, *columns: str) -> list[dict[str, Any]]:
    frame = board.frame[["model", *columns]].dropna()
    return frame.to_dict("records")


def plot_quality_vs_throughput(board: Leaderboard) -> Plot:
    """Mean normalized score against decode tokens/s, one point per model, with the Pareto front."""
    figure = _figure()
    plot = Plot("quality_vs_throughput", "Quality against decode throughput", figure, has_data=False)
    records = _records(board, "decode_tokens_per_second", MEAN_NORMALIZED)
    if not records:
        _no_data(plot, "no model has both a decode throughput and normalized task scores")
        return plot
    axes = figure.add_subplot()
    points = [(r["model"], float(r["decode_tokens_per_second"]), float(r[MEAN_NORMALIZED])) for r in records]
    axes.scatter([p[1] for p in points], [p[2] for p in points], s=50, zorder=3, label="models", gid="models")
    for label, x, y in points:
        axes.annotate(label, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=9)
    low, high = INTERVAL_COLUMNS["decode_tokens_per_second"]
    bounds = {r["model"]: (float(r[low]), float(r[high])) for r in board.frame[["model", low, high]].dropna().to_dict("records")}
    front = pareto_front(points, bounds)
    by_label = {label: (x, y) for label, x, y in points}
    axes.plot([by_label[label][0] for label in front], [by_label[label][1] for label in front],
              linestyle="--", marker="o", color="#c62828", zorder=2, label="Pareto front", gid="pareto_front")
    _set_x_axis(axes, [p[1] for p in points], "decode tokens/s" + (f": {board.speed_workload}" if board.speed_workload else ""))
    axes.set_ylabel(QUALITY_LABEL)
    axes.set_title(plot.title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    plot.has_data = True
    plot.series = {"points": [p[0] for p in points], "pareto_front": front}
    return plot


def plot_parameters_vs_quality(board: Leaderboard) -> Plot:
    """Mean normalized score against parameter count (log or linear by `axis_scale`), one point per model."""
    figure = _figure()
    plot = Plot("parameters_vs_quality", "Parameters against quality", figure, has_data=False)
    records = _records(board, "parameters", MEAN_NORMALIZED)
    if not records:
        _no_data(plot, "no model has both a parameter count and normalized task scores")
        return plot
    axes = figure.add_subplot()
    xs, ys = [float(r["parameters"]) for r in records], [float(r[MEAN_NORMALIZED]) for r in records]
    axes.scatter(xs, ys, s=50, zorder=3, gid="models")
    for record, x, y in zip(records, xs, ys, strict=True):
        axes.annotate(record["model"], (x, y), xytext=(5, 5), textcoords="offset points", fontsize=9)
    _set_x_axis(axes, xs, "parameters")  # log when the sizes span orders of magnitude
    axes.set_ylabel(QUALITY_LABEL)
    axes.set_title(plot.title)
    axes.grid(alpha=0.3, which="both")
    plot.has_data = True
    plot.series = {"points": [r["model"] for r in records]}
    return plot


def plot_task_bars(board: Leaderboard) -> Plot:
    """Grouped bars: one group per task with a normalized score, one bar per model that has it."""
    figure = _figure()
    plot = Plot("task_scores", "Normalized score per task", figure, has_data=False)
    tasks = [column for column in board.tasks if column.normalized is not None]
    records = board.frame.to_dict("records")
    records = [r for r in records if any(_finite(r[task.normalized]) for task in tasks)]
    if not records:
        _no_data(plot, "no normalized task scores (no task rules, or only metrics without a chance level)")
        return plot
    axes = figure.add_subplot()
    width = 0.8 / len(records)  # the groups' bars share 0.8 of the unit between task ticks
    bars: dict[str, int] = {}
    for offset, record in enumerate(records):
        model = record["model"]
        positions, heights = [], []
        for index, task in enumerate(tasks):
            value = record[task.normalized]
            if _finite(value):
                positions.append(index - 0.4 + width * (offset + 0.5))
                heights.append(float(value))
        container = axes.bar(positions, heights, width=width, label=model, gid=f"bars:{model}")
        axes.bar_label(container, fmt="%.2f", fontsize=7)  # a score of 0 has no visible bar: the label shows it
        bars[model] = len(heights)
    axes.set_xticks(range(len(tasks)), [task.task for task in tasks], rotation=15, ha="right")
    axes.set_ylabel("normalized score: (score − chance) / (1 − chance)")
    axes.set_ylim(0, 1.05)  # room for the labels of perfect scores
    axes.set_title(plot.title)
    axes.legend(loc="upper right", fontsize=8)
    axes.grid(alpha=0.3, axis="y")
    plot.has_data = True
    plot.series = {"tasks": [task.task for task in tasks], "bars": bars}
    left_out = [column.raw for column in board.tasks if column.normalized is None]
    if left_out:
        plot.note = "not shown (no chance level): " + ", ".join(left_out)
    return plot


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == value  # NaN is the only value unequal to itself


def _cell_status(rule: RuleResult | None) -> str:
    """The heatmap state of one rule: absent, or its status (`warn` for a should/may failure)."""
    return "absent" if rule is None else status_css(rule)


def plot_rule_heatmap(board: Leaderboard) -> Plot:
    """Model × rule grid coloured by status; a rule one spec lacks is left white."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    figure = _figure(HEATMAP_SIZE_PX)
    plot = Plot("rule_heatmap", "Rule status per model", figure, has_data=False)
    models = board.models
    rule_ids: list[str] = []
    for model in models:
        rule_ids.extend(rule.id for rule in board.documents[model].rules if rule.id not in rule_ids)
    if not rule_ids:
        _no_data(plot, "the documents hold no rules")
        return plot
    states = list(STATUS_COLORS)
    grid = []
    for model in models:
        rules = {rule.id: rule for rule in board.documents[model].rules}
        grid.append([states.index(_cell_status(rules.get(rule_id))) for rule_id in rule_ids])
    axes = figure.add_subplot()
    axes.imshow(grid, cmap=ListedColormap(list(STATUS_COLORS.values())), vmin=0, vmax=len(states) - 1,
                aspect="auto", interpolation="nearest", gid="heatmap")
    axes.set_xticks(range(len(rule_ids)), rule_ids, rotation=90, fontsize=7)
    axes.set_yticks(range(len(models)), models, fontsize=9)
    axes.set_xticks([x - 0.5 for x in range(1, len(rule_ids))], minor=True)
    axes.set_yticks([y - 0.5 for y in range(1, len(models))], minor=True)
    axes.grid(which="minor", color="white", linewidth=1)
    axes.tick_params(which="minor", length=0)
    axes.set_title(plot.title)
    used = sorted({state for row in grid for state in row})
    axes.legend(handles=[Patch(facecolor=STATUS_COLORS[states[i]], edgecolor="#888888", label=states[i]) for i in used],
                loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    plot.has_data = True
    plot.series = {"models": models, "rules": rule_ids, "grid": [[states[i] for i in row] for row in grid]}
    return plot


def all_plots(board: Leaderboard) -> list[Plot]:
    """Every plot the page shows, in its order: quality/throughput, parameters/quality, task bars, heatmap."""
    return [plot_quality_vs_throughput(board), plot_parameters_vs_quality(board), plot_task_bars(board), plot_rule_heatmap(board)]


def write_png_atomic(path: Path, data: bytes) -> None:
    """Temporary file beside the target, then rename: a reader never sees half an image (mode from the umask)."""
    from ..atomic_write import write_atomic

    write_atomic(path, data)
