"""Block headers (signed tree heads): building, signing, hashing and verification (pure).

A block header is the JSON object ``{height, previous_hash, tree_size, root_hash, timestamp, public_key,
signature}``:

- ``root_hash`` is the hex RFC 9162 Merkle tree hash of the first ``tree_size`` transactions;
- ``previous_hash`` is the sha256 hex of the JCS bytes of the previous full header (signature included),
  64 zeros at height 0, which links the blocks into a chain;
- ``signature`` is base64url (no padding) of the Ed25519 signature by ``public_key`` (the ledger's did:key)
  over the JCS (RFC 8785) bytes of the header without ``signature``.

Everything here needs nothing but the header JSON and the ledger's public key, so a verifier can use it
alone. Every failure raises a subclass of :class:`ChainError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from services.common import didkey, signing
from smartcity_sdk.proofs import HEADER_FIELDS

GENESIS_PREVIOUS_HASH = "0" * 64
"""``previous_hash`` of the block at height 0."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RFC3339_UTC = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|\+00:00)$"
)


class ChainError(ValueError):
    """Base class of every header and chain verification failure."""


class HeaderFormatError(ChainError):
    """The object is not a well-formed block header (missing, unknown or mistyped field)."""


class HeaderSignatureError(ChainError):
    """The header's signature does not verify under its public key."""


class UnexpectedKeyError(ChainError):
    """The header is signed by another key than the ledger key the verifier trusts."""


class ChainLinkError(ChainError):
    """A header does not follow its predecessor (height, previous_hash or tree size)."""


@dataclass(frozen=True)
class BlockHeader:
    """A signed block header; `to_json` gives the wire form, `from_json` parses and checks one."""

    height: int
    previous_hash: str
    tree_size: int
    root_hash: str
    timestamp: str
    public_key: str
    signature: str

    @classmethod
    def from_json(cls, obj: object) -> BlockHeader:
        """Parse a header object, raising `HeaderFormatError` on any missing, unknown or mistyped field.

        Only the form is checked here; `verify_header` checks the signature.
        """
        if not isinstance(obj, Mapping):
            raise HeaderFormatError("a block header is a JSON object")
        missing = [f for f in HEADER_FIELDS if f not in obj]
        unknown = sorted(set(obj) - set(HEADER_FIELDS))
        if missing or unknown:
            raise HeaderFormatError(f"missing fields {missing}, unknown fields {unknown}")
        for field in ("height", "tree_size"):
            value = obj[field]
            if type(value) is not int or value < 0:
                raise HeaderFormatError(f"{field} must be a non-negative integer")
        for field in ("previous_hash", "root_hash"):
            if not isinstance(obj[field], str) or not _HEX64.match(obj[field]):
                raise HeaderFormatError(f"{field} must be 64 lowercase hex digits")
        if not isinstance(obj["timestamp"], str) or not _RFC3339_UTC.match(obj["timestamp"]):
            raise HeaderFormatError("timestamp must be an RFC 3339 UTC time")
        if not didkey.is_did_key(obj["public_key"]):
            raise HeaderFormatError("public_key must be an Ed25519 did:key")
        try:
            signing.signature_bytes(obj["signature"], "signature")
        except signing.SignatureError as exc:
            raise HeaderFormatError(f"signature: {exc}") from exc
        return cls(**{f: obj[f] for f in HEADER_FIELDS})

    def to_json(self) -> dict[str, Any]:
        """The header as its JSON object (all seven fields)."""
        return asdict(self)

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: JCS of the header without ``signature``."""
        return signing.canonical_bytes({k: v for k, v in self.to_json().items() if k != "signature"})

    def canonical_bytes(self) -> bytes:
        """JCS bytes of the full header, signature included (what the next block's previous_hash hashes)."""
        return signing.canonical_bytes(self.to_json())

    def hash(self) -> str:
        """sha256 hex of the full header's JCS bytes: the next block's ``previous_hash``."""
        return signing.sha256_hex(self.canonical_bytes())

    @property
    def root(self) -> bytes:
        """The Merkle root as bytes, as `merkle.verify_inclusion` takes it."""
        return bytes.fromhex(self.root_hash)


def sign_header(
    keypair: signing.Keypair,
    *,
    height: int,
    previous_hash: str,
    tree_size: int,
    root_hash: bytes,
    timestamp: str,
) -> BlockHeader:
    """Build and sign a header with `keypair` (whose did:key becomes ``public_key``)."""
    unsigned = BlockHeader(
        height=height,
        previous_hash=previous_hash,
        tree_size=tree_size,
        root_hash=root_hash.hex(),
        timestamp=timestamp,
        public_key=keypair.did,
        signature="",
    )
    signature = signing.b64url_encode(keypair.sign_bytes(unsigned.signed_bytes()))
    return BlockHeader(**{**unsigned.to_json(), "signature": signature})


def next_header(
    previous: BlockHeader | None,
    keypair: signing.Keypair,
    *,
    tree_size: int,
    root_hash: bytes,
    timestamp: str,
) -> BlockHeader:
    """Sign the header that follows `previous` (None: the first block, height 0)."""
    return sign_header(
        keypair,
        height=0 if previous is None else previous.height + 1,
        previous_hash=GENESIS_PREVIOUS_HASH if previous is None else previous.hash(),
        tree_size=tree_size,
        root_hash=root_hash,
        timestamp=timestamp,
    )


def verify_header(header: BlockHeader, public_key: str | None = None) -> None:
    """Check the header's signature; with `public_key`, also that the header is signed by that key.

    Raises `UnexpectedKeyError` or `HeaderSignatureError`.
    """
    if public_key is not None and header.public_key != public_key:
        raise UnexpectedKeyError(f"header signed by {header.public_key}, expected {public_key}")
    try:
        signature = signing.signature_bytes(header.signature, "signature")
        signing.verify_bytes(header.public_key, header.signed_bytes(), signature)
    except (ValueError, signing.SignatureError) as exc:
        raise HeaderSignatureError(f"block {header.height}: signature does not verify") from exc


def verify_link(previous: BlockHeader | None, header: BlockHeader) -> None:
    """Check that `header` directly follows `previous` (None: that `header` is the first block).

    Heights are consecutive, ``previous_hash`` is the hash of `previous`, and the tree never shrinks.
    Raises `ChainLinkError`. Signatures are `verify_header`'s job.
    """
    if previous is None:
        if header.height != 0 or header.previous_hash != GENESIS_PREVIOUS_HASH:
            raise ChainLinkError("the first block has height 0 and a previous_hash of zeros")
        return
    if header.height != previous.height + 1:
        raise ChainLinkError(f"block {header.height} does not follow block {previous.height}")
    if header.previous_hash != previous.hash():
        raise ChainLinkError(
            f"block {header.height}: previous_hash is not the hash of block {previous.height}"
        )
    if header.tree_size < previous.tree_size:
        raise ChainLinkError(
            f"block {header.height}: tree shrinks from {previous.tree_size} to {header.tree_size}"
        )
