"""A fast RFC 8785 (JCS) canonicaliser, byte-identical to the reference ``rfc8785`` package (pure).

The reference (`reference_bytes`, pure Python) costs ~30 µs for a reward with its evidence, and every signed
object is canonicalised to sign or verify it. For JSON values (string keys) the standard library's C encoder
with sorted keys and no whitespace gives the very same bytes, except in three places, which this module
detects and hands to the reference:

- numbers: ES6 and Python print the same shortest round-trip digits, but Python writes ``12.0`` where JCS
  writes ``12`` and switches to exponents at other magnitudes; JCS also refuses integers beyond 2**53.
  Parsing the output back with number hooks (C parser, a callback per number only) finds those cases;
- keys outside ASCII, which JCS orders by UTF-16 code units rather than code points;
- NaN, infinities and non-JSON types (the reference raises the error).

Strings escape alike: the C escaper uses ``\\b \\t \\n \\f \\r \\" \\\\`` and ``\\u00xx`` (lowercase) for other
control characters, exactly as JCS does. tests/unit/test_jcs.py compares both on many values.

One leniency, left so as not to walk every object in Python: a dict whose keys are all ``int``, ``float``,
``bool`` or ``None`` is written with those keys as JSON writes them (``"1"``, ``"true"``, ...) where the
reference refuses it. No decoded JSON has such keys, and the bytes are those its JSON round trip gives.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_MAX_SAFE_INT_DIGITS = 15  # every integer of at most 15 digits is below 2**53


class CanonicalizationError(ValueError):
    """A value that has no RFC 8785 form (NaN, an integer beyond 2**53, a lone surrogate, a set, ...)."""


def reference_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value by the reference implementation; raises `CanonicalizationError`."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(f"cannot canonicalize: {exc}") from exc


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
    """RFC 8785 bytes of a JSON value, identical to `reference_bytes` (see the module's note on keys).

    Raises `CanonicalizationError` for what has no canonical form (NaN, lone surrogates, ...).
    """
    try:
        text = _encoder.encode(value)
    except (TypeError, ValueError):
        return reference_bytes(value)  # raises the reference's error
    if not text.isascii():
        return reference_bytes(value)
    try:
        _number_checker.decode(text)
    except _Fallback:
        return reference_bytes(value)
    return text.encode("ascii")
