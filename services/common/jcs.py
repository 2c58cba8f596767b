"""A fast RFC 8785 (JCS) canonicaliser, byte-identical to the reference ``rfc8785`` package (pure).

The reference (`reference_bytes`: the SDK's `smartcity_sdk.jcs.canonical_bytes`, pure Python) costs ~30 µs
for a reward with its evidence, and every signed object is canonicalised to sign or verify it. For JSON values
(string keys) a compact JSON encoder with sorted keys gives the very same bytes, except in a few places, which
this module detects and hands to the reference:

- numbers: ES6 and Python/orjson print the same shortest round-trip digits, but they write ``12.0`` where JCS
  writes ``12`` and switch to exponents at other magnitudes; JCS also refuses integers beyond 2**53. A scan
  of the output for such numbers (`_SUSPECT_NUMBER`) finds those cases; a string that merely looks like one
  only costs the slower path. Integral floats below 2**53 (sensor values such as ``14.0``, common) are
  written as the integers they equal and encoded again, which costs a walk of the value, not the reference;
- keys outside ASCII, which JCS orders by UTF-16 code units rather than code points;
- NaN, infinities and non-JSON types (the reference raises the error).

The first encoder is orjson (~10x the standard library's). It writes NaN and infinities as ``null``, so an
output holding ``null`` is encoded again by the standard library's C encoder, which refuses them. Strings
escape alike in all three: ``\\b \\t \\n \\f \\r \\" \\\\`` and ``\\u00xx`` (lowercase) for other control
characters. tests/unit/test_jcs.py compares with the reference on many values.

One leniency, left so as not to walk every object in Python: orjson writes a few non-JSON types (UUID, Enum)
as their JSON form, where the reference refuses them. No decoded JSON holds one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import orjson

from smartcity_sdk.jcs import CanonicalizationError
from smartcity_sdk.jcs import canonical_bytes as reference_bytes

__all__ = ["CanonicalizationError", "canonical_bytes", "object_bytes", "reference_bytes"]

_MAX_SAFE_INT_DIGITS = 15  # every integer of at most 15 digits is below 2**53
_EXACT_INTEGRAL_FLOAT = 2.0**53


class _Fallback(Exception):
    """A value whose canonical form this module leaves to the reference implementation."""


def _check_float(text: str) -> None:
    # Without an exponent and not integral, repr's digits are the ES6 digits (1e-4 <= |x| < 1e16).
    if "e" in text or "E" in text or text.endswith(".0"):
        raise _Fallback


def _check_int(text: str) -> None:
    if len(text.lstrip("-")) > _MAX_SAFE_INT_DIGITS:
        raise _Fallback


# A number JCS writes differently or refuses: exponent, integral float (``12.0``, ``-0.0``), 16+ digits.
# (Compact JSON: a number that is not the whole value follows a colon, a comma or a bracket.)
_SUSPECT_NUMBER = re.compile(rb"[:,\[]-?\d(?:\d*(?:\.\d+)?[eE]|\d*\.0(?!\d)|\d{15,})")
_NUMBER_START = frozenset(b"-0123456789")
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_number_checker = json.JSONDecoder(parse_float=_check_float, parse_int=_check_int)


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value, identical to `reference_bytes` (see the module's note on leniencies).

    Raises `CanonicalizationError` for what has no canonical form (NaN, lone surrogates, ...).
    """
    if type(value) is str and value.isascii():
        return orjson.dumps(value)  # an ASCII string escapes alike in JCS and orjson: no scan needed
    try:
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an unknown type, an integer beyond 64 bits
        return reference_bytes(value)  # raises the reference's error, or agrees with it
    suspect = b"null" in data or _SUSPECT_NUMBER.search(data) is not None
    if suspect and _has_integral_float(value):
        return canonical_bytes(_integral_floats_as_ints(value))
    if b"null" in data:
        return _standard_library_bytes(value)  # a NaN or an infinity, or a plain null
    if not data.isascii() or data[0] in _NUMBER_START or suspect:
        return reference_bytes(value)
    return data


def _is_integral(value: Any) -> bool:
    return type(value) is float and value.is_integer() and abs(value) < _EXACT_INTEGRAL_FLOAT


def _has_integral_float(value: Any) -> bool:
    if type(value) is dict:
        return any(_has_integral_float(v) for v in value.values())
    if type(value) is list:
        return any(_has_integral_float(v) for v in value)
    return _is_integral(value)


def _integral_floats_as_ints(value: Any) -> Any:
    # JCS writes an integral float as the integer (12.0 -> 12, -0.0 -> 0); below 2**53 the integer's
    # digits are the float's shortest round-trip digits, so the int encodes to the very bytes.
    if type(value) is dict:
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if type(value) is list:
        return [_integral_floats_as_ints(v) for v in value]
    return int(value) if _is_integral(value) else value


def object_bytes(members: Mapping[str, Any], encoded: Mapping[str, bytes]) -> bytes:
    """RFC 8785 bytes of the object of `members` and `encoded` (members whose canonical bytes the caller has
    already: spliced in, not encoded again). Every key of `encoded` must be ASCII.

    JCS is compositional: an object's canonical form is its members' canonical forms in key order, so a large
    member canonicalised once (a reward, to check its attestation) need not be scanned again as part of the
    record that holds it.
    """
    if not encoded:
        return canonical_bytes(dict(members))
    if not all(key.isascii() for key in encoded) or set(encoded) & set(members):
        raise ValueError("encoded members need distinct ASCII keys")
    parts = {key: canonical_bytes(value) for key, value in members.items()}
    if not all(key.isascii() for key in parts):
        return canonical_bytes({**members, **{k: orjson.loads(v) for k, v in encoded.items()}})
    parts.update(encoded)
    # ASCII keys: UTF-16 code unit order is byte order.
    return b"{" + b",".join(orjson.dumps(key) + b":" + parts[key] for key in sorted(parts)) + b"}"


def _standard_library_bytes(value: Any) -> bytes:
    # The C encoder refuses NaN and infinities (allow_nan=False); its numbers are checked by parsing them
    # back with hooks (a callback per number only).
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
