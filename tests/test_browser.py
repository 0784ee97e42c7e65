"""leaderboard.html as a person sees it: rendered by headless Chromium, checked from the DOM after its scripts ran.

Needs Debian's chromium package (`.ci/run` installs it when absent); skipped with the reason otherwise.
The screenshot is kept as a test artifact: reports/test-artifacts/leaderboard.png.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conformance.candidate import Candidate
from conformance.report.leaderboard import write_leaderboard
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "reports" / "test-artifacts"
WINDOW_PX = (1280, 2000)
CHROMIUM_SECONDS = 90
FAMILIES = ("architecture", "size", "safety", "performance", "quality")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (/usr/bin/chromium or chromium on PATH); "
                                                         "install Debian's chromium package to run the browser test")


def chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium that reaches nothing: no network services, no sync, a throwaway profile."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", f"--window-size={WINDOW_PX[0]},{WINDOW_PX[1]}", *arguments,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_SECONDS, check=False)
    assert result.returncode == 0, f"chromium exited {result.returncode}: {result.stderr[-2000:]}"
    return result


class RenderedPage(HTMLParser):
    """What the rendered DOM holds: leaderboard rows, badges, images and the script's marks."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.badges: list[dict[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.body: dict[str, str] = {}
        self._in_leaderboard_body = False
        self._table_depth = 0  # tables nest: the per-model rule tables are not the leaderboard
        self._leaderboard_depth = -1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "table":
            self._table_depth += 1
            if attributes.get("id") == "leaderboard":
                self._leaderboard_depth = self._table_depth
        if tag == "tbody" and self._table_depth == self._leaderboard_depth:
            self._in_leaderboard_body = True
        if tag == "tr" and self._in_leaderboard_body and "data-model" in attributes:
            self.rows.append(attributes["data-model"])
        if tag == "span" and "badge" in attributes.get("class", "").split() and "data-family" in attributes:
            self.badges.append(attributes)
        if tag == "img":
            self.images.append(attributes)
        if tag == "body":
            self.body = attributes

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_leaderboard_body = False
        if tag == "table":
            self._table_depth -= 1


def rendered(profile: Path, url: str) -> RenderedPage:
    page = RenderedPage()
    page.feed(chromium(profile, "--virtual-time-budget=5000", "--dump-dom", url).stdout)
    return page


@pytest.fixture(scope="module")
def leaderboard_page(tmp_path_factory, llama_dir: Path, gpt2_dir: Path, bert_dir: Path) -> Path:
    rules = [
        {"id": "Q-SENTIMENT", "level": "should", "check": "quality.task_score", "task": "conformance_sentiment",
         "metric": "acc", "min": 0.6, "limit": 20},
        {"id": "PERF-DECODE", "level": "should", "check": "performance.decode_tokens_per_second", "min": 1,
         "workload": {"batch_size": 1, "prompt_tokens": 16, "new_tokens": 8}, "measurement": {"min_seconds": 0.2}},
    ]
    folder = tmp_path_factory.mktemp("browser")
    spec_path = folder / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"id": "browser-test", "version": "1", "extends": ["small-causal-lm-release"], "rules": rules}))
    spec = load_spec(spec_path)
    documents = [run(Candidate(path), spec, RunOptions(log=lambda message: None)).to_document() for path in (llama_dir, gpt2_dir, bert_dir)]
    return write_leaderboard(documents, folder / "out")["leaderboard.html"]


def test_rendered_page_shows_rows_badges_and_images(leaderboard_page: Path, tmp_path: Path) -> None:
    page = rendered(tmp_path / "profile", leaderboard_page.as_uri())
    assert page.body.get("data-sortable") == "ready"  # the inline script ran
    assert sorted(page.rows) == ["tiny-bert", "tiny-gpt2", "tiny-llama"]
    assert page.rows[-1] == "tiny-bert"  # not conformant: ranked last
    table_badges = [badge for badge in page.badges if badge.get("data-status")]
    assert len(table_badges) == 3 * len(FAMILIES)
    assert {badge["data-family"] for badge in table_badges} == set(FAMILIES)
    assert all(f"badge-{badge['data-status']}" in badge["class"] for badge in table_badges)
    assert len(page.images) == 4
    for image in page.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert image.get("data-natural-size") in ("800x500", "1000x600"), image.get("alt")  # decoded by the browser


def test_sorting_script_orders_rows_from_a_link(leaderboard_page: Path, tmp_path: Path) -> None:
    by_name = rendered(tmp_path / "profile", leaderboard_page.as_uri() + "#sort=-model")
    assert by_name.rows == ["tiny-llama", "tiny-gpt2", "tiny-bert"]
    by_rank = rendered(tmp_path / "profile", leaderboard_page.as_uri() + "#sort=rank")
    assert by_rank.rows[-1] == "tiny-bert"


def test_screenshot_is_kept_as_an_artifact(leaderboard_page: Path, tmp_path: Path) -> None:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS_DIR / "leaderboard.png"
    screenshot.unlink(missing_ok=True)
    chromium(tmp_path / "profile", f"--screenshot={screenshot}", "--hide-scrollbars", leaderboard_page.as_uri())
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == WINDOW_PX
    assert len(data) > 50_000  # a page with a table and plots, not a blank or error page
    import matplotlib.image

    pixels = matplotlib.image.imread(screenshot)
    colours = {tuple(pixel) for pixel in pixels[::7, ::7].reshape(-1, pixels.shape[-1])}
    assert len(colours) > 50
