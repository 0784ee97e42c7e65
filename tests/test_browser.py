"""leaderboard.html as a person sees it: rendered by headless Chromium, checked from the DOM after its scripts ran.

Needs Debian's chromium package (`.ci/run` installs it when absent); skipped with the reason otherwise.
The window is 1,400 px wide, a laptop's browser: the task columns must fit in it, the model column must stay
in view while the table scrolls, and the column-group buttons must show and hide their columns. The
screenshot is kept as a test artifact: reports/test-artifacts/leaderboard-1400.png.
"""

from __future__ import annotations

import json
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
WINDOW_PX = (1400, 900)
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
        self.table: dict[str, str] = {}  # the leaderboard table's attributes (data-hidden: the collapsed groups)
        self._in_leaderboard_body = False
        self._table_depth = 0  # tables nest: the per-model rule tables are not the leaderboard
        self._leaderboard_depth = -1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "table":
            self._table_depth += 1
            if attributes.get("id") == "leaderboard":
                self._leaderboard_depth = self._table_depth
                self.table = attributes
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
        {"id": "Q-FACTS", "level": "should", "check": "quality.task_score", "task": "conformance_facts",
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
    by_name = rendered(tmp_path / "profile", leaderboard_page.as_uri() + "#sort=-model&show=identity&hide=speed")
    assert by_name.rows == ["tiny-llama", "tiny-gpt2", "tiny-bert"]
    assert by_name.table["data-hidden"].split() == ["tasks-raw", "families", "speed"]  # the link's groups, the rest as default
    by_rank = rendered(tmp_path / "profile", leaderboard_page.as_uri() + "#sort=rank")
    assert by_rank.rows[-1] == "tiny-bert"


# Runs on load in a copy of the page (the page itself carries no test code) and writes what it measured
# onto <body>: header edges at the default state, visible headers before and after each button, the
# link the buttons wrote, and where the model cell and a plain cell are before and after a sideways scroll.
PROBE_SCRIPT = """<script>
window.addEventListener("load", function () {
  var table = document.getElementById("leaderboard"), result = {innerWidth: window.innerWidth};
  function visible() {
    return Array.prototype.filter.call(table.tHead.rows[0].cells, function (h) { return h.getClientRects().length > 0; });
  }
  function click(group) { document.querySelector('button[data-toggle="' + group + '"]').click(); return visible().length; }
  result.headers = visible().map(function (h) {
    return {column: h.getAttribute("data-column"), group: h.getAttribute("data-group"), right: h.getBoundingClientRect().right};
  });
  result.counts = {initial: visible().length, identity: click("identity"), raw: click("tasks-raw")};
  result.hash = window.location.hash;
  result.counts.families = click("families");
  var row = table.tBodies[0].rows[0], scroller = document.querySelector(".scroll");
  function lefts() {
    return ["model", "conformant"].map(function (name) { return row.querySelector('[data-column="' + name + '"]').getBoundingClientRect().left; });
  }
  result.before = lefts();
  scroller.scrollLeft = 600;
  result.after = lefts();
  result.counts.hidden_again = click("identity");
  document.body.setAttribute("data-probe", JSON.stringify(result));
});
</script>"""


def test_task_columns_fit_1400_px_the_model_stays_and_groups_collapse(leaderboard_page: Path, tmp_path: Path) -> None:
    probed = leaderboard_page.with_name("probed.html")
    probed.write_text(leaderboard_page.read_text().replace("</body>", PROBE_SCRIPT + "</body>"))
    measured = json.loads(rendered(tmp_path / "profile", probed.as_uri()).body["data-probe"])
    assert measured["innerWidth"] == WINDOW_PX[0]
    tasks = [header for header in measured["headers"] if header["group"] == "tasks"]
    assert [header["column"] for header in tasks] == ["conformance_facts.acc.normalized", "conformance_sentiment.acc.normalized"]
    assert all(header["right"] <= WINDOW_PX[0] for header in tasks), tasks
    assert not any(header["group"] in ("identity", "tasks-raw", "families") for header in measured["headers"])  # collapsed by default
    counts = measured["counts"]
    assert counts["identity"] - counts["initial"] == 4  # dtype, architecture, license, sha256
    assert counts["raw"] - counts["identity"] == 2  # each task's raw accuracy
    assert counts["families"] - counts["raw"] == len(FAMILIES)
    assert counts["hidden_again"] == counts["families"] - 4
    assert measured["hash"] == "#show=tasks-raw,identity"  # the state is in the link
    (model_before, plain_before), (model_after, plain_after) = measured["before"], measured["after"]
    assert plain_after < plain_before - 100  # the table did scroll
    assert model_after == model_before  # the model column stayed in view


def test_screenshot_is_kept_as_an_artifact(leaderboard_page: Path, tmp_path: Path) -> None:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS_DIR / "leaderboard.png").unlink(missing_ok=True)  # the 1,280 px shot of earlier versions
    screenshot = ARTIFACTS_DIR / "leaderboard-1400.png"
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
