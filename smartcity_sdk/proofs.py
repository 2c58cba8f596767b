"""Checking the ledger's word with nothing but its public key: a checkpoint's signature, a transaction's
inclusion in the tree the checkpoint signs, and that a later checkpoint extends an earlier one.

A checkpoint (signed block header) is ``{height, previous_hash, tree_size, root_hash, timestamp, public_key,
signature}``; ``signature`` is the ledger key's Ed25519 signature over the JCS bytes of the header without
``signature`` (in its one canonical text), and ``root_hash`` the RFC 9162 root of the first ``tree_size``
leaves. A leaf is the JCS bytes of a transaction record, which ``GET /v1/transactions/{tx_id}`` serves byte for
byte. Every failure raises `VerificationError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from smartcity_sdk import merkle
from smartcity_sdk.jcs import CanonicalizationError, canonical_bytes
from smartcity_sdk.signing import SignatureError, verify

SIGNATURE_FIELD = "signature"
SIGNER_FIELD = "public_key"
HEADER_FIELDS = (
    "height",
    "previous_hash",
    "tree_size",
    "root_hash",
    "timestamp",
    SIGNER_FIELD,
    SIGNATURE_FIELD,
)
"""What a block header holds, and so what its signature covers (but itself)."""


class VerificationError(ValueError):
    """A checkpoint, record or proof that does not hold."""


def verify_checkpoint(checkpoint: Mapping[str, Any], ledger_key: str | None = None) -> None:
    """Check that `checkpoint` (``GET /v1/checkpoint``, or a block's header, ``GET /v1/blocks/{height}``) is
    signed by the key it names and, given `ledger_key` (the did:key you trust as the ledger's, learnt apart from
    the ledger's answers), that this is that key. Without `ledger_key` only its integrity is shown: anyone can
    sign a header with a key of their own."""
    if ledger_key is not None and checkpoint.get(SIGNER_FIELD) != ledger_key:
        raise VerificationError(
            f"checkpoint signed by {checkpoint.get(SIGNER_FIELD)}, not by the ledger's key {ledger_key}"
        )
    missing = [field for field in HEADER_FIELDS if field not in checkpoint]
    if missing:
        raise VerificationError(f"not a block header: no {', '.join(missing)}")
    header = {field: checkpoint[field] for field in HEADER_FIELDS}  # a block's tx_ids are not signed
    try:
        verify(header, SIGNER_FIELD, SIGNATURE_FIELD)
    except SignatureError as exc:
        raise VerificationError(f"checkpoint {checkpoint.get('height')}: {exc}") from exc


def leaf_bytes(record: bytes | Mapping[str, Any]) -> bytes:
    """A record's leaf bytes: the body ``GET /v1/transactions/{tx_id}`` answered, or the JCS bytes of the
    parsed record (the same bytes: JCS of JCS is itself)."""
    if isinstance(record, bytes):
        return record
    try:
        return canonical_bytes(dict(record))
    except CanonicalizationError as exc:
        raise VerificationError(f"the record has no canonical bytes: {exc}") from exc


def verify_included(
    record: bytes | Mapping[str, Any], proof: Mapping[str, Any], checkpoint: Mapping[str, Any]
) -> None:
    """Check that `record` is the leaf `proof` (``GET /v1/transactions/{tx_id}/proof?tree_size=N``) puts in
    the tree whose root `checkpoint` signs; `verify_checkpoint` first, to trust that root."""
    if proof.get("tree_size") != checkpoint["tree_size"]:
        raise VerificationError(
            f"the proof is for a tree of {proof.get('tree_size')} leaves, the checkpoint signs "
            f"{checkpoint['tree_size']}: ask for the proof at the checkpoint's tree_size"
        )
    leaf = merkle.leaf_hash(leaf_bytes(record))
    try:
        merkle.verify_inclusion(
            leaf,
            proof["leaf_index"],
            checkpoint["tree_size"],
            _hashes(proof["audit_path"]),
            bytes.fromhex(checkpoint["root_hash"]),
        )
    except (merkle.ProofError, ValueError, TypeError) as exc:
        raise VerificationError(f"the record is not in the checkpoint's tree: {exc}") from exc


def verify_extends(
    earlier: Mapping[str, Any], later: Mapping[str, Any], proof: Mapping[str, Any] | Sequence[str]
) -> None:
    """Check that the tree `later` signs extends the one `earlier` signs, by the consistency proof between their
    sizes (``GET /v1/consistency?first=&second=``, or its ``proof`` list): the ledger rewrote nothing."""
    hashes = proof["proof"] if isinstance(proof, Mapping) else proof
    try:
        merkle.verify_consistency(
            earlier["tree_size"],
            later["tree_size"],
            bytes.fromhex(earlier["root_hash"]),
            bytes.fromhex(later["root_hash"]),
            _hashes(hashes),
        )
    except (merkle.ProofError, ValueError, TypeError) as exc:
        raise VerificationError(f"the later checkpoint does not extend the earlier one: {exc}") from exc


def _hashes(hex_hashes: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hex_hashes]
