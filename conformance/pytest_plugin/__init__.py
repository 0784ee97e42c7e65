"""The pytest11 entry point: spec rules as pytest items, one per (model, rule).

    pytest --conformance-spec SPEC --conformance-model MODEL_DIR

collects `<spec>::<model>::<rule id>` items (markers `conformance` and the rule's level), measures each
model once per session whatever spec files its selected items come from, and maps verdicts onto pytest's
outcomes. Files named `conformance_*.yaml` in the test tree are collected as spec files.
Heavy modules are imported only once a session has conformance work, so other projects' runs stay fast.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from ..standards import SPEC_SUFFIXES, find_standard
from .fixtures import assert_rule, conformance_assert, conformance_run
from .session import SETTINGS_KEY, ConformanceSession, get_store
from .settings import add_options, read_settings

__all__ = ["assert_rule", "conformance_assert", "conformance_run"]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    """Hook: the `--conformance-*` options and ini keys."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Hook: the markers, the resolved settings (UsageError for a bad device) and the session's hooks."""
    for line in (
        "conformance: a rule of a conformance spec judged on a model",
        "must: a conformance rule of level must (a failure fails the test)",
        "should: a conformance rule of level should (a shortfall is reported as xfail)",
        "may: a conformance rule of level may (a shortfall is reported as xfail)",
    ):
        config.addinivalue_line("markers", line)
    if not config.pluginmanager.has_plugin("xdist"):
        config.addinivalue_line("markers", "xdist_group(name): keeps a model's items on one pytest-xdist worker")
    config.stash[SETTINGS_KEY] = read_settings(config)
    config.pluginmanager.register(ConformanceSession(config), "conformance-session")


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """Hook: one header line naming the specs, models, device and output folder (None without conformance work)."""
    settings = config.stash[SETTINGS_KEY]
    if not (settings.specs or settings.models):
        return None
    specs = ", ".join(path.name for path in settings.specs) or f"spec files matching {' '.join(settings.spec_patterns)}"
    out = f", results to {settings.out}" if settings.out else ""
    return [f"conformance: {specs}; models {', '.join(map(str, settings.models)) or 'from the specs'}; device {settings.device}{out}"]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Hook: a SpecFile for a file matching the spec patterns (never the package's own lm-eval task files)."""
    if file_path.suffix.lower() not in SPEC_SUFFIXES:
        return None
    if not any(file_path.match(pattern) for pattern in parent.config.stash[SETTINGS_KEY].spec_patterns):
        return None
    if file_path.resolve().is_relative_to(_PACKAGE_DIR):
        return None  # the bundled lm-eval tasks are named conformance_*.yaml too; they are not specs
    from .nodes import SpecFile

    get_store(parent.config).collected_specs.add(file_path.resolve())
    return SpecFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the --conformance-spec files' items before -k, -m and --lf select, so it works in an empty folder."""
    settings = config.stash[SETTINGS_KEY]
    if not settings.specs:
        return
    from .nodes import SpecFile

    store = get_store(config)
    for path in settings.specs:
        if path in store.collected_specs:
            continue  # already collected from the test tree
        store.collected_specs.add(path)
        nodeid = spec_nodeid(path, config.rootpath)
        items.extend(session.genitems(SpecFile.from_parent(session, path=path, nodeid=nodeid)))


def spec_nodeid(path: Path, rootpath: Path) -> str | None:
    """The node id of a `--conformance-spec` file; None lets pytest name it from the rootdir.

    A shipped standard is `standard:<name>` whatever the rootdir (a rootdir above the installed package
    would otherwise give `work/clone/conformance/_specs/standards/<name>.yaml`), so its items read
    `standard:<name>::<model>::<RULE>` for `--deselect` and `-k` on every machine. Another spec outside
    the rootdir is addressed by its file name alone; one inside keeps its path relative to the rootdir.
    """
    shipped = find_standard(path.stem)
    if shipped is not None and shipped.resolve() == path.resolve():
        return f"standard:{path.stem}"
    return None if path.is_relative_to(rootpath) else path.name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Hook: a rule item's skip points at its spec file, not at this plugin's source line."""
    report = yield
    if not (report.skipped and "conformance" in item.keywords and isinstance(report.longrepr, tuple)):
        return report
    from .nodes import RuleItem

    if isinstance(item, RuleItem) and len(report.longrepr) == 3:
        # A skip raised in setup would point at this plugin's source line; point at the spec file instead.
        report.longrepr = (str(item.path), None, report.longrepr[2])
    return report
