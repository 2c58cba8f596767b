"""A fast RFC 8785 (JCS) canonicaliser for the ledger's hot path (pure).

`services.common.signing.canonical_bytes` (the ``rfc8785`` package, pure Python) is the reference; it costs
~30 µs for a reward with its evidence, and the ledger needs several per reward. For JSON values (string
keys) the standard library's C encoder with sorted keys and no whitespace gives the very same bytes, except
in three places, which this module detects and hands to the reference:

- numbers: ES6 and Python print the same shortest round-trip digits, but Python writes ``12.0`` where JCS
  writes ``12`` and switches to exponents at other magnitudes; JCS also refuses integers beyond 2**53.
  Parsing the output back with number hooks (C parser, a callback per number only) finds those cases;
- keys outside ASCII, which JCS orders by UTF-16 code units rather than code points;
- NaN, infinities and non-JSON types (the reference raises the error).

Strings escape alike: the C escaper uses ``\\b \\t \\n \\f \\r \\" \\\\`` and ``\\u00xx`` (lowercase) for other
control characters, exactly as JCS does. tests/unit/test_ledger_jcs.py compares both on many values.
"""

from __future__ import annotations

import json
from typing import Any

from services.common import signing

_MAX_SAFE_INT_DIGITS = 15  # every integer of at most 15 digits is below 2**53


class _Fallback(Exception):
    """A value whose canonical form this module leaves to the reference implementation."""


def _check_float(text: str) -> None:
    # Without an exponent and not integral, repr's digits are the ES6 digits (1e-4 <= |x| < 1e16).
    if "e" in text or "E" in text or text.endswith(".0"):
        raise _Fallback


def _check_int(text: str) -> None:
    if len(text.lstrip("-")) > _MAX_SAFE_INT_DIGITS:
        raise _Fallback


_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_number_checker = json.JSONDecoder(parse_float=_check_float, parse_int=_check_int)


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value (string keys), identical to `signing.canonical_bytes`.

    Raises `signing.SignatureError` for what has no canonical form (NaN, lone surrogates, ...).
    """
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError):
        return signing.canonical_bytes(value)  # raises the reference's error
    if not text.isascii():
        return signing.canonical_bytes(value)
    try:
        _number_checker.decode(text)
    except _Fallback:
        return signing.canonical_bytes(value)
    return text.encode("ascii")
