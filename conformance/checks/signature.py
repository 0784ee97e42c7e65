"""safety.signature: the model folder matches its OpenSSF model signature (`model-signing`), offline by key or certificate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import CheckError
from ..evidence import Evidence
from ..planning import rule_evidence, rule_probe_key
from ..probes.signature import DEFAULT_SIGNATURE, SignatureEvidence, check_signature_name, trust_file_sha256
from ..registry import check
from ..rule import Rule
from ..verdict import Verdict

TRUST_KEYS = ("public_key", "certificate_chain", "identity")  # `identity` goes with `oidc_issuer`


def _spec_folder(rule: Rule) -> Path:
    """Where the rule's relative paths start: its spec file's folder (as `quality.regression`'s baseline)."""
    return Path(rule.source).resolve().parent if rule.source else Path.cwd()


def signature_request_params(rule: Rule) -> dict[str, Any]:
    """The signature probe's parameters: the signature's name, the method, and the trusted material.

    Key and certificate paths are resolved against the spec's folder and hashed (bounded, links followed,
    a FIFO refused), so a new key re-verifies instead of reading the cache; an unreadable file gets no
    digest and the probe reports why. Raises ValueError (reported at spec load with the rule's file and
    line) unless exactly one of `public_key`, `certificate_chain` or `identity` + `oidc_issuer` is given,
    or when `signature` leaves the model folder.
    """
    params = rule.params
    signature = check_signature_name(params.get("signature", DEFAULT_SIGNATURE))
    given = [key for key in TRUST_KEYS if key in params]
    if len(given) != 1:
        raise ValueError(
            "give exactly one of public_key (a PEM public key file), certificate_chain (PEM certificate files) "
            f"or identity + oidc_issuer (keyless Sigstore, online); found {', '.join(given) or 'none'}"
        )
    if ("identity" in params) != ("oidc_issuer" in params):
        raise ValueError("identity and oidc_issuer go together (keyless Sigstore: who signed, and who vouched for them)")
    if given == ["identity"]:
        return {"signature": signature, "method": "sigstore", "identity": params["identity"], "oidc_issuer": params["oidc_issuer"]}
    names = [params["public_key"]] if given == ["public_key"] else list(params["certificate_chain"])
    paths = [(_spec_folder(rule) / name).resolve() for name in names]
    return {
        "signature": signature,
        "method": "public_key" if given == ["public_key"] else "certificate",
        "trust_files": [str(path) for path in paths],
        "trust_sha256": [trust_file_sha256(path) for path in paths],
    }


@check(
    "safety.signature",
    summary="the model folder matches its OpenSSF model signature (model-signing), verified offline by public key or certificate chain",
    probes=("signature",),
    params={
        "signature": {"type": "string", "minLength": 1, "description": f"the signature file in the model folder (default {DEFAULT_SIGNATURE})"},
        "public_key": {"type": "string", "minLength": 1, "description": "the signer's PEM public key (elliptic curve), relative to the spec file"},
        "certificate_chain": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "description": "PEM certificates that establish trust in the signing certificate, relative to the spec file",
        },
        "identity": {"type": "string", "minLength": 1, "description": "keyless Sigstore: the signer's identity (online only)"},
        "oidc_issuer": {"type": "string", "minLength": 1, "description": "keyless Sigstore: the OIDC issuer that vouched for the identity"},
    },
    comparisons=(),
    probe_params=signature_request_params,
)
def signature(evidence: Evidence, rule: Rule) -> Verdict:
    """Pass when the signature verifies with the rule's key, certificates or identity and every file matches it.

    Fails naming the files changed, added or missing since signing, a signature made with another key,
    an invalid signature, or no signature file. Observed: "verified", or the reason. Raises CheckError
    when verification could not be attempted (library absent, keyless Sigstore offline, an unreadable key,
    an entry of the folder that is not safe to hash).
    """
    try:
        outcome = rule_evidence(evidence, rule, "signature", SignatureEvidence)
    except CheckError as exc:  # the message starts with the probe's evidence key; users know "the signature"
        key = evidence.rule_keys.get("signature") or rule_probe_key(rule, "signature")
        message = str(exc)
        raise CheckError("the signature" + message[len(key) :] if message.startswith(key) else message) from None
    expected = f"{outcome.signature_file} verifies ({outcome.method.replace('_', ' ')})"
    if outcome.verified:
        return Verdict("pass", "verified", expected)
    return Verdict("fail", "not verified", expected, outcome.reason)
