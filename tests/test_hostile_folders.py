"""Every hostile example folder through the real `conformance check`, run as a child process with limits.

Each run must end within RUN_TIMEOUT_S (a hang fails the test instead of hanging the suite), stay within a
memory and file-size limit, write a valid result document, give the rule about the hostile file its right
verdict (it fails or errors, naming the cause; an exceeded budget is an `error` naming the budget, never a
pass), and leave every rule that does not need the hostile file with its real verdict. The malicious
pickles only try to create a canary file: no canary may ever appear.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conformance.results import load_result, validate_document
from conformance.zoo import hostile

RUN_TIMEOUT_S = 600  # a hang fails; generous: the static runs take about a second, the loading group about ten, on a busy machine many times that
MEMORY_LIMIT_BYTES = 4 << 30  # address space of a static run: a blow-up dies here instead of swapping the machine
MAX_RSS_BYTES = 1 << 30  # a static run of a tiny model stays far below this
FILE_SIZE_LIMIT_BYTES = 256 << 20  # no temporary copy of an inflated member: the child may not write a bigger file
BUDGET_WORDS = ("budget", "limit", "exceed", "too many", "too large", "too deep", "larger than", "seconds", "timed out", "time out")

RULES = [
    {"id": "SCAN", "level": "must", "check": "safety.serialization_scan"},
    {"id": "FORMAT", "level": "must", "check": "safety.weights_format"},
    {"id": "CODE", "level": "must", "check": "safety.remote_code"},
    {"id": "ARCH-TYPE", "level": "must", "check": "architecture.model_type", "equals": "llama"},
    {"id": "ARCH-LAYERS", "level": "must", "check": "architecture.num_layers", "min": 1},
    {"id": "CONTEXT", "level": "must", "check": "architecture.context_length", "max": 1_000_000},
    {"id": "PARAMS", "level": "must", "check": "size.parameters", "max": 1.0e9},
    {"id": "DTYPES", "level": "must", "check": "size.weight_dtypes", "in": ["F32", "BF16", "F16"]},
    {"id": "TOKENIZER", "level": "must", "check": "tokenizer.present"},
    {"id": "TOKENIZER-FITS", "level": "must", "check": "tokenizer.vocab_matches_embeddings"},
    {"id": "CARD", "level": "should", "check": "card.present"},
    {"id": "LICENSE", "level": "should", "check": "safety.license", "in": ["apache-2.0", "mit"]},
    {"id": "SECTIONS", "level": "should", "check": "card.sections", "required": ["Limitations"]},
    {"id": "CLAIMS", "level": "should", "check": "card.claims"},
    {"id": "SUMS", "level": "should", "check": "safety.checksums"},
]
LOADS = {"id": "LOADS", "level": "must", "check": "runtime.loads"}
CARD_RULES = ("CARD", "LICENSE", "SECTIONS", "CLAIMS", "SUMS")
# Rules by the one input they read: config.json, and the weight files (safetensors headers, names).
CONFIG_RULES = ("ARCH-TYPE", "ARCH-LAYERS", "CONTEXT")
WEIGHT_RULES = ("PARAMS", "DTYPES", "FORMAT")


# --------------------------------------------------------------------------------------------------
# Running the command
# --------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One finished `conformance check`: exit code, output, the documents it wrote and its peak memory."""

    code: int
    stdout: str
    stderr: str
    out: Path
    max_rss_bytes: int
    seconds: float

    def document(self, model: Path) -> dict:
        path = self.out / f"{model.name}.json"
        assert path.is_file(), f"no result document for {model.name}: {sorted(p.name for p in self.out.glob('*'))}\n{self.stderr[-2000:]}"
        document = load_result(path)  # raises unless the file is a whole, valid result document
        assert validate_document(document) == []
        assert "Traceback" not in json.dumps(document)
        return document


def _limits(memory: bool) -> Callable[[], None]:
    def apply() -> None:
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT_BYTES, FILE_SIZE_LIMIT_BYTES))

    return apply


# The command runs as the grandchild of a small launcher that reports the command's own peak memory. Measured on
# a direct child, ru_maxrss would start at the test process's resident size: exec records the forked copy's
# high-water mark (Linux exec_mmap), so a test session that has grown past the budget fails every check.
_LAUNCHER = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "conformance", *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def conformance(args: list[str], workdir: Path, *, memory_limit: bool = True, timeout: float = RUN_TIMEOUT_S) -> Outcome:
    """Run ``python -m conformance ARGS`` in its own process group; kill the group and fail the test on timeout."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CONFORMANCE_CACHE_DIR": str(workdir / "cache"),
        "TMPDIR": str(workdir),
    }
    stdout_path, stderr_path = workdir / "stdout.txt", workdir / "stderr.txt"
    started = time.monotonic()
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(workdir / "max_rss_kib.txt"), *args],
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,
            preexec_fn=_limits(memory_limit),
        )
        status, usage = 0, None
        while time.monotonic() - started < timeout:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.05)
        else:
            os.killpg(process.pid, signal.SIGKILL)
            os.wait4(process.pid, 0)
            process.returncode = -9  # reaped here, so Popen must not wait for it again
            tail = stderr_path.read_text(errors="replace")[-1500:]
            pytest.fail(f"conformance {args[0]} did not finish within {timeout:.0f} s; stderr ends:\n{tail}")
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    outcome = Outcome(
        code=process.returncode,
        stdout=stdout_path.read_text(errors="replace"),
        stderr=stderr_path.read_text(errors="replace"),
        out=workdir / "out",
        max_rss_bytes=int((workdir / "max_rss_kib.txt").read_text() or 0) * 1024,  # Linux reports KiB
        seconds=seconds,
    )
    assert "Traceback" not in outcome.stderr and "Traceback" not in outcome.stdout, outcome.stderr[-3000:]
    return outcome


def write_spec(path: Path, rules: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"id": "hostile-folders", "version": "1", "rules": rules}), encoding="utf-8")
    return path


def check(models: list[Path], rules: list[dict], workdir: Path, *, memory_limit: bool = True) -> Outcome:
    """`conformance check MODELS` against ``rules``: exit 0 or 1 (per the documents), a document per model."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = write_spec(workdir / "spec.yaml", rules)
    outcome = conformance(
        ["check", *map(str, models), "--spec", str(spec), "--out", str(workdir / "out"), "--no-cache", "-q"],
        workdir,
        memory_limit=memory_limit,
    )
    documents = [outcome.document(model) for model in models]
    for document in documents:
        assert {r["id"] for r in document["rules"]} == {r["id"] for r in rules}
    conformant = all(d["summary"]["conformant"] for d in documents)
    assert outcome.code == (0 if conformant else 1), (outcome.code, outcome.stderr[-2000:])
    if memory_limit:
        assert outcome.max_rss_bytes < MAX_RSS_BYTES, f"peak resident memory {outcome.max_rss_bytes / 2**20:.0f} MiB"
    return outcome


def rules_of(document: dict) -> dict[str, dict]:
    return {r["id"]: r for r in document["rules"]}


def _message(rule: dict) -> str:
    return str(rule.get("message") or "")


def assert_status(document: dict, rule_id: str, statuses: str | tuple[str, ...], *words: str) -> None:
    """The rule's status is one of ``statuses`` and its message names every one of ``words`` (any case)."""
    rule = rules_of(document)[rule_id]
    allowed = (statuses,) if isinstance(statuses, str) else statuses
    assert rule["status"] in allowed, f"{rule_id}: {rule['status']} (want {'/'.join(allowed)}): {_message(rule)}"
    message = _message(rule)
    assert "\n" not in message, f"{rule_id}: message is not one line: {message!r}"
    for word in words:
        assert word.lower() in message.lower(), f"{rule_id}: message does not name {word!r}: {message}"


def assert_passes(document: dict, *rule_ids: str) -> None:
    """Each rule keeps its real verdict on the intact files: pass."""
    rules = rules_of(document)
    failed = {i: f"{rules[i]['status']}: {_message(rules[i])}" for i in rule_ids if rules[i]["status"] != "pass"}
    assert not failed, failed


def assert_fails_or_budget_error(document: dict, rule_id: str, *fail_words: str, refusals: tuple[str, ...] = ()) -> None:
    """Either the work was done and the rule fails naming ``fail_words``, or it stopped at a budget (or
    refused the input up front for one of ``refusals``): an `error` whose message names it. Never a pass."""
    rule = rules_of(document)[rule_id]
    message = _message(rule).lower()
    if rule["status"] == "error":
        named = any(word in message for word in (*BUDGET_WORDS, *refusals))
        assert named, f"{rule_id}: error that names no budget: {_message(rule)}"
    else:
        assert_status(document, rule_id, "fail", *fail_words)


def all_ids(*excluded: str) -> tuple[str, ...]:
    return tuple(r["id"] for r in RULES if r["id"] not in excluded)


class Documents:
    """Example name -> result document of a grouped run; an example whose own run failed fails its test."""

    def __init__(self, documents: dict[str, dict], failures: dict[str, str]) -> None:
        self.documents, self.failures = documents, failures

    def __getitem__(self, name: str) -> dict:
        if name in self.failures:
            pytest.fail(self.failures[name], pytrace=False)
        return self.documents[name]


def check_group(models: dict[str, Path], rules: list[dict], workdir: Path, *, memory_limit: bool = True) -> Documents:
    """One `conformance check` over all ``models``; if that run fails, each model again on its own, so a
    crash or hang in one example fails that example's tests and leaves the others their verdicts."""
    try:
        outcome = check(list(models.values()), rules, workdir / "group", memory_limit=memory_limit)
        return Documents({name: outcome.document(model) for name, model in models.items()}, {})
    except (AssertionError, pytest.fail.Exception):
        documents, failures = {}, {}
        for name, model in models.items():
            try:
                documents[name] = check([model], rules, workdir / name, memory_limit=memory_limit).document(model)
            except (AssertionError, pytest.fail.Exception) as error:
                failures[name] = f"{name} on its own: {error}"[:4000]
        return Documents(documents, failures)


# --------------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama with a full card that every hostile folder copies (built once: seconds)."""
    return hostile.build_hostile_base(tmp_path_factory.mktemp("hostile-base") / "base")


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder every malicious pickle of this module would create its canary in: it must stay empty."""
    folder = tmp_path_factory.mktemp("canaries")
    yield folder
    assert not list(folder.iterdir()), f"a pickle was unpickled: {list(folder.iterdir())}"


@pytest.fixture
def folder(tmp_path: Path) -> Callable[[str], Path]:
    return lambda name: tmp_path / "models" / name


# Examples whose danger is not a hang or a blow-up share one `conformance check` (seconds, not one
# process start each); it is still bounded by RUN_TIMEOUT_S, so a hang fails these tests, not the suite.
GROUPED: dict[str, Callable[[Path, Path, Path], Path]] = {
    "polyglot-args": lambda out, base, canaries: hostile.build_polyglot_pickle(out, canaries / out.name, "training_args.bin", base=base),
    "npy-object": lambda out, base, canaries: hostile.build_npy_object(out, canaries / out.name, "object", base=base),
    "npy-structured": lambda out, base, canaries: hostile.build_npy_object(out, canaries / out.name, "structured", base=base),
    "joblib": lambda out, base, canaries: hostile.build_compressed_joblib(out, canaries / out.name, base=base),
    "protocol0": lambda out, base, canaries: hostile.build_protocol0_pickle(out, canaries / out.name, base=base),
    "frame-boundary": lambda out, base, canaries: hostile.build_frame_boundary(out, canaries / out.name, base=base),
    "card-inf": lambda out, base, _: hostile.build_card_nonfinite(out, "score-inf", base=base),
    "card-nan": lambda out, base, _: hostile.build_card_nonfinite(out, "parameters-nan", base=base),
    "config-nan-layers": lambda out, base, _: hostile.build_config_nonfinite(out, "nan-layers", base=base),
    "config-inf-context": lambda out, base, _: hostile.build_config_nonfinite(out, "inf-context", base=base),
    "config-900": lambda out, base, _: hostile.build_deep_value(out, "config", base=base),
    "card-900": lambda out, base, _: hostile.build_deep_value(out, "card", base=base),
    "dtype-list": lambda out, base, _: hostile.build_dtype_list(out, base=base),
    "deep-header": lambda out, base, _: hostile.build_deep_json(out, "header", base=base),
    "deep-config": lambda out, base, _: hostile.build_deep_json(out, "config", base=base),
    "deep-tokenizer": lambda out, base, _: hostile.build_deep_json(out, "tokenizer", base=base),
    "vocab-inf": lambda out, base, _: hostile.build_vocab_infinity(out, base=base),
    "symlink-loop": lambda out, base, _: hostile.build_symlink_loop(out, base=base),
    "tokenizer-auto-map": lambda out, base, _: hostile.build_tokenizer_auto_map(out, base=base),
    "custom-pipelines": lambda out, base, _: hostile.build_custom_pipelines(out, base=base),
}


@pytest.fixture(scope="module")
def grouped(base: Path, canaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Documents:
    """Example name (and "control", the untouched base) -> its result document, from one bounded run."""
    root = tmp_path_factory.mktemp("grouped")
    models = {"control": base} | {name: build(root / "models" / name, base, canaries) for name, build in GROUPED.items()}
    return check_group(models, RULES, root / "run")


def test_control_base_folder_passes_every_rule(grouped: Documents) -> None:
    """The control: the folder the hostile examples copy passes every rule, so a changed verdict is theirs."""
    document = grouped["control"]
    assert_passes(document, *all_ids())


# --------------------------------------------------------------------------------------------------
# Loading: pickles a loader would run, and files the load would open outside the folder
# --------------------------------------------------------------------------------------------------

OUTSIDE_LINKS = ("model.safetensors", "tokenizer.json", "generation_config.json")
IN_OPEN, IN_ACCESS = 0x20, 0x01


class OpenWatch:
    """Kernel-level record (inotify) of any process opening or reading the watched files: it sees opens
    from Rust (safetensors) and C code too, which Python's audit hooks do not."""

    def __init__(self, paths: list[Path]) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self._fd >= 0, os.strerror(ctypes.get_errno())
        self._paths = {}
        for path in paths:
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(path), IN_OPEN | IN_ACCESS)
            assert wd >= 0, (path, os.strerror(ctypes.get_errno()))
            self._paths[wd] = path

    def touched(self) -> set[Path]:
        """The watched paths opened or read since the watch began."""
        seen = set()
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            data = b""
        offset = 0
        while offset + 16 <= len(data):
            wd, _mask, _cookie, length = (int.from_bytes(data[offset + i : offset + i + 4], "little") for i in (0, 4, 8, 12))
            seen.add(self._paths[wd])
            offset += 16 + length
        return seen

    def close(self) -> None:
        os.close(self._fd)


@dataclass
class LoadGroup:
    models: dict[str, Path]
    documents: Documents
    outside: list[Path]
    touched_outside: set[Path]
    watch_works: bool


@pytest.fixture(scope="module")
def load_group(base: Path, canaries: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadGroup:
    """One `conformance check` with runtime.loads over every loading example (one torch import for all),
    with inotify watching the files outside the folders that a careless load would open."""
    root = tmp_path_factory.mktemp("load")
    models = root / "models"
    built = {
        "control": base,
        "polyglot-bin": hostile.build_polyglot_pickle(models / "polyglot-bin", canaries / "polyglot-bin", "pytorch_model.bin", base=base),
        "polyglot-zip": hostile.build_polyglot_pickle(models / "polyglot-zip", canaries / "polyglot-zip", "torch_zip", base=base),
        "index-sibling": hostile.build_index_outside(models / "index-sibling", "sibling", base=base),
        "index-passwd": hostile.build_index_outside(models / "index-passwd", "etc-passwd", base=base),
    }
    for name in OUTSIDE_LINKS:
        built[f"link-{name}"] = hostile.build_symlink_outside(models / f"link-{name}", name, base=base)
    outside = [root / hostile.OUTSIDE_DIR / "shard2.safetensors"]  # ../../outside from the model folder
    outside += [hostile.outside_link_target(models / f"link-{name}", name) for name in OUTSIDE_LINKS]
    assert all(path.is_file() for path in outside)
    probe = root / "watch-probe"
    probe.write_bytes(b"x")
    watch = OpenWatch([*outside, probe])
    try:
        probe.read_bytes()  # proves the watch sees opens here
        documents = check_group(built, [*RULES, LOADS], root / "run", memory_limit=False)
        touched = watch.touched()
    finally:
        watch.close()
    return LoadGroup(built, documents, outside, touched - {probe}, probe in touched)


def test_load_control_loads(load_group: LoadGroup) -> None:
    assert load_group.watch_works
    assert_passes(load_group.documents["control"], *all_ids(), "LOADS")


@pytest.mark.parametrize("placement", ["bin", "zip"])
def test_polyglot_pickle_is_scanned_and_never_loaded(placement: str, load_group: LoadGroup, canaries: Path) -> None:
    """A pickle whose first bytes also read as a safetensors header: scanned as the pickle it is."""
    document = load_group.documents[f"polyglot-{placement}"]
    where = "pytorch_model.bin" if placement == "bin" else "pytorch_model.bin:archive/data.pkl"
    assert_status(document, "SCAN", "fail", where, "posix.system")
    assert_status(document, "FORMAT", "fail", "pickle")
    assert_status(document, "LOADS", ("fail", "error"))
    assert_passes(document, "CODE", *CONFIG_RULES, "TOKENIZER", "CARD", "LICENSE", "SECTIONS")
    assert not (canaries / f"polyglot-{placement}").exists()


@pytest.mark.parametrize("target", ["sibling", "passwd"])
def test_index_naming_a_shard_outside_the_folder(target: str, load_group: LoadGroup) -> None:
    document = load_group.documents[f"index-{target}"]
    named = "../../outside/shard2.safetensors" if target == "sibling" else "/etc/passwd"
    assert_status(document, "LOADS", "error", named, "model folder")
    assert_status(document, "PARAMS", "error", named, "model folder")
    assert_passes(document, "FORMAT", "CODE", *CONFIG_RULES, "TOKENIZER", "CARD", "LICENSE", "SECTIONS")
    assert load_group.outside[0] not in load_group.touched_outside, "the shard outside the folder was opened"


@pytest.mark.parametrize("name", OUTSIDE_LINKS)
def test_symlink_outside_the_folder_is_never_loaded(name: str, load_group: LoadGroup) -> None:
    document = load_group.documents[f"link-{name}"]
    assert_status(document, "LOADS", "error", name, "model folder")
    if name == "model.safetensors":
        assert_status(document, "PARAMS", "error", name, "model folder")
        assert_passes(document, "CODE", *CONFIG_RULES, "TOKENIZER", "CARD", "LICENSE", "SECTIONS")
    else:
        assert_passes(document, *CONFIG_RULES, *WEIGHT_RULES, "CARD", "LICENSE", "SECTIONS")
        if name == "tokenizer.json":
            assert_status(document, "TOKENIZER", ("fail", "error"), name, "model folder")
        else:
            assert_passes(document, "TOKENIZER")
        # Custom code may be named in any JSON file the load reads: one it cannot read, it may not vouch for.
        if rules_of(document)["CODE"]["status"] != "pass":
            assert_status(document, "CODE", "error", name, "model folder")
    outside = next(path for path in load_group.outside if path.name == name)
    assert outside not in load_group.touched_outside, f"{outside} was opened"


# --------------------------------------------------------------------------------------------------
# Pickles the scan must catch, whatever the file looks like
# --------------------------------------------------------------------------------------------------


def test_polyglot_training_args_beside_good_weights(grouped: Documents, canaries: Path) -> None:
    document = grouped["polyglot-args"]
    assert_status(document, "SCAN", "fail", "training_args.bin", "posix.system")
    assert document["summary"]["conformant"] is False
    assert_passes(document, "CODE", *CONFIG_RULES, "PARAMS", "DTYPES", "TOKENIZER", "TOKENIZER-FITS", *CARD_RULES[:4])
    assert not (canaries / "polyglot-args").exists()


@pytest.mark.parametrize("descr", ["object", "structured"])
def test_npy_object_dtype_without_pipe_o(descr: str, grouped: Documents, canaries: Path) -> None:
    document = grouped[f"npy-{descr}"]
    assert_status(document, "SCAN", "fail", "embeddings.npy", "builtins.open")
    assert_passes(document, *all_ids("SCAN", "SUMS"))
    assert not (canaries / f"npy-{descr}").exists()


def test_compressed_joblib(grouped: Documents, canaries: Path) -> None:
    document = grouped["joblib"]
    assert_status(document, "SCAN", "fail", "preprocessor.dat", "builtins.open")
    assert_passes(document, *all_ids("SCAN", "SUMS"))
    assert not (canaries / "joblib").exists()


def test_protocol0_pickle_without_proto(grouped: Documents, canaries: Path) -> None:
    document = grouped["protocol0"]
    assert_status(document, "SCAN", "fail", "weights.dat", "spawnv_passfds")
    assert_passes(document, *all_ids("SCAN", "SUMS"))
    assert not (canaries / "protocol0").exists()


def test_frame_boundary_hides_a_call_from_linear_readers(grouped: Documents, canaries: Path) -> None:
    """A FRAME that splits a BINBYTES: CPython's C unpickler runs a call that a linear reading never sees."""
    document = grouped["frame-boundary"]
    assert_status(document, "SCAN", "fail", "scheduler.pt", "posix.system")
    assert_passes(document, *all_ids("SCAN", "FORMAT", "SUMS"))
    assert not (canaries / "frame-boundary").exists()


# --------------------------------------------------------------------------------------------------
# Special files
# --------------------------------------------------------------------------------------------------


def test_fifo_as_weights(base: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_fifo(folder("fifo-weights"), "model.safetensors", base=base)
    document = check([model], RULES, tmp_path / "run").document(model)
    for rule_id in ("PARAMS", "DTYPES"):
        assert_status(document, rule_id, "error", "model.safetensors")
    assert_status(document, "SUMS", ("fail", "error"), "model.safetensors")
    assert_status(document, "SCAN", ("fail", "error"), "model.safetensors")
    assert_passes(document, "CODE", *CONFIG_RULES, "TOKENIZER", "CARD", "LICENSE", "SECTIONS")


def test_fifo_as_vocab(base: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_fifo(folder("fifo-vocab"), "vocab.txt", base=base)
    document = check([model], RULES, tmp_path / "run").document(model)
    assert_status(document, "SCAN", ("fail", "error"), "vocab.txt")
    # This llama's tokenizer is tokenizer.json: vocab.txt is no file of it, unless the tokenizer rule reads it.
    if rules_of(document)["TOKENIZER"]["status"] != "pass":
        assert_status(document, "TOKENIZER", ("fail", "error"), "vocab.txt")
    assert_passes(document, "CODE", *CONFIG_RULES, *WEIGHT_RULES, "TOKENIZER-FITS", *CARD_RULES)


def test_fifo_as_extra_file(base: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_fifo(folder("fifo-extra"), "extra.bin", base=base)
    document = check([model], RULES, tmp_path / "run").document(model)
    assert_status(document, "SCAN", ("fail", "error"), "extra.bin")
    assert_passes(document, "CODE", *CONFIG_RULES, "PARAMS", "DTYPES", "TOKENIZER", "TOKENIZER-FITS", *CARD_RULES[:4])


# --------------------------------------------------------------------------------------------------
# Resource blow-ups: bounded, and an exceeded budget is an error naming it
# --------------------------------------------------------------------------------------------------


def test_card_alias_bomb(base: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_card_alias_bomb(folder("card-laughs"), base=base)
    outcome = check([model], RULES, tmp_path / "run")
    document = outcome.document(model)
    assert_status(document, "CARD", "fail", "README.md", "alias")
    for rule_id in CARD_RULES[1:]:
        assert_status(document, rule_id, "error", "alias")
    assert_passes(document, "SCAN", "CODE", *CONFIG_RULES, *WEIGHT_RULES, "TOKENIZER", "TOKENIZER-FITS")
    assert (outcome.out / "card-laughs.json").stat().st_size < 1 << 20


def test_spec_alias_bomb_is_a_bad_request(base: Path, tmp_path: Path) -> None:
    spec = tmp_path / "laughs.yaml"
    spec.write_text(hostile.alias_bomb_yaml("x-lol") + yaml.safe_dump({"id": "laughs", "version": "1", "rules": RULES[:1]}))
    outcome = conformance(["check", str(base), "--spec", str(spec), "--out", str(tmp_path / "run" / "out")], tmp_path / "run")
    assert outcome.code == 2, (outcome.code, outcome.stderr[-1500:])
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and "laughs.yaml" in lines[0] and "alias" in lines[0].lower(), lines
    assert not (tmp_path / "run" / "out").exists()
    assert outcome.max_rss_bytes < MAX_RSS_BYTES


def test_card_heading_with_20000_spaces(base: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_card_heading_spaces(folder("card-spaces"), base=base)
    document = check([model], RULES, tmp_path / "run").document(model)
    assert_passes(document, *all_ids())


def test_license_pattern_that_backtracks(base: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_card_license(folder("card-license"), "a" * 60 + "!", base=base)
    rules = [*[r for r in RULES if r["id"] != "LICENSE"], {"id": "LICENSE", "level": "should", "check": "safety.license", "pattern": "^(a|aa)+$"}]
    document = check([model], rules, tmp_path / "run").document(model)
    assert_fails_or_budget_error(document, "LICENSE", "^(a|aa)+$")
    assert_passes(document, *all_ids("LICENSE"))


def test_twelve_pickles_of_five_million_opcodes(base: Path, canaries: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_opcode_flood(folder("opcode-flood"), canaries / "opcode-flood", base=base)
    document = check([model], RULES, tmp_path / "run").document(model)
    assert_fails_or_budget_error(document, "SCAN", "rng_state_11.pth", "builtins.open")
    assert_passes(document, "CODE", *CONFIG_RULES, "PARAMS", "DTYPES", "TOKENIZER", "TOKENIZER-FITS", *CARD_RULES[:4])
    assert not (canaries / "opcode-flood").exists()


def test_zip_members_inflating_past_a_gib(base: Path, canaries: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_zip_bomb(folder("zip-bomb"), canaries / "zip-bomb", base=base)
    assert (model / "optimizer.pt").stat().st_size < 8 << 20
    document = check([model], RULES, tmp_path / "run").document(model)
    assert_fails_or_budget_error(document, "SCAN", "optimizer.pt", "builtins.open")
    assert_passes(document, "CODE", *CONFIG_RULES, "PARAMS", "DTYPES", "TOKENIZER", "TOKENIZER-FITS", *CARD_RULES[:4])
    assert not (canaries / "zip-bomb").exists()


def test_sparse_40_gb_weights_with_a_checksum_rule(base: Path, folder, tmp_path: Path) -> None:
    model = hostile.build_sparse_weights(folder("sparse-40gb"), base=base)
    assert (model / "model.safetensors").stat().st_size > 40 * 10**9
    document = check([model], RULES, tmp_path / "run").document(model)
    assert_fails_or_budget_error(document, "SUMS", "model.safetensors", refusals=("sparse",))
    assert "model.safetensors" in _message(rules_of(document)["SUMS"])
    assert_status(document, "PARAMS", "fail")
    assert rules_of(document)["PARAMS"]["observed"] == 10**10
    # A header and 40 GB of zeros hold no pickle: the scan passes, or says which budget stopped it.
    if rules_of(document)["SCAN"]["status"] != "pass":
        assert_fails_or_budget_error(document, "SCAN", "model.safetensors")
        assert rules_of(document)["SCAN"]["status"] == "error"
    assert_passes(document, "FORMAT", "DTYPES", "CODE", *CONFIG_RULES, "TOKENIZER", "CARD", "LICENSE", "SECTIONS")


# --------------------------------------------------------------------------------------------------
# Values that broke the result document
# --------------------------------------------------------------------------------------------------


def test_card_score_infinity(grouped: Documents) -> None:
    document = grouped["card-inf"]
    assert_passes(document, *all_ids())


def test_card_parameters_nan(grouped: Documents) -> None:
    document = grouped["card-nan"]
    assert_status(document, "CLAIMS", ("fail", "error"), "parameters")
    assert_passes(document, "SCAN", "CODE", *CONFIG_RULES, *WEIGHT_RULES, "TOKENIZER", "TOKENIZER-FITS")


@pytest.mark.parametrize(("kind", "rule_id"), [("nan-layers", "ARCH-LAYERS"), ("inf-context", "CONTEXT")])
def test_config_nan_and_infinity(kind: str, rule_id: str, grouped: Documents) -> None:
    document = grouped[f"config-{kind}"]
    assert_status(document, rule_id, ("fail", "error"))
    assert_passes(document, "SCAN", "CODE", "ARCH-TYPE", *WEIGHT_RULES, "TOKENIZER", "TOKENIZER-FITS", "CARD", "LICENSE", "SECTIONS")


def test_config_value_nested_900_deep(grouped: Documents) -> None:
    document = grouped["config-900"]
    if rules_of(document)["ARCH-TYPE"]["status"] != "pass":
        for rule_id in CONFIG_RULES:
            assert_status(document, rule_id, "error", "config.json", "deep")
    assert_passes(document, "SCAN", *WEIGHT_RULES, "TOKENIZER", "TOKENIZER-FITS", "CARD", "LICENSE", "SECTIONS")


def test_card_value_nested_900_deep(grouped: Documents) -> None:
    document = grouped["card-900"]
    if rules_of(document)["CARD"]["status"] != "pass":
        assert_status(document, "CARD", "fail", "README.md", "deep")
    assert_passes(document, "SCAN", "CODE", *CONFIG_RULES, *WEIGHT_RULES, "TOKENIZER", "TOKENIZER-FITS")


# --------------------------------------------------------------------------------------------------
# One bad file errors only the rules that need it
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dtype-list", "deep-header"])
def test_broken_safetensors_header(kind: str, grouped: Documents) -> None:
    document = grouped[kind]
    for rule_id in ("PARAMS", "DTYPES"):
        assert_status(document, rule_id, "error", "model.safetensors")
    assert_passes(document, "SCAN", "FORMAT", "CODE", *CONFIG_RULES, "TOKENIZER", "CARD", "LICENSE", "SECTIONS")


def test_config_nested_100000_deep(grouped: Documents) -> None:
    document = grouped["deep-config"]
    for rule_id in CONFIG_RULES:
        assert_status(document, rule_id, "error", "config.json")
    assert_passes(document, "SCAN", *WEIGHT_RULES, "TOKENIZER", "CARD", "LICENSE", "SECTIONS", "SUMS")


def test_tokenizer_nested_100000_deep(grouped: Documents) -> None:
    document = grouped["deep-tokenizer"]
    assert_status(document, "TOKENIZER", ("fail", "error"), "tokenizer.json")
    assert_passes(document, "SCAN", "CODE", *CONFIG_RULES, *WEIGHT_RULES, *CARD_RULES)


def test_vocab_id_infinity(grouped: Documents) -> None:
    document = grouped["vocab-inf"]
    assert_status(document, "TOKENIZER-FITS", ("fail", "error"), "tokenizer.json")
    assert_passes(document, "SCAN", "CODE", *CONFIG_RULES, *WEIGHT_RULES, *CARD_RULES)


def test_symlink_loop(grouped: Documents) -> None:
    document = grouped["symlink-loop"]
    assert_status(document, "SCAN", ("fail", "error"), "loop-a.json")
    assert_passes(document, *all_ids("SCAN"))


# --------------------------------------------------------------------------------------------------
# Remote code named outside config.json's auto_map
# --------------------------------------------------------------------------------------------------


def test_tokenizer_auto_map_names_remote_code(grouped: Documents) -> None:
    document = grouped["tokenizer-auto-map"]
    assert_status(document, "CODE", "fail", "tokenizer_config.json", "evil/repo--tokenization_evil.EvilTokenizer")
    assert_passes(document, *all_ids("CODE"))


def test_config_custom_pipelines_names_remote_code(grouped: Documents) -> None:
    document = grouped["custom-pipelines"]
    assert_status(document, "CODE", "fail", "custom_pipelines", "evil/repo--pipe.EvilPipeline")
    assert_passes(document, *all_ids("CODE"))
