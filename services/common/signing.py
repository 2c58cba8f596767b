"""Signed objects: JSON objects carrying a ``sig`` field, as the SDK (`smartcity_sdk.signing`) defines them.

``sig`` is base64url (no padding) of the Ed25519 signature over the RFC 8785 (JCS) canonical bytes
of the object without ``sig``. The signer is named by a did:key field of the object itself (which
field depends on the object: ``device_id`` for a reading, ``owner`` for a registration, ...).

The rules (b64url, the one canonical text of a signature, keys, the memoised did:key decoding) are the SDK's,
imported here under the names services use. What is the services' own is speed on hot paths (the rewards
worker, the ledger): they canonicalise with `jcs` (the C JSON encoder, ~4x the SDK's reference ``rfc8785``,
same bytes: tests/unit/test_jcs.py and tests/unit/test_sdk.py), and with ``remember=True`` recognise a signed
object that already verified by its exact bytes (see `verify`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Any

from services.common import jcs
from smartcity_sdk import signing as sdk_signing
from smartcity_sdk.signing import (
    SIG_FIELD,
    SignatureError,
    b64url_decode,
    b64url_encode,
    signature_bytes,
    verify_bytes,
    verify_key,
)

__all__ = [
    "REMEMBERED_MAX",
    "SIG_FIELD",
    "Keypair",
    "SignatureError",
    "b64url_decode",
    "b64url_encode",
    "canonical_bytes",
    "object_id",
    "sha256_hex",
    "signature_bytes",
    "unsigned",
    "verify",
    "verify_bytes",
    "verify_detached",
    "verify_key",
]

REMEMBERED_MAX = 100_000
"""Signed objects remembered as verified per process (least recently used ones are forgotten)."""

_remembered: OrderedDict[tuple[str, bytes, bytes], None] = OrderedDict()


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


class Keypair(sdk_signing.Keypair):
    """An Ed25519 key with its did:key: the SDK's, signing the bytes of the services' faster canonicaliser."""

    canonicalise = staticmethod(canonical_bytes)


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
    memo = sdk_signing.signed_parts(obj, signer_field, field, exclude, canonical_bytes)
    if remember:
        try:
            _remembered.move_to_end(memo)  # one call, so a concurrent eviction cannot slip in between
            return
        except KeyError:
            pass
    verify_bytes(*memo)
    if remember:
        _remembered[memo] = None
        if len(_remembered) > REMEMBERED_MAX:
            _remembered.popitem(last=False)
