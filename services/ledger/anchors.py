"""Anchors on the chain: the Merkle root of a batch of another service's signed records, signed by a key
holding the role for it, so that each record can later be proven to have existed by then without the record
itself (personal data) ever being on the public chain. The rules, as pure functions (the route settles them,
`services.ledger.api.anchors`).

The identity service anchors its signed consent receipts (role ``consent-anchor``): a citizen holding a
receipt, its inclusion path in the anchored batch and the anchor's transaction id checks it against the
ledger's signed checkpoint (`verify_receipt`), which proves what they agreed to and when. An anchor record
moves no money::

    {"tx_id", "type": "anchor", "postings": [], "anchor": {"anchorer", "kind", "root", "size", "issued_at",
     "sig"}, "timestamp"}

``tx_id = sha256_hex("smartcity/ledger/anchor/<object id of the signed anchor>")``: the same anchor sent again
is the same record (its original receipt).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from services.common import merkle, schemas, signing
from services.common.roles import Role
from services.ledger import chain
from services.ledger.transactions import RejectedError, Transaction, build_transaction, derive_tx_id

ANCHOR = "anchor"
SCHEMA = "anchors.v1.json"
ROLES = {"consent-receipts": Role.CONSENT_ANCHOR}
"""The role a key must hold to anchor each kind of record."""


def anchor_tx_id(signed: Mapping[str, Any]) -> str:
    return derive_tx_id(ANCHOR, signing.object_id(signed))


def check_anchor(signed: Any) -> tuple[str, Role]:
    """Check an anchor's shape and its anchorer's signature; the (key, role) its authorisation rests on.
    Raises `RejectedError`."""
    try:
        schemas.validate_against(SCHEMA, signed)
    except schemas.SchemaError as exc:
        raise RejectedError("malformed", str(exc)) from exc
    try:
        signing.verify(signed, "anchorer")
    except signing.SignatureError as exc:
        raise RejectedError("bad-signature", f"not signed by its anchorer: {exc}") from exc
    return signed["anchorer"], ROLES[signed["kind"]]


def anchor_transaction(signed: Mapping[str, Any], timestamp: str) -> Transaction:
    """The chain record of a checked anchor (no postings), resting on its anchorer's role."""
    requires = check_anchor(signed)
    return build_transaction(
        ANCHOR, anchor_tx_id(signed), [], timestamp, requires=(requires,), anchor=dict(signed)
    )


def batch_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 9162 root of a batch of leaves (each a record's JCS bytes)."""
    return merkle.root_from_leaf_hashes([merkle.leaf_hash(leaf) for leaf in leaves])


def batch_paths(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Each leaf's RFC 9162 inclusion path in the batch."""
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]

    def subtree(start: int, end: int) -> bytes:
        return merkle.root_from_leaf_hashes(hashes[start:end])

    return [merkle.inclusion_proof(index, len(hashes), subtree) for index in range(len(hashes))]


def verify_receipt(
    receipt: Mapping[str, Any],
    leaf_index: int,
    path: Sequence[bytes],
    anchor_record: bytes,
    inclusion: Mapping[str, Any],
    header: Mapping[str, Any],
    ledger_key: str,
    issuer: str,
) -> Mapping[str, Any]:
    """Check a signed consent receipt against the chain, with nothing but what a citizen can hold and fetch:
    the receipt signed by `issuer` (identity's key), its `leaf_index` and `path` in the anchored batch, the
    anchor's chain record (its leaf bytes, ``GET /v1/transactions/{tx_id}``), that record's inclusion proof
    (``GET /v1/transactions/{tx_id}/proof``) and the block header it is proven against, signed by
    `ledger_key`. Returns the anchor; raises `ValueError` (a `merkle.ProofError`, `signing.SignatureError`,
    `chain.ChainError`) naming what does not hold."""
    signing.verify(receipt, "issuer")
    if receipt["issuer"] != issuer:
        raise ValueError(f"the receipt is issued by {receipt['issuer']}, not {issuer}")
    record = json.loads(anchor_record)
    if record.get("type") != ANCHOR:
        raise ValueError("the transaction is not an anchor")
    anchor = record["anchor"]
    signing.verify(anchor, "anchorer")
    if anchor["anchorer"] != issuer:
        raise ValueError(f"the anchor is signed by {anchor['anchorer']}, not {issuer}")
    receipt_leaf = merkle.leaf_hash(signing.canonical_bytes(dict(receipt)))
    merkle.verify_inclusion(receipt_leaf, leaf_index, anchor["size"], path, bytes.fromhex(anchor["root"]))
    block = chain.BlockHeader.from_json(dict(header))
    chain.verify_header(block, ledger_key)
    if inclusion["tree_size"] != block.tree_size:
        raise ValueError("the inclusion proof is not against this checkpoint")
    merkle.verify_inclusion(
        merkle.leaf_hash(anchor_record),
        inclusion["leaf_index"],
        block.tree_size,
        [bytes.fromhex(h) for h in inclusion["audit_path"]],
        bytes.fromhex(block.root_hash),
    )
    return anchor
