"""Verifying signed objects on the ledger's hot path (pure: no I/O, only per-process memo tables).

Same rule as `services.common.signing.verify` (Ed25519 over the JCS bytes of the object without ``sig``, by
the did:key the object names), with two memo tables that keep the result exact:

- did:key -> verify key, so base58 decoding happens once per key;
- signed objects that repeat verbatim (a device's registration travels with every reward of the device):
  once one verified, the same canonical bytes with the same signature by the same key verify again
  without a second Ed25519 check. The table is keyed by those exact bytes, so nothing unverified hits it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from services.common import didkey, signing
from services.ledger import jcs

REMEMBERED_MAX = 100_000
"""Signed objects remembered as verified per process (least recently used ones are forgotten)."""

_remembered: OrderedDict[tuple[str, bytes, bytes], None] = OrderedDict()


@lru_cache(maxsize=100_000)
def verify_key(did: str) -> VerifyKey:
    """The verify key of an Ed25519 did:key (memoised); raises `signing.SignatureError`."""
    try:
        return didkey.verify_key(did)
    except didkey.DidKeyError as exc:
        raise signing.SignatureError(f"signer is not a valid did:key: {exc}") from exc


def verify(obj: Mapping[str, Any], signer_field: str, *, remember: bool = False) -> None:
    """Verify that `obj` is signed by the did:key in ``obj[signer_field]``; raise `signing.SignatureError`.

    With `remember`, an object verified once is recognised by its exact bytes later (use it for objects
    that recur, such as device registrations).
    """
    if not isinstance(obj, Mapping):
        raise signing.SignatureError("a signed object must be a JSON object")
    sig = obj.get(signing.SIG_FIELD)
    if not isinstance(sig, str):
        raise signing.SignatureError("missing 'sig'")
    try:
        signature = signing.b64url_decode(sig)
    except ValueError as exc:
        raise signing.SignatureError("'sig' is not base64url") from exc
    if len(signature) != 64:
        raise signing.SignatureError("'sig' is not a 64-byte Ed25519 signature")
    signer = obj.get(signer_field)
    if not isinstance(signer, str):
        raise signing.SignatureError(f"missing signer field {signer_field!r}")
    body = jcs.canonical_bytes(signing.unsigned(obj))
    memo = (signer, body, signature)
    if remember and memo in _remembered:
        _remembered.move_to_end(memo)
        return
    try:
        verify_key(signer).verify(body, signature)
    except (BadSignatureError, ValueError) as exc:
        raise signing.SignatureError("signature does not verify") from exc
    if remember:
        _remembered[memo] = None
        if len(_remembered) > REMEMBERED_MAX:
            _remembered.popitem(last=False)
