"""Signed models: `safety.signature` verifies a folder against an OpenSSF model signature, offline.

A copy of the zoo's tiny Llama is signed once per module with a fresh P-256 key (as `model_signing sign key`
does: the signature `model.sig` in the folder, left out of what it signs); each case copies the signed
folder, changes it, and runs a one-rule spec through the runner (no model load). Skipped, with the reason,
when the model-signing library (the `signing` extra) is not installed.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.candidate import Candidate
from conformance.errors import SpecError
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

pytest.importorskip("model_signing", reason="model-signing is not installed (pip install 'model-conformance[signing]')")

from cryptography import x509  # noqa: E402  (after the skip: model-signing brings cryptography)
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

RULE = {"id": "SAFE-SIGNED", "level": "must", "check": "safety.signature"}


def write_private_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def write_public_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def sign(folder: Path, configure: Callable[[Any], Any]) -> None:
    """Sign `folder` into `folder/model.sig`, the signature left out of what it signs (as the command line does)."""
    from model_signing import hashing, signing

    hashing_config = hashing.Config().set_ignored_paths(paths=["model.sig"], ignore_git_paths=True)
    configure(signing.Config()).set_hashing_config(hashing_config).sign(folder, folder / "model.sig")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, llama_dir: Path) -> dict[str, Path]:
    """A signed copy of the tiny Llama, its key pair, another public key and a spec beside the keys."""
    root = tmp_path_factory.mktemp("signed")
    model = root / "tiny-llama"
    shutil.copytree(llama_dir, model)
    key = ec.generate_private_key(ec.SECP256R1())
    private = write_private_key(key, root / "key.pem")
    sign(model, lambda config: config.use_elliptic_key_signer(private_key=private))
    write_public_key(key, root / "key.pub")
    write_public_key(ec.generate_private_key(ec.SECP256R1()), root / "other.pub")
    return {"root": root, "model": model}


def spec_file(folder: Path, name: str = "spec.yaml", **params: Any) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"id": "signed", "version": "1", "rules": [{**RULE, **params}]}), encoding="utf-8")
    return path


def judge(model: Path, spec: Path, cache_dir: Path | None = None) -> Any:
    result = run(Candidate(model), load_spec(spec), RunOptions(log=lambda m: None, hash_weights="never", cache_dir=cache_dir))
    return result.rules[0]


def flip_a_byte(folder: Path) -> None:
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))


VARIANTS: dict[str, tuple[Callable[[Path], Any], str, str]] = {
    "clean": (lambda folder: None, "pass", ""),
    "one byte changed": (flip_a_byte, "fail", "model.safetensors changed since signing"),
    "a file added": (lambda folder: (folder / "extra.bin").write_bytes(b"x"), "fail", "extra.bin added"),
    "a file removed": (lambda folder: (folder / "tokenizer.json").unlink(), "fail", "tokenizer.json missing"),
    "a quoted name added": (lambda folder: (folder / "it's \"q\".bin").write_bytes(b"x"), "fail", "it's \"q\".bin added"),
    "no signature": (lambda folder: (folder / "model.sig").unlink(), "fail", "no signature file model.sig"),
    "the signature a FIFO": (lambda folder: ((folder / "model.sig").unlink(), os.mkfifo(folder / "model.sig")), "fail", "'model.sig' is a FIFO"),
    "a .git folder": (lambda folder: ((folder / ".git").mkdir(), (folder / ".git" / "HEAD").write_text("ref")), "pass", ""),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_signature_verdicts(signed: dict[str, Path], tmp_path: Path, variant: str) -> None:
    change, status, message = VARIANTS[variant]
    model = tmp_path / "tiny-llama"
    shutil.copytree(signed["model"], model)
    change(model)
    found = judge(model, spec_file(signed["root"], public_key="key.pub"))
    assert (found.status, found.observed) == (status, "verified" if status == "pass" else "not verified"), found.message
    assert message in found.message


def test_a_changed_and_an_added_file_are_both_named(signed: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "tiny-llama"
    shutil.copytree(signed["model"], model)
    flip_a_byte(model)
    (model / "sub").mkdir()
    (model / "sub" / "notes.txt").write_text("added")
    result = run(Candidate(model), load_spec(spec_file(signed["root"], public_key="key.pub")), RunOptions(log=lambda m: None, hash_weights="never"))
    assert result.rules[0].message == "model.safetensors changed since signing; sub/notes.txt added"
    evidence = next(value for key, value in result.evidence.items() if key.startswith("signature"))
    assert evidence["changed_files"] == ["model.safetensors"] and evidence["added_files"] == ["sub/notes.txt"]
    assert "Hash mismatch for 'model.safetensors'" in evidence["library_message"] and len(evidence["library_message"]) <= 2000


def test_another_key_fails(signed: dict[str, Path]) -> None:
    found = judge(signed["model"], spec_file(signed["root"], "other.yaml", public_key="other.pub"))
    assert found.status == "fail" and "another key" in found.message


def test_an_altered_signature_fails(signed: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "tiny-llama"
    shutil.copytree(signed["model"], model)
    bundle = json.loads((model / "model.sig").read_text())
    raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-3] ^= 1
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    (model / "model.sig").write_text(json.dumps(bundle))
    found = judge(model, spec_file(signed["root"], public_key="key.pub"))
    assert found.status == "fail" and "the signature does not verify with the given key" in found.message
    (model / "model.sig").write_text("not json")
    found = judge(model, spec_file(signed["root"], public_key="key.pub"))
    assert found.status == "fail" and "model.sig is not a signature bundle" in found.message


def test_a_fifo_in_the_folder_never_blocks(signed: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "tiny-llama"
    shutil.copytree(signed["model"], model)
    os.mkfifo(model / "pipe.bin")
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(judge(model, spec_file(signed["root"], public_key="key.pub"))), daemon=True)
    worker.start()
    worker.join(120)  # a blocked open never returns; this bound is far above the check's own cost
    assert not worker.is_alive(), "verifying a folder with a FIFO blocked"
    assert outcome[0].status == "error" and "'pipe.bin' is a FIFO" in outcome[0].message


def test_a_link_leaving_the_folder_errors(signed: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "tiny-llama"
    shutil.copytree(signed["model"], model)
    os.symlink(signed["root"], model / "elsewhere")
    found = judge(model, spec_file(signed["root"], public_key="key.pub"))
    assert found.status == "error" and "elsewhere (a link to a folder)" in found.message
    assert found.message.startswith("the signature probe failed: ") and "signature[" not in found.message  # no internal key


def test_a_hub_snapshot_of_links_verifies(signed: dict[str, Path], tmp_path: Path) -> None:
    """A hub cache snapshot holds links into blobs/: the signature, made on the real folder, still verifies."""
    repo = tmp_path / "hub" / "models--acme--tiny-llama"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in sorted(signed["model"].iterdir()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.write_bytes(file.read_bytes())
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    assert judge(snapshot, spec_file(signed["root"], public_key="key.pub")).status == "pass"


def test_the_cache_serves_a_verdict_and_a_new_key_reverifies(signed: dict[str, Path], tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(signed["root"] / "key.pub", keys / "key.pub")
    spec = spec_file(keys, public_key="key.pub")
    assert judge(signed["model"], spec, tmp_path / "cache").status == "pass"
    assert judge(signed["model"], spec, tmp_path / "cache").status == "pass"
    shutil.copy(signed["root"] / "other.pub", keys / "key.pub")
    assert judge(signed["model"], spec, tmp_path / "cache").status == "fail"


def test_a_certificate_chain_verifies_offline(signed: dict[str, Path], tmp_path: Path) -> None:
    """Signed with a certificate issued by a private CA; the chain given by the rule establishes trust."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def certificate(subject: str, issuer: str, key: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False),
                critical=True,
            )
        )
        return builder.sign(signer, hashes.SHA256())

    ca = certificate("test ca", "test ca", ca_key, ca_key, True)
    leaf = certificate("model signer", "test ca", leaf_key, ca_key, False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    model = tmp_path / "tiny-llama"
    shutil.copytree(signed["model"], model)
    (model / "model.sig").unlink()
    private = write_private_key(leaf_key, tmp_path / "leaf.key")
    sign(model, lambda config: config.use_certificate_signer(private_key=private, signing_certificate=tmp_path / "leaf.pem", certificate_chain=[tmp_path / "ca.pem"]))
    assert judge(model, spec_file(tmp_path, certificate_chain=["ca.pem"])).status == "pass"
    flip_a_byte(model)
    found = judge(model, spec_file(tmp_path, certificate_chain=["ca.pem"]))
    assert found.status == "fail" and "model.safetensors changed since signing" in found.message


def test_keyless_sigstore_offline_names_the_offline_way(signed: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = spec_file(signed["root"], "keyless.yaml", identity="release@example.org", oidc_issuer="https://accounts.example.org")
    found = judge(signed["model"], spec)
    assert found.status == "error" and "offline" in found.message and "public_key" in found.message


@pytest.mark.parametrize(
    "params, wording",
    [
        ({}, "found none"),
        ({"public_key": "key.pub", "identity": "a@b.c", "oidc_issuer": "https://x"}, "found public_key, identity"),
        ({"identity": "a@b.c"}, "identity and oidc_issuer go together"),
        ({"public_key": "key.pub", "signature": "../model.sig"}, "inside the model folder"),
    ],
)
def test_the_spec_names_exactly_one_way_to_trust(signed: dict[str, Path], params: dict[str, Any], wording: str) -> None:
    with pytest.raises(SpecError, match=wording):
        load_spec(spec_file(signed["root"], "bad.yaml", **params))


def test_a_missing_key_file_errors_the_rule(signed: dict[str, Path]) -> None:
    found = judge(signed["model"], spec_file(signed["root"], "nokey.yaml", public_key="absent.pub"))
    assert found.status == "error" and "absent.pub not found" in found.message and "signature[" not in found.message


def test_without_the_library_the_rule_errors_naming_the_extra(signed: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "model_signing", None)  # `import model_signing` now raises ImportError
    found = judge(signed["model"], spec_file(signed["root"], public_key="key.pub"))
    assert found.status == "error" and "pip install 'model-conformance[signing]'" in found.message


def test_a_digest_holding_a_quote_still_names_the_changed_file() -> None:
    """repr quotes an item holding both quote kinds with ' and escapes its quotes: the name is still read."""
    from conformance.probes.signature import outcome_of

    expected, actual = b"\xcf}s\x96" + bytes(28), b"\xac\x18'\x0e" + bytes(28)  # the second holds the byte 0x27
    items = [
        "Extra files found in model 'it's': a, it's.bin",
        f"Hash mismatch for 'model.safetensors': Expected 'Digest(algorithm='sha256', digest_value={expected!r})', "
        f"Actual 'Digest(algorithm='sha256', digest_value={actual!r})'",
        "Hash mismatch for 'don't.bin': Expected 'Digest(algorithm='sha256', digest_value=b\"\")', Actual 'x'",
    ]
    message = f"Signature mismatch: {items}"
    assert "\\'model.safetensors\\'" in message  # repr escaped the quotes around the name
    for exc in (ValueError(message), ValueError(message.replace("Signature mismatch: [", "Mismatch: ("))):  # the list, then bare text
        outcome = outcome_of(exc, "public_key", "model.sig")
        assert outcome.changed_files == ["don't.bin", "model.safetensors"], outcome.reason
        assert outcome.reason.startswith("don't.bin, model.safetensors changed since signing")


@pytest.mark.parametrize("junk", ["{}", "[]", '{"verificationMaterial": 5}', '{"mediaType": "x", "verificationMaterial": {}, "dsseEnvelope": {}}'])
def test_a_junk_signature_is_not_a_bundle(signed: dict[str, Path], tmp_path: Path, junk: str) -> None:
    model = tmp_path / "tiny-llama"
    shutil.copytree(signed["model"], model)
    (model / "model.sig").write_text(junk)
    found = judge(model, spec_file(signed["root"], public_key="key.pub"))
    assert found.status == "fail" and "model.sig is not a signature bundle" in found.message, found.message
    assert "KeyError" not in found.message and "TypeError" not in found.message
