"""The distribution: its own name on the package index, a license file, both commands, metadata read under that name."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

from conformance import DISTRIBUTION, __version__
from conformance.report import sarif

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)["project"]


def test_the_distribution_has_a_name_of_its_own(project):
    # `conformance` on the index is an unrelated project; the import package keeps the short name.
    assert project["name"] == DISTRIBUTION == "model-conformance"
    assert project["version"] == __version__
    assert project["requires-python"] == ">=3.10"


def test_license_file_and_classifiers(project):
    assert project["license"] == "Apache-2.0"
    for name in project["license-files"]:
        text = (ROOT / name).read_text(encoding="utf-8")
        assert "Apache License" in text and "Version 2.0, January 2004" in text
    classifiers = project["classifiers"]
    assert not [c for c in classifiers if c.startswith("License ::")]  # setuptools refuses them beside an expression
    assert "Programming Language :: Python :: 3.10" in classifiers
    assert project["authors"] and all(author.get("name") for author in project["authors"])
    if "Typing :: Typed" in classifiers:
        assert (ROOT / "conformance" / "py.typed").is_file()


def test_both_commands_run_the_cli(project):
    assert project["scripts"] == {"model-conformance": "conformance.cli:main", "conformance": "conformance.cli:main"}
    installed = {entry.name: entry.value for entry in metadata.distribution(DISTRIBUTION).entry_points
                 if entry.group == "console_scripts"}
    assert installed == project["scripts"]


def test_the_signing_extra_names_pyopenssl(project):
    extras = project["optional-dependencies"]
    # model-signing 1.1 imports OpenSSL without declaring it.
    assert {"model-signing>=1.1,<2", "pyopenssl>=24"} <= set(extras["signing"]) <= set(extras["test"])


def test_sarif_reads_this_distribution_metadata():
    assert sarif.tool_version() == metadata.version(DISTRIBUTION)
    assert metadata.metadata(DISTRIBUTION)["Name"] == DISTRIBUTION
