"""RFC 9901 (SD-JWT) disclosures and their digests: how a claim is committed to and opened.

A disclosure of an object property is base64url (unpadded) of the UTF-8 JSON array ``[salt, name, value]``
with a fresh random salt of 128 bits; its digest is base64url (unpadded) SHA-256 of the disclosure's ASCII
text. The platform commits to memos so (`smartcity_sdk.memos`), and identity's SD-JWT credentials disclose
their claims so.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from smartcity_sdk.signing import b64url_encode

SALT_BYTES = 16
"""128 bits (RFC 9901 section 9.3)."""


def digest(disclosure: str) -> str:
    """The digest of a disclosure as it appears in ``_sd``: base64url SHA-256 of its ASCII text."""
    return b64url_encode(hashlib.sha256(disclosure.encode("ascii")).digest())


def make_disclosure(name: str, value: Any, salt: str | None = None) -> str:
    """The disclosure of an object property: base64url of the JSON array [salt, name, value] (a fresh salt
    unless `salt` is given, for test vectors)."""
    array = [salt or b64url_encode(secrets.token_bytes(SALT_BYTES)), name, value]
    return b64url_encode(json.dumps(array, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
