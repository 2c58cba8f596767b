"""Batch attestations (pure): one signature over a Merkle tree of a batch, each record checkable alone."""

from __future__ import annotations

import json

import pytest

from services.common import attestation, merkle, signing
from services.common.attestation import AttestationError
from services.common.signing import Keypair
from tests.support.factories import reencoded_signatures, signed_reward

TOPIC = "city.readings.v1"


def _values(n: int) -> list[bytes]:
    return [attestation.encode({"n": i, "text": f"record {i}"}) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 17, 100, 1000])
def test_the_tree_and_paths_are_rfc_9162s(n: int) -> None:
    hashes = [merkle.leaf_hash(v) for v in _values(n)]
    tree = attestation.levels(hashes)
    assert tree[-1][0] == merkle.root_from_leaf_hashes(hashes)
    for index, path in enumerate(attestation.paths(tree)):
        merkle.verify_inclusion(hashes[index], index, n, path, tree[-1][0])


def test_every_record_of_a_batch_verifies_alone_under_one_signature() -> None:
    key = Keypair.generate()
    values = _values(37)
    headers = attestation.attest(key, TOPIC, values)
    statements = {json.dumps(attestation.statement_of(json.loads(h)), sort_keys=True) for h in headers}
    assert len(statements) == 1  # one signed statement for the batch
    for header, value in zip(headers, values, strict=True):
        attested = attestation.verify_header(header, TOPIC, value)
        assert attested.signer == key.did


def _attested(n: int = 4) -> tuple[Keypair, list[bytes], list[dict]]:
    key = Keypair.generate()
    values = _values(n)
    return key, values, [json.loads(h) for h in attestation.attest(key, TOPIC, values)]


def _code(obj: object, topic: str, value: bytes) -> str:
    with pytest.raises(AttestationError) as caught:
        attestation.verify_header(obj if obj is None else json.dumps(obj), topic, value)
    return caught.value.code


def test_what_is_refused_and_why() -> None:
    key, values, atts = _attested()
    assert _code(None, TOPIC, values[0]) == "unattested"
    assert _code(atts[0], TOPIC, values[1]) == "not-attested"  # another record's attestation
    assert _code(atts[0], TOPIC, values[0] + b" ") == "not-attested"  # the value changed
    assert _code(atts[0], "city.rewards.v1", values[0]) == "wrong-topic"
    assert _code({**atts[0], "index": 1}, TOPIC, values[0]) == "not-attested"
    assert _code({**atts[0], "index": 4}, TOPIC, values[0]) == "bad-attestation"
    assert _code({**atts[0], "size": 4.0}, TOPIC, values[0]) == "bad-attestation"
    assert _code({**atts[0], "path": atts[0]["path"][:-3]}, TOPIC, values[0]) == "bad-attestation"
    # Someone else's key cannot vouch for a batch in the signer's name...
    forged = {
        **Keypair.generate().sign(attestation.statement_of(atts[0])),
        "index": 0,
        "path": atts[0]["path"],
    }
    assert _code(forged, TOPIC, values[0]) == "bad-attestation-signature"
    # ...and signing in one's own name shows one's own key: the caller decides whether it holds the role.
    mallory = Keypair.generate()
    own = json.loads(attestation.attest(mallory, TOPIC, [values[0]])[0])
    assert attestation.verify_header(json.dumps(own), TOPIC, values[0]).signer == mallory.did != key.did
    # A statement's signature written another way is refused.
    other_text = {**atts[0], "sig": reencoded_signatures(atts[0]["sig"])[0]}
    assert _code(other_text, TOPIC, values[0]) == "bad-attestation-signature"
    assert _code("not json", TOPIC, values[0]) == "bad-attestation"
    for field in ("signer", "sig", "root", "path"):
        assert _code({**atts[0], field: ["not", "a", "string"]}, TOPIC, values[0]) == "bad-attestation"


def test_the_statement_is_checked_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    _key, values, atts = _attested(8)
    calls = []
    real = signing.verify_bytes
    monkeypatch.setattr(signing, "verify_bytes", lambda *a: calls.append(1) or real(*a))
    for att, value in zip(atts, values, strict=True):
        attestation.verify(att, TOPIC, value)
    assert len(calls) == 1


def test_encode_is_jcs() -> None:
    value = {"b": 1, "a": [1.5, "é"], "c": {"z": None, "y": True}}
    assert attestation.encode(value) == signing.canonical_bytes(value)


def test_a_line_encoded_with_its_attested_part_is_the_lines_jcs() -> None:
    reward = signed_reward(Keypair.generate())
    value = {"reward": reward["reward"], "disclosure": reward["disclosure"], "note": "café", "n": 14.0}
    part = attestation.encode(value["reward"])
    assert attestation.encode_with(value, {"reward": part}) == attestation.encode(value)


def test_a_line_whose_other_members_have_no_canonical_form_is_refused() -> None:
    with pytest.raises(signing.SignatureError):
        attestation.encode_with({"reward": {}, "big": 2**53}, {"reward": b"{}"})


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 31, 64, 100])
def test_proven_nodes_let_neighbours_stop_early_and_never_let_a_stranger_in(size: int) -> None:
    key = Keypair.generate()
    values = [f"record {i} of {size}".encode() for i in range(size)]
    headers = [json.loads(h) for h in attestation.attest(key, "t", values)]
    attestation._NODES.clear()
    hashed = 0
    real = attestation.hashlib.sha256

    def counting(data: bytes = b"") -> object:
        nonlocal hashed
        hashed += 1
        return real(data)

    attestation.hashlib.sha256 = counting  # type: ignore[assignment]
    try:
        for value, header in zip(values, headers, strict=True):
            assert attestation.verify(header, "t", value).signer == key.did
    finally:
        attestation.hashlib.sha256 = real  # type: ignore[assignment]
    # About a leaf hash and two nodes per record (and the statement's own hashing), where a full path per
    # record would take log2(size) nodes each.
    assert hashed <= 3 * size + 8
    # With every node of the batch proven, a changed value or another index still fails.
    for index, header in enumerate(headers):
        with pytest.raises(AttestationError, match="not the one attested"):
            attestation.verify(header, "t", values[index] + b"!")
        if size > 1:
            moved = {**header, "index": (index + 1) % size}
            with pytest.raises(AttestationError):
                attestation.verify(moved, "t", values[index])


# --- batch records: several values, one a line, under one statement ----------------------------------


@pytest.mark.parametrize("n", [2, 3, 7, 64])
def test_a_batch_records_lines_come_back_each_with_an_attestation_that_verifies_alone(n: int) -> None:
    key = Keypair.generate()
    lines = _values(n)
    header = attestation.attest_record(key, TOPIC, lines)
    verified = attestation.verify_record(header, TOPIC, b"\n".join(lines))
    assert [line for line, _ in verified] == lines
    for index, (line, own) in enumerate(verified):
        assert own["index"] == index and own["size"] == n
        assert attestation.verify(own, TOPIC, line).signer == key.did  # as a single record's would


def test_a_record_of_one_line_is_a_single_record_and_a_values_own_newlines_are_not_lines() -> None:
    key = Keypair.generate()
    [one] = _values(1)
    header = attestation.attest_record(key, TOPIC, [one])
    assert header == attestation.attest(key, TOPIC, [one])[0]  # byte for byte (Ed25519 is deterministic)
    assert attestation.verify_record(header, TOPIC, one) == [(one, json.loads(header))]
    pretty = json.dumps({"a": 1, "b": [2, 3]}, indent=2).encode()  # attested alone, newlines and all
    [header] = attestation.attest(key, TOPIC, [pretty])
    assert attestation.verify_record(header, TOPIC, pretty) == [(pretty, json.loads(header))]
    # One value of a larger batch keeps its own path even if it spans lines.
    values = [pretty, *_values(2)]
    headers = attestation.attest(key, TOPIC, values)
    assert [line for line, _ in attestation.verify_record(headers[0], TOPIC, pretty)] == [pretty]


def test_a_tampered_reordered_shortened_or_moved_batch_record_is_refused_whole() -> None:
    key = Keypair.generate()
    lines = _values(5)
    header = attestation.attest_record(key, TOPIC, lines)
    tampered = [*lines[:2], attestation.encode({"n": 2, "text": "forged"}), *lines[3:]]
    cases = {
        "tampered": (header, TOPIC, b"\n".join(tampered)),
        "reordered": (header, TOPIC, b"\n".join([lines[1], lines[0], *lines[2:]])),
        "shortened": (header, TOPIC, b"\n".join(lines[:4])),
        "lengthened": (header, TOPIC, b"\n".join([*lines, lines[0]])),
        "moved": (header, "city.rewards.v1", b"\n".join(lines)),
        "resigned by another key": (
            json.dumps({**json.loads(header), "signer": Keypair.generate().did}),
            TOPIC,
            b"\n".join(lines),
        ),
        "unattested": (None, TOPIC, b"\n".join(lines)),
    }
    for case, (text, topic, value) in cases.items():
        with pytest.raises(AttestationError) as caught:
            attestation.verify_record(text, topic, value)
        assert caught.value.code in {
            "not-attested",
            "wrong-topic",
            "bad-attestation-signature",
            "unattested",
        }, case
    # The honest record beside them still verifies.
    assert len(attestation.verify_record(header, TOPIC, b"\n".join(lines))) == 5


def test_a_batch_record_refuses_a_line_that_holds_a_newline_and_an_empty_batch() -> None:
    key = Keypair.generate()
    with pytest.raises(ValueError):
        attestation.attest_record(key, TOPIC, [b'{"a":1}', b'{"b":\n2}'])
    with pytest.raises(ValueError):
        attestation.attest_record(key, TOPIC, [])
