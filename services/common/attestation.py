"""Batch attestations: one Ed25519 signature by a producer's service key covers a whole batch of records.

A service that writes an effect-bearing topic attests what it writes. For a batch of record values it
builds an RFC 9162 Merkle tree whose leaves are the values' RFC 8785 (JCS) bytes, and signs one
*statement* naming the topic, the signer, the root and the batch size::

    {"type": "smartcity.batch.v1", "topic": "city.readings.v1", "signer": "did:key:z6Mk...",
     "root": "<64 hex>", "size": 2000, "sig": "<base64url Ed25519 over the JCS bytes without sig>"}

Each record then carries its *attestation*: the statement plus its own leaf ``index`` and inclusion ``path``
(the audit path's hashes, concatenated, in base64url), in the Kafka header `HEADER` (compact JSON). A
consumer hashes the value, folds the path up to the root and checks the statement's signature; the
signature is checked once per batch and recognised afterwards (`signing.verify(..., remember=True)`), so a
record costs a JCS encoding and about log2(batch) SHA-256s, not an Ed25519 verification.

The statement binds the topic, so a record cannot be moved to another topic with its attestation. The
leaf is the JCS of the value (the value as a JSON document), so anyone holding the value, on the chain for
instance, can check it again. Producers write those very bytes as the Kafka value (`encode`), so the
consumer that hashes raw bytes and the auditor that canonicalises the parsed value agree.

A record may also carry several values, one per line (*a batch record*: the values' JCS bytes joined by
``\n``, which JCS never writes inside a value). Its statement is then about exactly its lines: ``size`` is the
number of lines, the header's ``index`` is 0 and its ``path`` empty, and the consumer rebuilds the tree over
the lines (`verify_record`). That is unambiguous: a single value of a larger batch has a path, and one
attested alone has size 1, whatever newlines it holds. Each line comes out with an attestation of its own (the
statement, its index and path), checkable alone like any single record's, so it can travel on with the value it
covers. A record of one line is a single record as above. Batch records spare the broker and the consumer their
per-record costs.

Why not one signature per record: an Ed25519 signature costs ~60 µs to make and to check, the platform's
largest per-record cost; a hash path costs ~5 µs. Why a Merkle tree and not a hash list: each record must be
checkable alone (a batch spans partitions and consumers), and a path is log-sized where a list is not.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from services.common import jcs, merkle, signing
from services.common.signing import Keypair

HEADER = "sc_attestation"
"""The Kafka header carrying a record's attestation (compact JSON)."""

STATEMENT_TYPE = "smartcity.batch.v1"
MAX_BATCH = 1 << 20
"""Most records one statement may cover (a path is then at most 20 hashes)."""

_STATEMENT_FIELDS = ("type", "topic", "signer", "root", "size", "sig")
VERIFIED_MAX = 100_000
"""Batch statements remembered as verified per process (least recently used ones are forgotten)."""

_verified: OrderedDict[tuple[Any, ...], None] = OrderedDict()
NODES_MAX = 1 << 18
"""Proven tree nodes remembered per process (`_included`); all are forgotten when it is full."""
_NODES: dict[tuple[bytes, int, int, int], bytes] = {}


class AttestationError(ValueError):
    """A record's attestation is missing, malformed, for another topic or record, or does not verify.

    `code` is a short stable label (a metric label and the start of the DLQ reason).
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def __reduce__(self) -> tuple[type[AttestationError], tuple[str, str]]:
        # Pickled by its own arguments: it comes back from worker processes.
        return type(self), (self.code, self.detail)


@dataclass(frozen=True)
class Attested:
    """A record value that verified: its signer and the statement it is covered by."""

    signer: str
    statement: Mapping[str, Any]


def encode(value: Any) -> bytes:
    """The JCS bytes of a record value: what a producer writes and what its attestation's leaf holds.
    Raises `signing.SignatureError` for a value JCS cannot write (an integer beyond 2**53, say)."""
    return signing.canonical_bytes(value)


def encode_with(value: Mapping[str, Any], encoded: Mapping[str, bytes]) -> bytes:
    """`encode` of an object value given some of its members' JCS bytes (`encoded`, by name): spliced in, not
    canonicalised again (`jcs.object_bytes`), as a batch record's line whose attested part was encoded for
    its statement. Raises `signing.SignatureError` as `encode` does."""
    try:
        return jcs.object_bytes({k: v for k, v in value.items() if k not in encoded}, encoded)
    except jcs.CanonicalizationError as exc:
        raise signing.SignatureError(str(exc)) from exc


def levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the RFC 9162 tree over `leaf_hashes`, leaves first, root last.

    Built bottom-up: adjacent nodes pair up and a last node without a partner rises unchanged, which
    gives the RFC's tree (split at the largest power of two below n) for any n.
    """
    if not leaf_hashes:
        raise ValueError("an empty batch has no tree")
    tree = [list(leaf_hashes)]
    while len(tree[-1]) > 1:
        below = tree[-1]
        above = [merkle.node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        tree.append(above)
    return tree


def paths(tree: list[list[bytes]]) -> list[list[bytes]]:
    """The inclusion path of every leaf of `tree` (see `levels`), leaf to root."""
    out = []
    for index in range(len(tree[0])):
        path, i = [], index
        for level in tree[:-1]:
            sibling = i ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            i //= 2
        out.append(path)
    return out


def attest(keypair: Keypair, topic: str, values: Sequence[bytes]) -> list[str]:
    """The attestation header (compact JSON) of each of `values` (their JCS bytes), in order: one
    signature for all of them. Raises ValueError for an empty or oversized batch."""
    if len(values) > MAX_BATCH:
        raise ValueError(f"a batch attests at most {MAX_BATCH} records")
    tree = levels([merkle.leaf_hash(value) for value in values])
    statement = _statement(keypair, topic, tree[-1][0], len(values))
    return [
        orjson.dumps({**statement, "index": index, "path": signing.b64url_encode(b"".join(path))}).decode()
        for index, path in enumerate(paths(tree))
    ]


def attest_record(
    keypair: Keypair, topic: str, lines: Sequence[bytes], covered: Sequence[bytes] | None = None
) -> str:
    """The attestation header of a batch record whose value is `lines` (JCS bytes) joined by newlines: one
    statement about exactly those lines, or, for a topic that attests a part of each value
    (`Topic.attested_member`), about their `covered` parts (JCS bytes, one a line: `verify_covered` checks
    them). Raises ValueError for no lines, too many, or a line holding a newline."""
    if not 0 < len(lines) <= MAX_BATCH:
        raise ValueError(f"a batch record holds 1 to {MAX_BATCH} lines")
    if any(b"\n" in line for line in lines):
        raise ValueError("a line of a batch record must not hold a newline")
    if covered is not None and len(covered) != len(lines):
        raise ValueError("a batch record covers one part a line")
    tree = levels([merkle.leaf_hash(leaf) for leaf in (lines if covered is None else covered)])
    return orjson.dumps(
        {**_statement(keypair, topic, tree[-1][0], len(lines)), "index": 0, "path": ""}
    ).decode()


def record_lines(value: bytes) -> list[bytes]:
    """The values a record carries: its lines (one, for a record of a single value)."""
    return value.split(b"\n")


def verify_record(header: str | bytes | None, topic: str, value: bytes) -> list[tuple[bytes, dict[str, Any]]]:
    """Check a record of one or more lines (see the module's note) and return each line with its own
    attestation (what `verify` accepts for that line alone). Whose signature it is remains the caller's
    question (the statement's ``signer``). Raises `AttestationError` for the whole record."""
    statement, lines, tree = _checked_record(header, topic, value)
    if tree is None:
        return [(value, statement)]
    return list(zip(lines, _own_attestations(statement, tree), strict=True))


def is_batch_record(header: str | bytes | None, value: bytes) -> bool:
    """Whether a record's value is several lines its attestation is about as a batch record (see the module),
    rather than one value; raises `AttestationError` for a header that does not parse."""
    lines = value.count(b"\n") + 1
    return lines > 1 and _about_lines(parse(header), lines)


def verify_covered(header: str | bytes | None, topic: str, covered: Sequence[bytes]) -> list[dict[str, Any]]:
    """Check a batch record (`is_batch_record`) of a topic that attests a part of each value, given those parts'
    JCS bytes (`covered`, one a line, in order), and return each part's own attestation (what `verify`
    accepts for that part alone). Raises `AttestationError` for the whole record."""
    statement = statement_of(parse(header))
    tree = _checked_batch(statement, topic, covered)
    return _own_attestations(statement, tree)


def lines_by(header: str | bytes | None, topic: str, value: bytes, signers: Collection[str]) -> list[bytes]:
    """The lines of a record (`verify_record`) attested by one of `signers` (did:keys), for a consumer that
    needs no line's own attestation. Raises `AttestationError` for the whole record (``untrusted-attestor``:
    another key's)."""
    statement, lines, _ = _checked_record(header, topic, value)
    if statement["signer"] not in signers:
        raise AttestationError("untrusted-attestor", f"{statement['signer']} may not attest {topic}")
    return lines


def _about_lines(attestation: Mapping[str, Any], lines: int) -> bool:
    """Whether `attestation` is a batch record's: a statement about exactly its `lines`, index 0, no path."""
    size = attestation.get("size")
    return (
        type(size) is int
        and size == lines
        and attestation.get("index") == 0
        and attestation.get("path") == ""
    )


def _checked_record(
    header: str | bytes | None, topic: str, value: bytes
) -> tuple[dict[str, Any], list[bytes], list[list[bytes]] | None]:
    """(the attestation, the record's lines, their tree) of a record that verifies; the tree is None for a
    record of one value (its attestation is the value's own)."""
    attestation = parse(header)
    lines = record_lines(value)
    if len(lines) == 1 or not _about_lines(attestation, len(lines)):
        # One value (a value's own newlines are not lines: its statement is not about them).
        verify(attestation, topic, value)
        return attestation, [value], None
    statement = statement_of(attestation)
    return statement, lines, _checked_batch(statement, topic, lines)


def _checked_batch(statement: dict[str, Any], topic: str, leaves: Sequence[bytes]) -> list[list[bytes]]:
    """The tree over `leaves` (a batch record's lines, or their covered parts) if `statement` is about exactly
    them and its signature verifies; raises `AttestationError`."""
    _check_about(statement, topic)
    if (
        statement["size"] != len(leaves)
        or len(leaves) > MAX_BATCH
        or not all(isinstance(statement[f], str) for f in ("root", "signer", "sig"))
    ):
        raise AttestationError(
            "bad-attestation", "not about these lines, too many lines, or root, signer or sig not strings"
        )
    tree = levels([merkle.leaf_hash(leaf) for leaf in leaves])
    if tree[-1][0].hex() != statement["root"]:
        raise AttestationError("not-attested", "the record's lines are not the ones attested: root mismatch")
    _check_statement(statement)
    return tree


def _own_attestations(statement: Mapping[str, Any], tree: list[list[bytes]]) -> list[dict[str, Any]]:
    """Each leaf's own attestation in a batch record's `tree`: the statement, its index and its path."""
    return [
        {**statement, "index": index, "path": signing.b64url_encode(b"".join(path))}
        for index, path in enumerate(paths(tree))
    ]


def _statement(keypair: Keypair, topic: str, root: bytes, size: int) -> dict[str, Any]:
    return keypair.sign(
        {"type": STATEMENT_TYPE, "topic": topic, "signer": keypair.did, "root": root.hex(), "size": size}
    )


def parse(header: str | bytes | None) -> dict[str, Any]:
    """The attestation object of a header's text; raises `AttestationError`."""
    if header is None or header in ("", b""):
        raise AttestationError("unattested", f"the record has no {HEADER} header")
    try:
        obj = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise AttestationError("bad-attestation", f"{HEADER} is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise AttestationError("bad-attestation", f"{HEADER} is not a JSON object")
    return obj


def statement_of(attestation: Mapping[str, Any]) -> dict[str, Any]:
    """The signed batch statement inside an attestation."""
    return {field: attestation.get(field) for field in _STATEMENT_FIELDS}


def verify(attestation: Mapping[str, Any], topic: str, value: bytes) -> Attested:
    """Check that `value` (its JCS bytes) is covered by `attestation`, a statement about `topic` signed by its
    signer. Who may sign is the caller's question (`Attested.signer`). Raises `AttestationError`."""
    statement = statement_of(attestation)
    index, path_text = attestation.get("index"), attestation.get("path")
    size, root = statement["size"], statement["root"]
    _check_about(statement, topic)
    if type(size) is not int or not 0 < size <= MAX_BATCH or type(index) is not int or not 0 <= index < size:
        raise AttestationError("bad-attestation", "size and index must be integers, 0 <= index < size")
    if not all(isinstance(v, str) for v in (root, path_text, statement["signer"], statement["sig"])):
        raise AttestationError("bad-attestation", "root, path, signer and sig must be strings")
    try:
        path_bytes = signing.b64url_decode(path_text)
        root_bytes = bytes.fromhex(root)
    except ValueError as exc:
        raise AttestationError("bad-attestation", f"root or path is not well encoded: {exc}") from exc
    if len(path_bytes) % merkle.HASH_SIZE or signing.b64url_encode(path_bytes) != path_text:
        raise AttestationError("bad-attestation", "path must be whole SHA-256 hashes in canonical base64url")
    path = [path_bytes[i : i + merkle.HASH_SIZE] for i in range(0, len(path_bytes), merkle.HASH_SIZE)]
    if len(path) != merkle.inclusion_length(index, size):
        raise AttestationError("not-attested", f"the path has {len(path)} hashes, not the tree's")
    _check_statement(statement)
    if not _included(merkle.leaf_hash(value), index, size, path, root_bytes):
        raise AttestationError("not-attested", "the record is not the one attested: root mismatch")
    return Attested(statement["signer"], statement)


def _included(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """Whether `path` leads leaf hash `leaf` at `index` to `root` (RFC 9162 2.1.3.2), in a tree whose signed
    statement verified.

    The nodes of a path that reached its root are remembered (`_NODES`): a later record of the same batch
    stops at the first node it computes that is one of them, since that node is already proven to be under
    the signed root. Neighbouring records share all but their lowest nodes, so a batch costs about two
    SHA-256s a record instead of log2(size). Nothing unproven is remembered, and a record can only stop
    early by computing a proven node's very hash at its very place: a second preimage of SHA-256.
    """
    sha256 = hashlib.sha256
    fn, sn, shifts, r = index, size - 1, 0, leaf
    computed: list[tuple[tuple[bytes, int, int, int], bytes]] = []
    for p in path:
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r).digest()
            while fn and not fn & 1:
                fn, sn, shifts = fn >> 1, sn >> 1, shifts + 1
        else:
            r = sha256(b"\x01" + r + p).digest()
        fn, sn, shifts = fn >> 1, sn >> 1, shifts + 1
        place = (root, size, shifts, fn)
        if _NODES.get(place) == r:
            break  # proven: so is every node below it on this path
        computed.append((place, r))
    else:
        if r != root:
            return False
    if len(_NODES) + len(computed) > NODES_MAX:
        _NODES.clear()
    _NODES.update(computed)
    return True


def _check_about(statement: Mapping[str, Any], topic: str) -> None:
    """A batch statement about records of `topic`; raises `AttestationError`."""
    if statement["type"] != STATEMENT_TYPE:
        raise AttestationError("bad-attestation", f"not a {STATEMENT_TYPE} statement")
    if statement["topic"] != topic:
        raise AttestationError("wrong-topic", f"attested for {statement['topic']!r}, found on {topic!r}")


def _check_statement(statement: Mapping[str, Any]) -> None:
    """Verify a batch statement's signature once: it recurs verbatim on each of its batch's records, so
    one that verified is recognised by its fields (all of them, the signature's text included) without a
    second Ed25519 check or canonicalisation. Nothing unverified is ever remembered."""
    memo = tuple(statement[field] for field in _STATEMENT_FIELDS)
    try:
        _verified.move_to_end(memo)  # one call, so a concurrent eviction cannot slip in between
        return
    except KeyError:
        pass
    try:
        signing.verify(statement, "signer")
    except signing.SignatureError as exc:
        raise AttestationError("bad-attestation-signature", f"the batch statement: {exc}") from exc
    _verified[memo] = None
    if len(_verified) > VERIFIED_MAX:
        _verified.popitem(last=False)


def verify_header(header: str | bytes | None, topic: str, value: bytes) -> Attested:
    """`verify` of a record's header text; raises `AttestationError`."""
    return verify(parse(header), topic, value)
