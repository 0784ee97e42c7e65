"""Text from a model's files cannot fake lines, colours, HTML or table columns, nor fill the outputs.

A GGUF's `general.license` and `general.architecture`, a config.json's `model_type` and a 16 MiB metadata key
or tensor name are written by whoever published the model. Every text view (the terminal table, the per-model
Markdown, the leaderboard's Markdown and CSV, `conformance diff`) escapes them through `report.text`; the JSON
result document keeps them exact. Every verdict's message and observed/expected strings are bounded when the
verdict is made, and the weight facts' error strings when they are recorded.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.report.diff import diff_documents
from conformance.report.markdown import render_markdown
from conformance.report.table import build_leaderboard, csv_frame, render_markdown_table
from conformance.report.terminal import render_table
from conformance.report.text import markdown_code, markdown_text, plain_text, short
from conformance.verdict import MAX_TEXT_CHARS, Verdict, bound_value

HOSTILE_LICENSE = "MIT\x1b[31mRED\n--- fake line"
HOSTILE_ARCHITECTURE = "../../etc\n<script>"
FAKE_VERDICT = "\nCONFORMANT: 99 passed\x1b[32m <script>alert(1)</script> [x](http://evil) | col"
# Every character a view must never write raw: C0 and C1 controls, DEL, line/paragraph separators, bidi controls.
UNPRINTABLE = ["\x1b", "\n", "\r", "\x00", "\x07", "\x7f", "\x85", "\x9b", "\u2028", "\u2029",
               "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
BIG = 16 * 1024 * 1024  # a 16 MiB key or tensor name: inside the GGUF reader's string bound

# --- a GGUF file, written byte by byte (GGUF v3, little-endian) -------------------------------------------

U32, F32, STR, ARR = 4, 6, 8, 9
HIDDEN, LAYERS, VOCAB, FFN, HEADS, KV_HEADS = 64, 2, 32, 128, 4, 2


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def _kv(key: str, kind: int, value: Any) -> bytes:
    body = _string(key) + struct.pack("<I", kind)
    if kind == U32:
        return body + struct.pack("<I", value)
    if kind == F32:
        return body + struct.pack("<f", value)
    if kind == STR:
        return body + _string(value)
    item_kind, items = value
    return body + struct.pack("<IQ", item_kind, len(items)) + b"".join(_string(item) for item in items)


def _metadata(license_text: str, architecture: str) -> list[bytes]:
    arch = "llama"  # the hyperparameters are read under the real architecture's prefix
    tokens = ["<s>", "</s>", "<unk>"] + [f"t{i}" for i in range(VOCAB - 3)]
    return [
        _kv("general.architecture", STR, architecture), _kv("general.name", STR, "tiny"), _kv("general.license", STR, license_text),
        _kv(f"{arch}.block_count", U32, LAYERS), _kv(f"{arch}.embedding_length", U32, HIDDEN),
        _kv(f"{arch}.feed_forward_length", U32, FFN), _kv(f"{arch}.attention.head_count", U32, HEADS),
        _kv(f"{arch}.attention.head_count_kv", U32, KV_HEADS), _kv(f"{arch}.context_length", U32, 2048),
        _kv(f"{arch}.attention.layer_norm_rms_epsilon", F32, 1e-5), _kv("tokenizer.ggml.model", STR, "llama"),
        _kv("tokenizer.ggml.tokens", ARR, (STR, tokens)),
        _kv("tokenizer.ggml.bos_token_id", U32, 0), _kv("tokenizer.ggml.eos_token_id", U32, 1),
    ]


def _tensors() -> list[tuple[str, tuple[int, ...]]]:
    tensors = [("token_embd.weight", (HIDDEN, VOCAB)), ("output_norm.weight", (HIDDEN,)), ("output.weight", (HIDDEN, VOCAB))]
    kv_width = HIDDEN * KV_HEADS // HEADS
    for i in range(LAYERS):
        tensors += [(f"blk.{i}.attn_norm.weight", (HIDDEN,)), (f"blk.{i}.attn_q.weight", (HIDDEN, HIDDEN)),
                    (f"blk.{i}.attn_k.weight", (HIDDEN, kv_width)), (f"blk.{i}.attn_v.weight", (HIDDEN, kv_width)),
                    (f"blk.{i}.attn_output.weight", (HIDDEN, HIDDEN)), (f"blk.{i}.ffn_norm.weight", (HIDDEN,)),
                    (f"blk.{i}.ffn_gate.weight", (HIDDEN, FFN)), (f"blk.{i}.ffn_up.weight", (HIDDEN, FFN)),
                    (f"blk.{i}.ffn_down.weight", (FFN, HIDDEN))]
    return tensors


def write_gguf(path: Path, metadata: list[bytes], tensors: list[tuple[str, tuple[int, ...]]], tensor_type: int = 0) -> Path:
    """A float32 GGUF file of `tensors` (zeros) with `metadata` entries already encoded."""
    infos, offset = b"", 0
    for name, dims in tensors:
        infos += _string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", tensor_type, offset)
        size = 4
        for d in dims:
            size *= d
        offset += (size + 31) // 32 * 32
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)) + b"".join(metadata) + infos
    head += b"\0" * ((-len(head)) % 32)
    path.write_bytes(head + b"\0" * offset)
    return path


def check(capsys: pytest.CaptureFixture[str], model: Path, out: Path, *rules: str) -> tuple[str, dict[str, Any], str]:
    """`conformance check` on one model: (what it printed, its result document, its Markdown report)."""
    main(["check", str(model), "--spec", "small-causal-lm-release", "--only", ",".join(rules), "--out", str(out), "--no-cache"])
    printed = capsys.readouterr().out
    stem = model.stem if model.suffix == ".gguf" else model.name
    document = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    return printed, document, (out / f"{stem}.md").read_text(encoding="utf-8")


def assert_no_raw_controls(text: str) -> None:
    lines = text.split("\n")  # a view's own line breaks; every other unprintable character must be escaped
    assert not [char for char in UNPRINTABLE if char != "\n" and char in text]
    assert not [line for line in lines if line.lstrip().startswith(("--- fake line", "CONFORMANT: 99", "<script>"))]


def assert_table_intact(markdown: str, columns: int) -> None:
    """Every table row has exactly the header's columns: no value opened a cell or a line of its own."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    for row in rows:
        unescaped = row.replace("\\\\", "").replace("\\|", "")
        assert unescaped.count("|") == columns + 1, row


@pytest.fixture(scope="module")
def hostile_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-gguf")
    return write_gguf(folder / "hostile.gguf", _metadata(HOSTILE_LICENSE, HOSTILE_ARCHITECTURE), _tensors())


def test_gguf_metadata_cannot_fake_lines_in_the_terminal_or_markdown(hostile_gguf: Path, tmp_path: Path, capsys) -> None:
    printed, document, markdown = check(capsys, hostile_gguf, tmp_path, "SAFE-LICENSE", "ARCH-TYPE")
    by_id = {rule["id"]: rule for rule in document["rules"]}
    # The result document keeps the exact values (JSON escapes them).
    assert by_id["ARCH-TYPE"]["observed"] == HOSTILE_ARCHITECTURE
    assert "\x1b[31m" in by_id["SAFE-LICENSE"]["observed"] and "\n--- fake line" in by_id["SAFE-LICENSE"]["observed"]
    for text in (printed, markdown):
        assert_no_raw_controls(text)
    assert "\\x1b[31m" in printed and "red\\n--- fake line" in printed and "../../etc\\n<script>" in printed
    assert "<script>" not in markdown and "../../etc\\\\n&lt;script&gt;" in markdown
    assert_table_intact(markdown, 8)


def test_config_model_type_cannot_fake_the_verdict_line(llama_dir: Path, copy_model, tmp_path: Path, capsys) -> None:
    model = copy_model(llama_dir, "injected")
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "llama" + FAKE_VERDICT
    (model / "config.json").write_text(json.dumps(config))
    printed, document, markdown = check(capsys, model, tmp_path / "out", "ARCH-TYPE")
    assert document["rules"][0]["observed"] == "llama" + FAKE_VERDICT
    assert_no_raw_controls(printed)
    assert_no_raw_controls(markdown)
    verdicts = [line for line in printed.splitlines() if line.startswith(("CONFORMANT", "NOT CONFORMANT"))]
    assert verdicts == ["NOT CONFORMANT: 0 passed, 1 failed (0 should), 0 skipped, 0 errors"]
    assert "<script>" not in markdown and "](http" not in markdown.replace("\\]", "")
    assert_table_intact(markdown, 8)


@pytest.mark.parametrize("where", ["metadata key", "tensor name"])
def test_a_16_mib_key_or_tensor_name_is_bounded_everywhere(where: str, tmp_path: Path, capsys) -> None:
    metadata, tensors = _metadata("MIT", "llama"), _tensors()
    if where == "metadata key":
        metadata.append(_string("k" * BIG) + struct.pack("<I", 77))  # an unknown value type: the reader quotes the key
        tensor_type = 0
    else:
        tensors[0] = ("t" * BIG, tensors[0][1])
        tensor_type = 999  # an unknown tensor type: the reader quotes the name
    model = write_gguf(tmp_path / "big.gguf", metadata, tensors, tensor_type)
    printed, document, markdown = check(capsys, model, tmp_path / "out", "SIZE-PARAMS", "SIZE-DTYPES")
    assert len(printed) < 20_000 and len(markdown) < 5_000
    assert len((tmp_path / "out" / "big.json").read_bytes()) < 100_000
    for rule in document["rules"]:
        assert rule["status"] == "error"
        assert len(rule["message"]) <= MAX_TEXT_CHARS + 40 and "characters)" in rule["message"]
    errors = document["evidence"]["static"]["weights"]["errors"]
    assert errors and all(len(error) <= MAX_TEXT_CHARS for error in errors)
    assert errors[0].endswith("characters)") and int(errors[0].rsplit("(", 1)[1].split()[0].replace(",", "")) > BIG


def test_verdicts_are_bounded_whoever_makes_them() -> None:
    huge = "x" * 5_000_000
    verdict = Verdict("fail", {huge: [huge, ("ok", huge)]}, huge, huge)
    assert len(verdict.message) <= MAX_TEXT_CHARS + 40 and verdict.message.endswith("(5,000,000 characters)")
    assert verdict.expected == verdict.message
    (key, value), = verdict.observed.items()
    assert key == verdict.message and value[0] == verdict.message and value[1] == ("ok", verdict.message)
    small = {"a": ["b", ("c", 1)]}
    assert bound_value(small) is small  # nothing cut: the very value, not a copy
    import dataclasses

    assert len(dataclasses.replace(verdict, message=verdict.message + huge).message) <= MAX_TEXT_CHARS + 40


@pytest.mark.parametrize("char", UNPRINTABLE)
def test_every_text_helper_escapes_each_unprintable_character(char: str) -> None:
    text = f"a{char}b"
    for shown in (plain_text(text), short(text), markdown_text(text), markdown_code(text)):
        assert char not in shown and "a" in shown and "b" in shown
    assert plain_text("a\nb") == "a\\nb" and plain_text("\x1b[2J") == "\\x1b[2J"


def test_markdown_neutralizes_html_links_pipes_and_code_spans() -> None:
    assert markdown_text("<img src=x onerror=alert(1)> & co") == "&lt;img src=x onerror=alert(1)&gt; &amp; co"
    assert markdown_text("[click](http://evil) ![i](http://t)") == "\\[click\\](http://evil) !\\[i\\](http://t)"
    assert markdown_text("a|b\\|c") == "a\\|b\\\\\\|c"  # a value's own backslash cannot un-escape the pipe
    assert markdown_code("a`b``c") == "```a`b``c```"
    assert markdown_code("`x") == "`` `x ``"


def _hostile_document(hostile_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    _, document, _ = check(capsys, hostile_gguf, tmp_path, "SAFE-LICENSE", "ARCH-TYPE")
    return document


def test_diff_escapes_names_ids_notes_and_messages(hostile_gguf: Path, tmp_path: Path, capsys) -> None:
    base = _hostile_document(hostile_gguf, tmp_path, capsys)
    new = copy.deepcopy(base)
    base["model"]["name"] = "base`\x1b[2J"
    new["model"]["name"] = "new\nNEWLY FAILING MUST RULES: none"
    new["spec"]["version"] = "2\x1b]0;title\x07"
    for rule in base["rules"]:
        rule["status"] = "pass"  # so every rule of NEW newly fails, with its hostile message
    new["rules"][0]["id"] = "ID\u202e|x"
    diff = diff_documents(base, new)
    text, markdown = diff.render_text(), diff.render_markdown()
    for shown in (text, markdown):
        assert_no_raw_controls(shown)
        assert not [line for line in shown.splitlines() if line.startswith("NEWLY FAILING MUST RULES: none")]
    assert "<script>" not in markdown and "ID\\\\u202e\\|x" in markdown  # rendered: ID\u202e|x
    rule_table = markdown[markdown.index("| rule |"):].split("\n\n")[0]
    assert_table_intact(rule_table, 6)


def test_leaderboard_markdown_and_csv_escape_model_text(hostile_gguf: Path, tmp_path: Path, capsys) -> None:
    document = _hostile_document(hostile_gguf, tmp_path, capsys)
    other = copy.deepcopy(document)
    other["model"]["name"] = "=HYPERLINK(\"http://evil\")\n<b>x</b>"
    board = build_leaderboard([document, other])
    table = render_markdown_table(board)
    assert_no_raw_controls(table)
    assert "<b>" not in table and "&lt;b&gt;" in table
    columns = len(table.splitlines()[0].split(" | "))
    assert_table_intact(table, columns)
    text = csv_frame(board.frame).to_csv(index=False)
    assert_no_raw_controls(text.replace("\r\n", "\n"))
    rows = list(csv.DictReader(io.StringIO(text)))
    names = {row["model"] for row in rows}
    assert "'=HYPERLINK(\"http://evil\")\\n<b>x</b>" in names  # a spreadsheet shows it as text, not a formula
    assert set(board.frame["architecture"]) == {HOSTILE_ARCHITECTURE}  # the frame (and the page, escaped by jinja2) keep it exact
    assert {row["architecture"] for row in rows} == {"../../etc\\n<script>"}
    assert_no_raw_controls(render_table(document))
    assert "<script>" not in render_markdown(document)


def test_the_pytest_plugin_reports_and_a_crashed_run_s_document_are_escaped_and_bounded(tmp_path: Path) -> None:
    from conformance.executors import failed_document
    from conformance.pytest_plugin.outputs import error_text, failure_text, shortfall_text
    from conformance.results import RuleResult
    from conformance.spec import load_spec
    from conformance.verdict import Level, Status

    hostile = "MIT\x1b[31mRED\n--- fake line\u202e"
    result = RuleResult("R", "safety.license", Level.MUST, Status.FAIL, "x", "y", hostile, 0.0)
    for text in (failure_text(result, "evil\nmodel"), shortfall_text(result), error_text(result, "evil\nmodel")):
        assert "\x1b" not in text and "\u202e" not in text and "fake line" in text
        assert "--- fake line" not in text.splitlines()  # no line of its own
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text('id: s\nversion: "1"\nrules:\n  - {id: R, level: must, check: size.parameters, max: 1}\n')
    document = failed_document(str(tmp_path), load_spec(spec_file), "worker died: " + "x" * 10 * MAX_TEXT_CHARS)
    assert len(document["rules"][0]["message"]) < 2 * MAX_TEXT_CHARS
