"""Tokenizer sources against hostile and unusual files: transformers' own reading is the right answer.

A vocab.txt with CRLF line ends or trailing blanks is read as tokenizers' WordPiece reader reads it; a
sentencepiece model of millions of tiny fields is refused after a bounded number of them (no speed is
measured: the bound is a count).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conformance.candidate import Candidate
from conformance.probes.tokenizer_files import read_tokenizer
from conformance.probes.tokenizer_sources import MAX_OTHER_MODEL_FIELDS, MAX_PIECE_FIELDS, sentencepiece_pieces


def _minilm_vocab_folder(minilm_dir: Path, folder: Path, lines: list[str], newline: str) -> Path:
    folder.mkdir()
    for name in ("config.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, folder / name)
    (folder / "vocab.txt").write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return folder


@pytest.mark.parametrize(
    ("name", "newline", "edit"),
    [
        ("crlf", "\r\n", {}),
        ("trailing blanks", "\n", {100: "[UNK]  \t", 0: "[PAD]\u3000"}),
        ("a trailing control character is kept", "\n", {100: "[UNK]\x1c"}),
    ],
)
def test_vocab_txt_lines_read_as_transformers_reads_them(
    minilm_dir: Path, tmp_path: Path, name: str, newline: str, edit: dict
) -> None:
    from transformers import AutoTokenizer

    lines = (minilm_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    for index, text in edit.items():
        lines[index] = text
    folder = _minilm_vocab_folder(minilm_dir, tmp_path / "minilm", lines, newline)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    facts = read_tokenizer(Candidate(folder))
    assert facts.vocab_size == len(tokenizer), name
    for role in ("unk", "pad", "sep", "cls", "mask"):
        expected = getattr(tokenizer, f"{role}_token_id")
        found = facts.special_token_ids[role]
        assert (found if found is not None else facts.appended_ids.get(role)) == expected, (name, role)


def _varint(value: int) -> bytes:
    out = b""
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            return out + bytes([low])
        out += bytes([low | 0x80])


def _message(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_a_sentencepiece_model_of_many_other_fields_is_refused_after_the_bound() -> None:
    one_piece = _message(1, _message(1, b"a"))
    assert sentencepiece_pieces(b"\x10\x01" * MAX_OTHER_MODEL_FIELDS + one_piece) == ["a"]
    # 1,048,576 varint fields (2 MiB): a 256 MiB file of them would take minutes field by field.
    with pytest.raises(ValueError, match=f"more than {MAX_OTHER_MODEL_FIELDS} sentencepiece model fields"):
        sentencepiece_pieces(b"\x10\x01" * 1_048_576 + one_piece)


def test_a_piece_whose_text_follows_many_fields_is_refused_after_the_bound() -> None:
    text_last = _message(1, b"\x18\x01" * (MAX_PIECE_FIELDS - 1) + _message(1, b"b"))
    assert sentencepiece_pieces(text_last) == ["b"]
    with pytest.raises(ValueError, match=f"more than {MAX_PIECE_FIELDS} fields"):
        sentencepiece_pieces(_message(1, b"\x18\x01" * 100_000 + _message(1, b"b")))


def _special_result(folder: Path, write_spec) -> object:
    from conformance.runner import RunOptions, run
    from conformance.spec import load_spec

    rule = {"id": "SPECIAL", "level": "must", "check": "tokenizer.special_tokens", "required": ["eos"]}
    spec = load_spec(write_spec([rule]))
    return run(Candidate(folder), spec, RunOptions(log=lambda m: None, hash_weights="never")).rules[0]


@pytest.mark.parametrize("file_name", ["config.json", "generation_config.json"])
def test_an_eos_id_out_of_range_deep_in_a_long_list_is_found(gpt2_dir: Path, copy_model, write_spec, file_name: str) -> None:
    from transformers import AutoConfig, AutoTokenizer

    folder = copy_model(gpt2_dir)
    rows = AutoConfig.from_pretrained(folder).vocab_size
    tokens = len(AutoTokenizer.from_pretrained(folder))
    path = folder / file_name
    data = json.loads(path.read_text()) if path.exists() else {}
    eos = json.loads((folder / "config.json").read_text())["eos_token_id"]
    data["eos_token_id"] = [eos] * 99_999 + [max(rows, tokens) + 7]  # the last id is past the embedding
    path.write_text(json.dumps(data))
    result = _special_result(folder, write_spec)
    assert result.status == "fail", result.message
    assert f"eos {max(rows, tokens) + 7} ({file_name})" in result.message
    assert len(result.observed["token_ids"]) < 200  # the evidence stays bounded


def test_an_unreadable_generation_config_leaves_its_ids_unknown(gpt2_dir: Path, copy_model, write_spec) -> None:
    folder = copy_model(gpt2_dir)
    (folder / "generation_config.json").unlink(missing_ok=True)
    (folder / "generation_config.json").symlink_to("/etc/hostname")  # outside the folder: never read
    result = _special_result(folder, write_spec)
    assert result.status == "error"
    assert "generation_config.json" in result.message and "outside the model folder" in result.message

    config = json.loads((folder / "config.json").read_text())
    config["eos_token_id"] = 10**6
    (folder / "config.json").write_text(json.dumps(config))
    result = _special_result(folder, write_spec)
    assert result.status == "fail"
    assert "eos 1000000 (config.json)" in result.message and "generation_config.json's ids are unknown" in result.message


@pytest.mark.parametrize("where", ["added_tokens.json", "tokenizer_config.json", "tokenizer.json"])
def test_an_added_token_written_at_a_used_id_is_appended_as_transformers_does(
    minilm_dir: Path, tmp_path: Path, write_spec, where: str
) -> None:
    """'[Z]' written at id 5 (BERT's '[unused4]'): transformers appends it at 30522, one past the 30,522-row embedding."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path / "minilm"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json", "model.safetensors"):
        shutil.copy(minilm_dir / name, folder / name)
    entry = {"content": "[Z]", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": False}
    if where == "added_tokens.json":
        (folder / where).write_text(json.dumps({"[Z]": 5}))
    elif where == "tokenizer_config.json":
        config = json.loads((folder / where).read_text())
        config["added_tokens_decoder"] = {"5": entry}
        (folder / where).write_text(json.dumps(config))
    else:
        data = json.loads((minilm_dir / where).read_text())
        data["added_tokens"].append({"id": 5, **entry})
        (folder / where).write_text(json.dumps(data))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (len(tokenizer), tokenizer.convert_tokens_to_ids("[Z]")) == (30_523, 30_522)  # the right answer
    with pytest.raises(IndexError):
        AutoModel.from_pretrained(folder)(torch.tensor([tokenizer("[Z]")["input_ids"]]))

    from conformance.runner import RunOptions, run
    from conformance.spec import load_spec

    rule = {"id": "FITS", "level": "must", "check": "tokenizer.vocab_matches_embeddings"}
    found = run(Candidate(folder), load_spec(write_spec([rule])), RunOptions(log=lambda m: None, hash_weights="never")).rules[0]
    assert found.status == "fail", found.message
    assert found.observed["tokenizer_vocab_size"] == 30_523 and found.observed["embedding_rows"] == 30_522
    assert found.observed["vocab_sources"]["added tokens as a loader numbers them"] == 30_523


@pytest.mark.parametrize("with_tokenizer_json", [False, True])
@pytest.mark.parametrize("with_added_tokens_decoder", [False, True])
def test_legacy_files_count_only_where_transformers_reads_them(
    minilm_dir: Path, tmp_path: Path, with_tokenizer_json: bool, with_added_tokens_decoder: bool
) -> None:
    """special_tokens_map.json and added_tokens.json are read by transformers 5 only when tokenizer_config.json
    has no added_tokens_decoder: the names, ids and size are transformers' in all four layouts."""
    from transformers import AutoTokenizer

    folder = tmp_path / "minilm"
    folder.mkdir()
    for name in ("vocab.txt", "config.json", *(["tokenizer.json"] if with_tokenizer_json else [])):
        shutil.copy(minilm_dir / name, folder / name)
    config = json.loads((minilm_dir / "tokenizer_config.json").read_text())
    if with_added_tokens_decoder:
        config["added_tokens_decoder"] = {}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<NB>", "pad_token": "[MASK]"}))
    (folder / "added_tokens.json").write_text(json.dumps({"[Q]": 30522}))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    facts = read_tokenizer(Candidate(folder))
    assert facts.vocab_size == len(tokenizer)
    assert facts.special_tokens.get("bos") == tokenizer.bos_token
    assert facts.special_token_ids["pad"] == tokenizer.pad_token_id
    assert ("added_tokens.json" in facts.vocab_sources) is not with_added_tokens_decoder


def _minilm_folder(minilm_dir: Path, folder: Path, names: tuple[str, ...], config: dict | None = None) -> Path:
    folder.mkdir()
    for name in names:
        shutil.copy(minilm_dir / name, folder / name)
    if config is not None:
        (folder / "config.json").write_text(json.dumps({**json.loads((minilm_dir / "config.json").read_text()), **config}))
    return folder


def _rules(folder: Path, write_spec, rules: list[dict]) -> dict:
    from conformance.runner import RunOptions, run
    from conformance.spec import load_spec

    found = run(Candidate(folder), load_spec(write_spec(rules)), RunOptions(log=lambda m: None, hash_weights="never"))
    return {result.id: result for result in found.rules}


FITS = {"id": "FITS", "level": "must", "check": "tokenizer.vocab_matches_embeddings"}
LAYERS = {"id": "LAYERS", "level": "must", "check": "architecture.num_layers", "min": 1}


@pytest.mark.parametrize(
    ("name", "edit", "tail", "added", "right"),
    [
        ("two repeated lines", {1000: 2000, 1001: 2001}, "\n", {}, 30_520),
        ("two repeated lines and an added token", {1000: 2000, 1001: 2001}, "\n", {"[NEW]": 30522}, 30_521),
        ("three blank lines at the end", {}, "\n\n\n\n", {}, 30_523),
        ("a blank line in the middle and at the end", {50: ""}, "\n\n", {}, 30_522),
    ],
)
def test_vocab_txt_counts_distinct_lines_as_transformers_does(
    minilm_dir: Path, tmp_path: Path, name: str, edit: dict, tail: str, added: dict, right: int
) -> None:
    """tokenizers' WordPiece reader keeps a repeated line (and every blank one) once, at its last index."""
    from transformers import AutoTokenizer

    lines = (minilm_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    for index, source in edit.items():
        lines[index] = lines[source] if isinstance(source, int) else source
    folder = _minilm_folder(minilm_dir, tmp_path / "minilm", ("config.json", "tokenizer_config.json", "special_tokens_map.json"))
    (folder / "vocab.txt").write_bytes(("\n".join(lines) + tail).encode("utf-8"))
    if added:
        (folder / "added_tokens.json").write_text(json.dumps(added))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) == right, name  # the right answer
    facts = read_tokenizer(Candidate(folder))
    assert (facts.vocab_size, facts.vocab_error) == (len(tokenizer), None), name
    assert facts.largest_id == max(tokenizer.get_vocab().values()), name  # a repeated line's last index, kept
    for role in ("unk", "pad", "sep", "cls", "mask"):
        assert facts.special_token_ids[role] == getattr(tokenizer, f"{role}_token_id"), (name, role)


@pytest.mark.parametrize("where", ["added_tokens.json", "tokenizer_config.json", "tokenizer.json"])
def test_an_added_token_written_after_a_gap_is_numbered_as_transformers_does(
    minilm_dir: Path, tmp_path: Path, write_spec, where: str
) -> None:
    """'[NEW]' written at 40000 over BERT's 30,522 tokens is id 30522: a 30,523-row embedding fits it (not 40,001)."""
    from transformers import AutoTokenizer

    names = ("vocab.txt", *(["tokenizer.json"] if where == "tokenizer.json" else []))
    folder = _minilm_folder(minilm_dir, tmp_path / "minilm", names, config={"vocab_size": 30_523})
    config = json.loads((minilm_dir / "tokenizer_config.json").read_text())
    config["pad_token"] = "[NEW]"  # so the suite's id for it is compared too
    entry = {"content": "[NEW]", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    if where == "added_tokens.json":
        (folder / where).write_text(json.dumps({"[NEW]": 40_000}))
    elif where == "tokenizer_config.json":
        config["added_tokens_decoder"] = {"40000": entry}
    else:
        data = json.loads((minilm_dir / where).read_text())
        data["added_tokens"].append({"id": 40_000, **entry})
        (folder / where).write_text(json.dumps(data))
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (len(tokenizer), tokenizer.pad_token_id) == (30_523, 30_522)  # the right answer
    facts = read_tokenizer(Candidate(folder))
    assert (facts.vocab_size, facts.special_token_ids["pad"], facts.largest_id) == (30_523, 30_522, max(tokenizer.get_vocab().values()))
    found = _rules(folder, write_spec, [FITS])["FITS"]
    assert found.status == "pass", found.message
    assert found.observed["vocab_sources"]["added tokens as a loader numbers them"] == 30_523


def test_an_unreadable_added_tokens_json_transformers_does_not_read_leaves_the_size_known(
    minilm_dir: Path, tmp_path: Path, write_spec
) -> None:
    """With added_tokens_decoder in tokenizer_config.json, transformers 5 never opens added_tokens.json."""
    from transformers import AutoTokenizer

    folder = _minilm_folder(minilm_dir, tmp_path / "minilm", ("vocab.txt", "config.json", "model.safetensors"))
    config = json.loads((minilm_dir / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "added_tokens.json").write_text("{not json")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    facts = read_tokenizer(Candidate(folder))
    assert (facts.vocab_size, facts.vocab_error) == (len(tokenizer), None)
    assert any(error.startswith("added_tokens.json unreadable") for error in facts.errors)  # still reported
    found = _rules(folder, write_spec, [FITS])["FITS"]
    assert (found.status, found.observed["tokenizer_vocab_size"]) == ("pass", 30_522)


def test_the_tokenizer_files_read_share_one_byte_budget(minilm_dir: Path, tmp_path: Path, write_spec, monkeypatch) -> None:
    """A file over what is left of the budget is that file's error: only the rules that need it error."""
    from conformance.probes import tokenizer_sources

    folder = _minilm_folder(
        minilm_dir, tmp_path / "minilm", ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")
    )
    configs = sum((folder / name).stat().st_size for name in ("tokenizer_config.json", "special_tokens_map.json"))
    with_tokenizer_json = configs + (folder / "tokenizer.json").stat().st_size

    monkeypatch.setattr(tokenizer_sources, "MAX_TOKENIZER_TOTAL_BYTES", with_tokenizer_json + 100)
    facts = read_tokenizer(Candidate(folder))  # vocab.txt is over what is left; tokenizer.json is what a loader reads
    assert (facts.vocab_size, facts.vocab_error) == (30_522, None)
    assert [error for error in facts.errors if error.startswith("vocab.txt")] == [
        f"vocab.txt unreadable: vocab.txt is {(folder / 'vocab.txt').stat().st_size} bytes, over the 100 bytes left of the "
        f"{with_tokenizer_json + 100}-byte budget for a folder's tokenizer files"
    ]

    monkeypatch.setattr(tokenizer_sources, "MAX_TOKENIZER_TOTAL_BYTES", configs + 100)
    facts = read_tokenizer(Candidate(folder))  # tokenizer.json is over: the size is unknown, naming it
    assert facts.vocab_size is None and facts.vocab_error is not None and facts.vocab_error.startswith("tokenizer.json unreadable")
    assert facts.special_tokens["unk"] == "[UNK]"  # the configs within the budget were read
    found = _rules(folder, write_spec, [FITS, LAYERS])
    assert (found["FITS"].status, found["LAYERS"].status) == ("error", "pass")
    assert "tokenizer.json" in found["FITS"].message and "budget" in found["FITS"].message



def _bpe_folder(gpt2_dir: Path, folder: Path, edit) -> Path:
    shutil.copytree(gpt2_dir, folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    edit(data)
    (folder / "tokenizer.json").write_text(json.dumps(data))
    return folder


def test_a_bpe_added_token_written_after_a_gap_is_numbered_as_transformers_does(gpt2_dir: Path, tmp_path: Path, write_spec) -> None:
    """A tiny BPE tokenizer.json (512 tokens) whose added token is written at 9000: transformers gives it 512."""
    from transformers import AutoTokenizer

    entry = {"id": 9000, "content": "<new>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    folder = _bpe_folder(gpt2_dir, tmp_path / "bpe", lambda data: data["added_tokens"].append(entry))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (len(tokenizer), tokenizer.convert_tokens_to_ids("<new>")) == (513, 512)  # the right answer
    facts = read_tokenizer(Candidate(folder))
    assert (facts.vocab_size, facts.largest_id) == (513, 512)
    found = _rules(folder, write_spec, [FITS])["FITS"]
    assert found.status == "fail" and found.message.startswith("tokenizer has 513 ids") and "512 rows" in found.message


def test_a_bpe_model_vocabulary_with_a_gap_counts_as_transformers_does_and_its_far_id_still_fails(
    gpt2_dir: Path, tmp_path: Path, write_spec
) -> None:
    """Model ids are kept as written: 512 tokens but one at id 5000, which a 512-row embedding cannot look up."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    moved: list[str] = []

    def move(data: dict) -> None:
        vocab = data["model"]["vocab"]
        moved.append(next(text for text, index in vocab.items() if index == 300))
        vocab[moved[0]] = 5000

    folder = _bpe_folder(gpt2_dir, tmp_path / "bpe", move)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (len(tokenizer), tokenizer.convert_tokens_to_ids(moved[0])) == (512, 5000)  # the right answers
    with pytest.raises(IndexError):
        AutoModelForCausalLM.from_pretrained(folder)(torch.tensor([[5000]]))
    facts = read_tokenizer(Candidate(folder))
    assert (facts.vocab_size, facts.largest_id) == (512, 5000)
    found = _rules(folder, write_spec, [FITS])["FITS"]
    assert found.status == "fail", found.message
    assert found.observed["tokenizer_vocab_size"] == 512 and found.observed["tokenizer_largest_id"] == 5000
    assert "ids up to 5000" in found.message


def test_a_special_token_past_a_gap_is_in_the_tokenizer_but_not_the_embedding(gpt2_dir: Path, tmp_path: Path, write_spec) -> None:
    """'<pad>' moved to id 5000 in a 512-token BPE vocabulary: transformers' pad_token_id is 5000 though len is 512."""
    from transformers import AutoTokenizer

    def move(data: dict) -> None:
        data["model"]["vocab"]["<pad>"] = 5000
        next(token for token in data["added_tokens"] if token["content"] == "<pad>")["id"] = 5000

    folder = _bpe_folder(gpt2_dir, tmp_path / "bpe", move)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (len(tokenizer), tokenizer.pad_token_id) == (512, 5000)  # the right answers
    facts = read_tokenizer(Candidate(folder))
    assert (facts.vocab_size, facts.largest_id, facts.special_token_ids["pad"]) == (512, 5000, 5000)
    rule = {"id": "SPECIAL", "level": "must", "check": "tokenizer.special_tokens", "required": ["pad"]}
    found = _rules(folder, write_spec, [rule])["SPECIAL"]
    assert found.status == "fail"
    assert "pad 5000 (special_tokens_map.json) is outside the embedding's 512 rows" in found.message, found.message
    assert "tokenizer's" not in found.message
