"""Write a leaderboard folder from result documents: the page, Markdown, CSV, the documents and the plots.

Used by `conformance leaderboard` (after running the models) and `conformance report` (from stored
documents alone): both hand documents here, so both write the same outputs and no model is loaded.

    out_dir/leaderboard.html     self-contained page
    out_dir/leaderboard.md       for pull requests
    out_dir/leaderboard.csv      every column, exact numbers
    out_dir/results/<model>.json each document, validated
    out_dir/plots/<plot>.png     quality_vs_throughput, parameters_vs_quality, task_scores, rule_heatmap
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..digests import sha256_text
from ..result_document import ResultDocument
from ..results import write_atomic, write_result
from .figures import family_legend
from .html import render_html
from .names import file_stems
from .plots import Plot, all_plots, write_png_atomic
from .table import Leaderboard, build_leaderboard, csv_frame, render_markdown_table
from .text import markdown_text


def render_markdown(board: Leaderboard, plots: list[Plot]) -> str:
    """leaderboard.md: how models are ranked, the table, the speed workload and links to the plots."""
    lines = [
        "# Model leaderboard",
        "",
        f"{len(board.models)} models checked against {markdown_text(', '.join(board.spec_ids), 2000)}. Ranked: conformant models first, "
        "then by mean normalized task score ((score − chance) / (1 − chance), clipped at 0; perplexity left out), "
        "then by name. Badges per rule family: pass, warn (only should/may rules failed), fail (a must rule failed "
        f"or errored), skip, – (no rules). {family_legend()}",
        "",
        render_markdown_table(board),
    ]
    if board.speed_workload:
        lines += [f"Speed figures: {markdown_text(board.speed_workload, 1000)}.", ""]
    lines += ["## Plots", ""]
    for plot in plots:
        # One image per paragraph, its note on a line of its own; a note names tasks from the documents:
        # escaped like every other text.
        lines += [f"![{markdown_text(plot.title, 200)}](plots/{plot.name}.png)", ""]
        if plot.note:
            lines += [f"*{markdown_text(plot.note, 2000)}*", ""]
    lines += ["Full table: `leaderboard.csv`; result documents: `results/`."]
    return "\n".join(lines) + "\n"


def _plot_inputs_digest(board: Leaderboard) -> str:
    """Everything the plots are drawn from (the table, every rule's status, matplotlib's version)."""
    import json

    import matplotlib

    statuses = {model: [(rule.id, rule.status.value) for rule in document.rules] for model, document in board.documents.items()}
    text = json.dumps([board.frame.to_csv(index=False), statuses, matplotlib.__version__], sort_keys=True, default=str)
    return sha256_text(text)


def _digest_path(png: Path) -> Path:
    return png.with_name(f".{png.stem}.inputs-sha256")


def _reuse_png(out_dir: Path, name: str, digest: str) -> bytes | None:
    """An image already drawn from the same inputs (a warm rerun): rendering is the slowest step of a report."""
    png = out_dir / "plots" / f"{name}.png"
    try:
        if _digest_path(png).read_text(encoding="utf-8") == digest:
            return png.read_bytes()
    except OSError:
        return None
    return None


def write_leaderboard(documents: Sequence[ResultDocument | Mapping[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write every output for these documents; returns {path relative to out_dir: path written}.

    Each file is written atomically, so an interrupted run leaves old files or new ones, never half of one.
    A document that breaks the result schema is refused (ValueError) before anything is written.
    """
    out_dir = Path(out_dir)
    readers = [ResultDocument.of(document) for document in documents]
    for reader in readers:
        problems = reader.problems()
        if problems:
            model = reader.data.get("model")
            name = model.get("name", "?") if isinstance(model, dict) else "?"
            raise ValueError(f"result document for {name} breaks result.schema.json: {problems[0]}")
    board = build_leaderboard(readers)
    plots = all_plots(board)
    # Render everything before writing anything: a rendering bug leaves the folder as it was.
    digest = _plot_inputs_digest(board)
    pngs = {f"plots/{plot.name}.png": _reuse_png(out_dir, plot.name, digest) or plot.png_bytes() for plot in plots}
    result_documents = {f"results/{stem}.json": board.documents[model].data for stem, model in zip(file_stems(board.models), board.models, strict=True)}
    pages = {
        "leaderboard.csv": csv_frame(board.frame).to_csv(index=False),
        "leaderboard.md": render_markdown(board, plots),
        "leaderboard.html": render_html(board, [(plot, pngs[f"plots/{plot.name}.png"]) for plot in plots]),
    }

    written: dict[str, Path] = {}
    for relative, document in result_documents.items():  # documents first: every other file is a view of them
        write_result(dict(document), out_dir / relative)
        written[relative] = out_dir / relative
    for relative, png in pngs.items():
        write_png_atomic(out_dir / relative, png)
        write_atomic(_digest_path(out_dir / relative), digest)
        written[relative] = out_dir / relative
    for relative, text in pages.items():
        write_atomic(out_dir / relative, text)
        written[relative] = out_dir / relative
    return written
