"""Signed reads (RFC 9421 HTTP Message Signatures, Ed25519, keyid = did:key): what is accepted and refused."""

from __future__ import annotations

import base64
import time

import pytest

from services.common.signed_reads import SignedReadError, may_read, sign_headers, verify_read
from services.common.signing import Keypair

KEY = Keypair.from_seed(bytes(range(32)))
URL = f"https://ledger.example/v1/accounts/{KEY.did}/transactions?limit=10&before=99"


def refused(method: str, url: str, headers: dict[str, str], **kwargs: float) -> str:
    with pytest.raises(SignedReadError) as caught:
        verify_read(method, url, headers, **kwargs)
    return caught.value.kind


def test_a_read_signed_by_its_key_names_the_signer() -> None:
    headers = sign_headers(KEY, "GET", URL)
    assert verify_read("GET", URL, headers) == KEY.did
    # Header names are case-insensitive, and the host is not covered (a proxy may rewrite it).
    lower = {name.lower(): value for name, value in headers.items()}
    assert verify_read("GET", URL.replace("ledger.example", "10.0.0.7:8103"), lower) == KEY.did


def test_the_signature_base_is_the_documented_one() -> None:
    """A client without the library (a browser's WebCrypto) builds the base by hand: the same bytes verify."""
    created = int(time.time())
    params = f'("@method" "@path" "@query");created={created};keyid="{KEY.did}";alg="ed25519"'
    base = (
        '"@method": GET\n'
        f'"@path": /v1/accounts/{KEY.did}/transactions\n'
        '"@query": ?limit=10&before=99\n'
        f'"@signature-params": {params}'
    )
    signature = base64.b64encode(KEY.sign_bytes(base.encode())).decode()
    headers = {"Signature-Input": f"sig={params}", "Signature": f"sig=:{signature}:"}
    assert verify_read("GET", URL, headers) == KEY.did
    assert sign_headers(KEY, "GET", URL, created=created) == headers


def test_a_missing_or_malformed_signature_is_refused_with_its_own_kind() -> None:
    assert refused("GET", URL, {}) == "signature-required"
    assert (
        refused("GET", URL, {"Signature-Input": "sig=(", "Signature": "sig=:AA==:"}) == "signature-malformed"
    )
    good = sign_headers(KEY, "GET", URL)
    only_path = good["Signature-Input"].replace(' "@query"', "")
    assert refused("GET", URL, {**good, "Signature-Input": only_path}) == "signature-malformed"
    not_a_did = good["Signature-Input"].replace(KEY.did, "alice")
    assert refused("GET", URL, {**good, "Signature-Input": not_a_did}) == "signature-malformed"
    no_created = good["Signature-Input"].replace(";created=", ";expires=")
    assert refused("GET", URL, {**good, "Signature-Input": no_created}) == "signature-malformed"
    rsa = good["Signature-Input"].replace('alg="ed25519"', 'alg="rsa-pss-sha512"')
    assert refused("GET", URL, {**good, "Signature-Input": rsa}) == "signature-malformed"
    two = {"Signature-Input": f"{good['Signature-Input']}, b={good['Signature-Input'][4:]}"}
    assert refused("GET", URL, {**good, **two}) == "signature-malformed"


def test_a_stale_or_early_signature_is_refused() -> None:
    headers = sign_headers(KEY, "GET", URL, created=int(time.time()) - 301)
    assert refused("GET", URL, headers) == "signature-stale"
    assert verify_read("GET", URL, headers, skew_s=600) == KEY.did
    early = sign_headers(KEY, "GET", URL, created=int(time.time()) + 301)
    assert refused("GET", URL, early) == "signature-stale"


def test_another_key_or_another_request_does_not_verify() -> None:
    headers = sign_headers(KEY, "GET", URL)
    other = Keypair.generate()
    claimed = {**headers, "Signature-Input": headers["Signature-Input"].replace(KEY.did, other.did)}
    assert refused("GET", URL, claimed) == "signature-invalid"
    assert refused("GET", URL.replace(KEY.did, other.did), headers) == "signature-invalid"
    assert refused("GET", URL.replace("limit=10", "limit=11"), headers) == "signature-invalid"
    assert refused("GET", URL.replace("?limit=10&before=99", ""), headers) == "signature-invalid"
    assert refused("DELETE", URL, headers) == "signature-invalid"
    # One character of the signature itself changed (position 5: past the "sig=:" label), nothing else.
    sig = headers["Signature"]
    flipped = sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]
    assert refused("GET", URL, {**headers, "Signature": flipped}) == "signature-invalid"


def test_who_may_read() -> None:
    auditor = Keypair.generate().did
    assert may_read(KEY.did, KEY.did, frozenset())
    assert may_read(auditor, KEY.did, {auditor})
    assert not may_read(auditor, KEY.did, frozenset())
