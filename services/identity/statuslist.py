"""Token Status List (IETF OAuth draft "Token Status List"): one bit per credential, 1 = revoked. Pure.

The list is a byte array, the status of index ``i`` in bit ``i % 8`` (least significant first) of byte
``i // 8``, zlib-compressed and base64url-encoded as ``lst``; the issuer serves it as a signed JWT
(``typ: statuslist+jwt``) that any verifier can fetch and check offline.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from services.common.signing import b64url_decode, b64url_encode

STATUS_LIST_TYP = "statuslist+jwt"


def encode(revoked: Iterable[int], size: int) -> dict[str, Any]:
    """The ``status_list`` claim of a list of `size` entries where the `revoked` indices are set."""
    bits = bytearray((size + 7) // 8)
    for index in revoked:
        bits[index // 8] |= 1 << (index % 8)
    return {"bits": 1, "lst": b64url_encode(zlib.compress(bytes(bits), 9))}


def is_set(status_list: dict[str, Any], index: int) -> bool:
    """True if the entry at `index` of a ``status_list`` claim is set (revoked); out of range is not set."""
    bits = zlib.decompress(b64url_decode(status_list["lst"]))
    return index // 8 < len(bits) and bool(bits[index // 8] >> (index % 8) & 1)
