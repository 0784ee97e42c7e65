"""The signature probe: the model folder verified against an OpenSSF model signature (`model-signing`).

A signature (a Sigstore bundle, by default `model.sig` in the folder, as `model_signing sign` writes it)
holds a signed in-toto statement listing every file of the model with its sha256. Verifying it checks the
signature with the trusted material the rule names (a public key, a certificate chain, or a keyless
Sigstore identity) and then hashes the folder and compares both lists. The library is imported inside
the probe only (it pulls in sigstore, tuf, requests and pyOpenSSL: ~0.6 s).

Nothing of the candidate is handed to the library unchecked: the signature is read bounded through the
candidate (a regular file inside the folder or its link roots) and copied into a private folder, as are
the spec's key and certificate files; every entry of the model folder is first opened without blocking
and must be a regular, dense file inside the folder or its link roots (a FIFO would block the library's
hasher, a link to a folder would be walked, a sparse file would be hashed for minutes). A verification
that fails is evidence (changed, added and missing file names; the library's message, bounded), cached
and judged like any other; only what stops verification from being attempted raises CheckError.
"""

from __future__ import annotations

import ast
import base64
import binascii
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .. import hub, safe_files
from ..candidate import Candidate
from ..errors import CheckError
from ..probe_registry import ProbeContext, probe
from .hashes import HashBudgetError, refuse_sparse

DEFAULT_SIGNATURE = "model.sig"  # the name `model_signing sign` is usually given, in the model folder
METHODS = ("public_key", "certificate", "sigstore")
SIGNATURE_MAX_BYTES = 16 * 2**20  # a bundle lists ~150 bytes per file: 100,000 files fit
TRUST_FILE_MAX_BYTES = 1 * 2**20  # a PEM key or certificate is a few KiB; a chain of ten is still small
MAX_ENTRIES = 100_000  # files and folders walked in the model folder before the check is refused
MAX_DEPTH = 64  # folder nesting walked
MESSAGE_MAX_CHARS = 2_000  # the library's message as kept in the evidence
NAMES_MAX = 200  # changed, added or missing file names kept in the evidence, each
NAME_MAX_CHARS = 512
INSTALL_HINT = "pip install 'model-conformance[signing]'"

MISMATCH_PREFIX = "Signature mismatch: "  # model-signing 1.x: this, then the repr of a list of strings
MISMATCH_MAX_CHARS = 8 * 2**20  # a longer message is read by the fallback patterns, not as a literal
BUNDLE_FIELDS: dict[str, type] = {"mediaType": str, "verificationMaterial": dict, "dsseEnvelope": dict}  # in every model-signing bundle

# Patterns for one item of the library's list (its repr undone). A changed file's name runs to the last
# "': Expected '": the library writes it once, after the name, and the digests that follow are sha256
# values, not text the candidate can choose; a name may itself hold quotes.
_CHANGED_ITEM = re.compile(r"Hash mismatch for '(.*)': Expected '", re.DOTALL)
_ADDED_ITEM = re.compile(r"Extra files found in model '.*?': (.*)", re.DOTALL)
_MISSING_ITEM = re.compile(r"Missing files in model '.*?': (.*)", re.DOTALL)
# Fallbacks for a message that is not such a list (another library version), backslash escapes undone first.
_CHANGED_TEXT = re.compile(r"Hash mismatch for '(.+?)': Expected '")
_ADDED_TEXT = re.compile(r"Extra files found in model '[^']*': ([^\"\]]+)")
_MISSING_TEXT = re.compile(r"Missing files in model '[^']*': ([^\"\]]+)")


@dataclass(frozen=True)
class SignatureEvidence:
    """The outcome of verifying a model folder against its signature.

    `verified`: the signature is valid for the trusted material and every file matches it. `method`: one
    of METHODS. `signature_file`: the signature's name in the folder. `changed_files`, `added_files`,
    `missing_files`: posix names relative to the folder (at most NAMES_MAX each) that differ from what was
    signed. `reason`: one line saying why verification failed ("" when verified). `library_message`: the
    library's own message, at most MESSAGE_MAX_CHARS characters.
    """

    verified: bool
    method: str
    signature_file: str
    changed_files: list[str] = field(default_factory=list)
    added_files: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    reason: str = ""
    library_message: str = ""


def read_trust_file(path: Path) -> bytes:
    """The bytes of a key or certificate file the spec names (links followed; at most TRUST_FILE_MAX_BYTES).

    Raises ValueError with a one-line reason: missing, not a regular file (a FIFO is refused without
    blocking), too large, or unreadable.
    """
    try:
        return safe_files.read_document_bytes(path, TRUST_FILE_MAX_BYTES)
    except FileNotFoundError:
        raise ValueError(f"{path} not found") from None
    except safe_files.UnsafeFileError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"{path} cannot be read: {exc.strerror}") from None


def trust_file_sha256(path: Path) -> str | None:
    """Hex sha256 of a key or certificate file, for the probe's parameters (so a new key re-verifies); None if unreadable.

    Called at planning; an unreadable file is reported by the probe, which reads it again.
    """
    try:
        return hashlib.sha256(read_trust_file(path)).hexdigest()
    except ValueError:
        return None


def check_signature_name(name: str) -> str:
    """The signature's name as a posix path relative to the folder; ValueError if absolute or climbing with '..'."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"signature {name!r} must name a file inside the model folder")
    return pure.as_posix()


def unsafe_entries(candidate: Candidate) -> list[str]:
    """Entries of the model folder the library must not be handed, with why (empty when all are safe).

    Walks every entry (`.git` and `__pycache__` included: the library walks them too), never following
    links. A file must open without blocking as a regular file inside the folder or its link roots and
    not be sparse; a link to a folder is refused (the library would walk it). Raises CheckError past
    MAX_ENTRIES entries or MAX_DEPTH levels.
    """
    problems: list[str] = []
    seen = 0
    for root, dirs, names in os.walk(candidate.path, followlinks=False):
        relative_root = Path(root).relative_to(candidate.path)
        if len(relative_root.parts) > MAX_DEPTH:
            raise CheckError(f"the model folder nests deeper than {MAX_DEPTH} levels; not verified")
        seen += len(dirs) + len(names)
        if seen > MAX_ENTRIES:
            raise CheckError(f"the model folder holds over {MAX_ENTRIES} entries; not verified")
        for name in dirs:
            if (Path(root) / name).is_symlink():
                problems.append(f"{(relative_root / name).as_posix()} (a link to a folder)")
        for name in names:
            relative = (relative_root / name).as_posix()
            try:
                with candidate.open_regular(relative) as handle:
                    refuse_sparse(handle, relative)
            except (ValueError, HashBudgetError) as exc:  # UnsafeFileError is a ValueError
                problems.append(str(exc))
            except OSError as exc:
                problems.append(f"{relative} cannot be opened: {exc.strerror}")
    return problems


def _serialization(bundle: Any) -> dict[str, Any] | None:
    """The signed statement's `predicate.serialization` (how the folder was hashed), or None if unreadable.

    Read before the signature is checked only to choose how to hash: the library compares the folder with
    the statement it verified, so a forged value here can only make verification fail.
    """
    try:
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"], validate=True)
        statement = safe_files.loads_json(payload, "signature payload")
        serialization = statement["predicate"]["serialization"]
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    return serialization if isinstance(serialization, dict) else None


def _hashing_config(hashing: Any, serialization: dict[str, Any] | None, signature_name: str) -> Any:
    """How to hash the folder: as it was signed, links allowed (every link was checked), the signature ignored.

    Links are allowed because a hub cache snapshot is made of links into `blobs/` while signatures are
    made on real folders; the manifests compare digests only. None when the statement does not say (the
    library then guesses, and its error is the evidence).
    """
    if serialization is None:
        return None
    try:
        method = serialization["method"]
        algorithm = str(serialization["hash_type"])
        ignored = [str(path) for path in serialization.get("ignore_paths", [])][:NAMES_MAX] + [signature_name]
        if method == "files":
            config = hashing.Config().use_file_serialization(hashing_algorithm=algorithm, allow_symlinks=True, ignore_paths=[])
        elif method == "shards":
            shard_bytes = int(serialization["shard_size"])
            config = hashing.Config().use_shard_serialization(hashing_algorithm=algorithm, shard_size=shard_bytes, allow_symlinks=True, ignore_paths=[])
        else:
            return None
        return config.set_ignored_paths(paths=ignored, ignore_git_paths=True).set_allow_symlinks(True)
    except (KeyError, TypeError, ValueError):
        return None


def _mismatch_items(message: str) -> list[str] | None:
    """The library's list of differences, as the strings it holds, or None when `message` is not such a list.

    model-signing 1.x raises `ValueError(f"Signature mismatch: {diffs}")`, the repr of a list of strings;
    reading it back as a Python literal undoes repr's escaping (a digest holding the byte 0x27 makes repr
    quote an item with ' and escape the quotes inside). Only literals are evaluated (`ast.literal_eval`).
    """
    if not message.startswith(MISMATCH_PREFIX) or len(message) > MISMATCH_MAX_CHARS:
        return None
    try:
        items = ast.literal_eval(message[len(MISMATCH_PREFIX) :])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    return items


def _bounded(names: list[str]) -> list[str]:
    return sorted({name[:NAME_MAX_CHARS] for name in names if name})[:NAMES_MAX]


def mismatched_files(message: str) -> tuple[list[str], list[str], list[str]]:
    """The changed, added and missing file names in the library's message (each sorted, at most NAMES_MAX).

    Read from the list of differences when the message is one (`_mismatch_items`); otherwise from the text
    with its backslash escapes undone, so either quote style repr chose is read.
    """
    changed: list[str] = []
    added: list[str] = []
    missing: list[str] = []
    items = _mismatch_items(message)
    if items is not None:
        for item in items:
            if match := _CHANGED_ITEM.match(item):
                changed.append(match.group(1))
            elif match := _ADDED_ITEM.match(item):
                added += match.group(1).split(", ")
            elif match := _MISSING_ITEM.match(item):
                missing += match.group(1).split(", ")
        return _bounded(changed), _bounded(added), _bounded(missing)
    text = re.sub(r"\\(.)", r"\1", message)
    changed = [match.group(1) for match in _CHANGED_TEXT.finditer(text)]
    for pattern, names in ((_ADDED_TEXT, added), (_MISSING_TEXT, missing)):
        for match in pattern.finditer(text):
            names += [name.strip() for name in match.group(1).split(", ")]
    return _bounded(changed), _bounded(added), _bounded(missing)


def not_a_bundle(bundle: Any) -> str | None:
    """Why the parsed signature file is not a model-signing bundle (a field missing or of the wrong kind), or None."""
    if not isinstance(bundle, dict):
        return f"a JSON {type(bundle).__name__}, not an object"
    for name, kind in BUNDLE_FIELDS.items():
        if not isinstance(bundle.get(name), kind):
            return f"no {name}" if name not in bundle else f"{name} is not a JSON {'string' if kind is str else 'object'}"
    return None


def outcome_of(exc: Exception, method: str, signature_name: str) -> SignatureEvidence:
    """The evidence of a failed verification: file names parsed out of the library's message, and why.

    Reads the messages of model-signing 1.x: `Signature mismatch: ["Hash mismatch for 'NAME': ...",
    "Extra files found in model 'M': A, B", "Missing files in model 'M': C"]` (see `mismatched_files`),
    `Key mismatch: ...`, cryptography's InvalidSignature (no message), and the bundle parser's KeyError
    or ValidationError (a file that is not a signature bundle).
    """
    message = str(exc)
    changed, added, missing = mismatched_files(message)
    kind = type(exc).__name__
    if changed or added or missing:
        parts = [f"{', '.join(changed)} changed since signing"] if changed else []
        parts += [f"{', '.join(added)} added"] if added else []
        parts += [f"{', '.join(missing)} missing"] if missing else []
        reason = "; ".join(parts)
    elif kind == "InvalidSignature":
        reason = "the signature does not verify with the given key (the signed statement or the signature was altered, or another key signed it)"
    elif message.startswith("Key mismatch"):
        reason = "the signature was made with another key than the one given"
    elif kind in ("KeyError", "ValidationError"):  # raised while the bundle is read: a field absent or malformed
        first = message.splitlines()[0][:300] if message else "a field is malformed"
        reason = f"{signature_name} is not a signature bundle ({f'no field {first}' if kind == 'KeyError' else first})"
    else:
        reason = f"not verified ({kind}: {message.splitlines()[0][:300] if message else 'no message'})"
    return SignatureEvidence(False, method, signature_name, changed, added, missing, reason, f"{kind}: {message}"[:MESSAGE_MAX_CHARS])


def _verifier(verifying: Any, params: dict[str, Any], folder: Path) -> Any:
    """The library's verifying config for the rule's method, trust files copied into `folder` first."""
    method = params["method"]
    if method == "sigstore":
        return verifying.Config().use_sigstore_verifier(identity=params["identity"], oidc_issuer=params["oidc_issuer"])
    copies: list[Path] = []
    for index, (path, planned) in enumerate(zip(params["trust_files"], params["trust_sha256"], strict=True)):
        try:
            data = read_trust_file(Path(path))
        except ValueError as exc:
            raise CheckError(f"{'public key' if method == 'public_key' else 'certificate'} {exc}") from None
        if planned is not None and hashlib.sha256(data).hexdigest() != planned:
            raise CheckError(f"{path} changed while the run was planned; run again")
        copy = folder / f"trust-{index}.pem"
        copy.write_bytes(data)
        copies.append(copy)
    if method == "public_key":
        return verifying.Config().use_elliptic_key_verifier(public_key=copies[0])
    return verifying.Config().use_certificate_verifier(certificate_chain=copies)


def verify_signature(candidate: Candidate, params: dict[str, Any]) -> SignatureEvidence:
    """Verify `candidate`'s folder against its signature as `params` say (see `signature_probe`).

    Raises CheckError when verification cannot be attempted: the library is absent, keyless Sigstore
    offline, a key or certificate unreadable, or the folder holds an entry that is not safe to hash.
    """
    method = params["method"]
    signature_name = check_signature_name(params.get("signature", DEFAULT_SIGNATURE))
    if method == "sigstore" and hub.is_offline():
        raise CheckError(
            "keyless Sigstore verification (identity, oidc_issuer) needs the network (Sigstore's trust root and "
            "transparency log), and this run is offline (HF_HUB_OFFLINE=0 allows it); offline, verify with "
            "`public_key` (or `certificate_chain`)"
        )
    try:
        from model_signing import hashing, verifying
    except ImportError as exc:
        raise CheckError(f"the signature rule needs the model-signing library ({INSTALL_HINT}): {exc}") from None
    try:
        signature = candidate.read_bytes(signature_name, SIGNATURE_MAX_BYTES)
    except ValueError as exc:
        missing = not os.path.lexists(candidate.path / signature_name)
        reason = f"no signature file {signature_name} in the model folder" if missing else f"the signature cannot be read: {exc}"
        return SignatureEvidence(False, method, signature_name, reason=reason)
    problems = unsafe_entries(candidate)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CheckError(f"the model folder holds entries that cannot be hashed safely, so the signature is not verified: {shown}")
    try:
        bundle = safe_files.loads_json(signature, signature_name)
    except ValueError as exc:
        return SignatureEvidence(False, method, signature_name, reason=f"{signature_name} is not a signature bundle: {str(exc)[:300]}")
    if (why := not_a_bundle(bundle)) is not None:
        return SignatureEvidence(False, method, signature_name, reason=f"{signature_name} is not a signature bundle: {why}")
    with tempfile.TemporaryDirectory(prefix="conformance-signature-") as private:
        folder = Path(private)
        copy = folder / "model.sig"
        copy.write_bytes(signature)
        config = _verifier(verifying, params, folder)
        hashing_config = _hashing_config(hashing, _serialization(bundle), signature_name)
        if hashing_config is not None:
            config = config.set_hashing_config(hashing_config)
        try:
            config.verify(candidate.path, copy)
        except Exception as exc:  # the library parses an untrusted bundle: any failure is a failed verification
            return outcome_of(exc, method, signature_name)
    return SignatureEvidence(True, method, signature_name)


@probe("signature", evidence=SignatureEvidence, cacheable=True, parameterized=True)
def signature_probe(context: ProbeContext) -> SignatureEvidence:
    """Verify the model folder against its signature (offline unless keyless Sigstore is asked for and allowed).

    `params`: `signature` (name in the folder), `method` (one of METHODS), for `public_key` and
    `certificate` the resolved `trust_files` and their planned `trust_sha256` (in the cache key: a new
    key re-verifies), for `sigstore` the `identity` and `oidc_issuer`. Raises CheckError as
    `verify_signature` does.
    """
    return verify_signature(context.candidate, context.params)
