"""Signed objects: JSON objects carrying a ``sig`` field.

``sig`` is base64url (no padding) of the Ed25519 signature over the RFC 8785 (JCS) canonical bytes
of the object without ``sig``. The signer is named by a did:key field of the object itself (which
field depends on the object: ``device_id`` for a reading, ``owner`` for a registration, ...).

Verification is on hot paths (the rewards worker, the ledger), so it canonicalises with `jcs` (the C JSON
encoder, ~4x the reference ``rfc8785``, same bytes), decodes each did:key once (`verify_key`), and with
``remember=True`` recognises a signed object that already verified by its exact bytes (see `verify`).
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from services.common import didkey, jcs

SIG_FIELD = "sig"

REMEMBERED_MAX = 100_000
"""Signed objects remembered as verified per process (least recently used ones are forgotten)."""

_remembered: OrderedDict[tuple[str, bytes, bytes], None] = OrderedDict()


class SignatureError(ValueError):
    """A signed object is malformed or its signature does not verify."""


def b64url_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError on bad input."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


def signature_bytes(sig: str, field: str = SIG_FIELD) -> bytes:
    """The 64 bytes of a signature's text; raises `SignatureError` unless the text is their canonical
    encoding: unpadded base64url, 86 characters, the unused low bits of the last one zero.

    One signature has exactly one text, so a re-encoded signature (padding added, the last character's
    spare bits set) is refused rather than taken for a new object.
    """
    try:
        signature = b64url_decode(sig)
    except ValueError as exc:
        raise SignatureError(f"{field!r} is not base64url") from exc
    if len(signature) != 64:
        raise SignatureError(f"{field!r} is not a 64-byte Ed25519 signature")
    if b64url_encode(signature) != sig:
        raise SignatureError(f"{field!r} is not the canonical unpadded base64url text of its 64 bytes")
    return signature


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical bytes of a JSON value; raises `SignatureError` if it has none."""
    try:
        return jcs.canonical_bytes(obj)
    except jcs.CanonicalizationError as exc:
        raise SignatureError(str(exc)) from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unsigned(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without its ``sig`` field."""
    return {k: v for k, v in obj.items() if k != SIG_FIELD}


def object_id(obj: Mapping[str, Any]) -> str:
    """The id of a signed object: sha256 hex of the JCS bytes of the object without ``sig``.

    What was signed names the object, not the signature's text, so a re-sent object (however its
    signature is written) is the same object. Raises `SignatureError` if it has no canonical bytes.
    """
    return sha256_hex(canonical_bytes(unsigned(obj)))


@dataclass(frozen=True)
class Keypair:
    """An Ed25519 key with its did:key."""

    signing_key: SigningKey

    @classmethod
    def generate(cls) -> Keypair:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        return cls(SigningKey(seed))

    @property
    def did(self) -> str:
        return didkey.encode(bytes(self.signing_key.verify_key))

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    def sign_bytes(self, data: bytes) -> bytes:
        return self.signing_key.sign(data).signature

    def sign(
        self, obj: Mapping[str, Any], field: str = SIG_FIELD, exclude: Collection[str] = ()
    ) -> dict[str, Any]:
        """Return a copy of `obj` with `field` (``sig``) set to this key's signature over the JCS bytes of
        `obj` without `field` and the `exclude`d fields (see `verify_detached`)."""
        body = {k: v for k, v in obj.items() if k != field}
        signed = {k: v for k, v in body.items() if k not in exclude}
        return {**body, field: b64url_encode(self.sign_bytes(canonical_bytes(signed)))}


@lru_cache(maxsize=100_000)
def verify_key(did: str) -> VerifyKey:
    """The verify key of an Ed25519 did:key (memoised: decoded once per process); raises `SignatureError`."""
    try:
        return didkey.verify_key(did)
    except didkey.DidKeyError as exc:
        raise SignatureError(f"signer is not a valid did:key: {exc}") from exc


def verify_bytes(did: str, data: bytes, signature: bytes) -> None:
    """Verify a detached signature by the key of `did`; raises `SignatureError`."""
    key = verify_key(did)
    try:
        key.verify(data, signature)
    except (BadSignatureError, ValueError) as exc:
        raise SignatureError("signature does not verify") from exc


def verify(obj: Mapping[str, Any], signer_field: str, *, remember: bool = False) -> None:
    """Verify that `obj` is signed by the did:key in ``obj[signer_field]``; raises `SignatureError`.

    With `remember`, an object that verified is recognised later by its exact canonical bytes, signature
    and signer, without a second Ed25519 check: use it for objects that recur verbatim (a device's
    registration travels with each of its readings and rewards). Nothing unverified is ever remembered,
    and any change to the object, its signature or its signer misses the table and is checked in full.
    """
    verify_detached(obj, signer_field, SIG_FIELD, remember=remember)


def verify_detached(
    obj: Mapping[str, Any],
    signer_field: str,
    field: str,
    exclude: Collection[str] = (),
    *,
    remember: bool = False,
) -> None:
    """Verify that ``obj[field]`` is the signature, by the did:key in ``obj[signer_field]``, of the JCS bytes
    of `obj` without `field` and the `exclude`d fields; raises `SignatureError`. `remember` as in `verify`.

    For objects signed by two keys in turn (a device registration: the device signs first, into
    ``device_sig``, then its owner signs the whole, into ``sig``).
    """
    if not isinstance(obj, Mapping):
        raise SignatureError("a signed object must be a JSON object")
    sig = obj.get(field)
    if not isinstance(sig, str):
        raise SignatureError(f"missing {field!r}")
    signature = signature_bytes(sig, field)
    signer = obj.get(signer_field)
    if not isinstance(signer, str):
        raise SignatureError(f"missing signer field {signer_field!r}")
    body = canonical_bytes({k: v for k, v in obj.items() if k != field and k not in exclude})
    memo = (signer, body, signature)
    if remember:
        try:
            _remembered.move_to_end(memo)  # one call, so a concurrent eviction cannot slip in between
            return
        except KeyError:
            pass
    verify_bytes(signer, body, signature)
    if remember:
        _remembered[memo] = None
        if len(_remembered) > REMEMBERED_MAX:
            _remembered.popitem(last=False)
