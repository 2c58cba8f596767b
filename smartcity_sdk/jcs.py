"""RFC 8785 (JCS) canonical JSON by the reference implementation (the ``rfc8785`` package).

What a signature covers and what an id or a leaf hash is taken of: the platform signs and hashes these bytes.
The services canonicalise with a faster encoder on their hot paths (``services/common/jcs.py``), which hands
every value it is unsure of to this function and is tested to give the very same bytes.
"""

from __future__ import annotations

from typing import Any

import rfc8785


class CanonicalizationError(ValueError):
    """A value that has no RFC 8785 form (NaN, an integer beyond 2**53, a lone surrogate, a set, ...)."""


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value; raises `CanonicalizationError` if it has none."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(f"cannot canonicalize: {exc}") from exc
