"""A fast RFC 8785 (JCS) canonicaliser, byte-identical to the reference ``rfc8785`` package (pure).

The reference (`reference_bytes`: the SDK's `smartcity_sdk.jcs.canonical_bytes`, pure Python) costs ~30 µs
for a reward with its evidence, and every signed object is canonicalised to sign or verify it. For JSON values
(string keys) a compact JSON encoder with sorted keys gives the very same bytes, except in a few places, which
this module detects and hands to the reference:

- numbers: ES6 and Python/orjson print the same shortest round-trip digits, but they write ``12.0`` where JCS
  writes ``12`` and switch to exponents at other magnitudes; JCS also refuses integers beyond 2**53. A walk of
  the value (`_numbers`) finds those numbers: a non-integral float outside 1e-4 <= |x| < 1e15, an integer of 16
  digits or more, NaN or an infinity go to the reference. Integral floats below 2**53 (sensor values such as
  ``14.0``, common) are written as the integers they equal and encoded again, which costs a walk of the value,
  not the reference. (The walk replaced a regular-expression scan of the encoding, which cost ~20 ns a byte:
  most of a reward's canonicalisation, its evidence being long strings.)
- keys outside ASCII, which JCS orders by UTF-16 code units rather than code points (any output outside
  ASCII goes to the reference);
- non-JSON types (the reference raises the error).

The encoder is orjson (~10x the standard library's). Strings escape alike in orjson and JCS: ``\\b \\t \\n \\f
\\r \\" \\\\`` and ``\\u00xx`` (lowercase) for other control characters. tests/unit/test_jcs.py compares with the
reference on many values.

Any other type, subclasses of the JSON ones included (an OrderedDict, an IntEnum), goes to the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from smartcity_sdk.jcs import CanonicalizationError
from smartcity_sdk.jcs import canonical_bytes as reference_bytes

__all__ = ["CanonicalizationError", "canonical_bytes", "object_bytes", "reference_bytes"]

_SAFE_INT = 10**15  # every integer of at most 15 digits is below 2**53
_EXACT_INTEGRAL_FLOAT = 2.0**53
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

# What `_numbers` finds: every number prints alike; some float is integral (JCS writes it as the integer) and
# nothing worse; a number only the reference writes (an exponent, 16+ integer digits, NaN, an infinity).
_ALIKE, _INTEGRAL, _OTHER = 0, 1, 2


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value, identical to `reference_bytes` (see the module's note on leniencies).

    Raises `CanonicalizationError` for what has no canonical form (NaN, lone surrogates, ...).
    """
    if type(value) is str and value.isascii():
        return orjson.dumps(value)  # an ASCII string escapes alike in JCS and orjson
    numbers = _numbers((value,))
    if numbers == _INTEGRAL:
        return canonical_bytes(_integral_floats_as_ints(value))
    try:
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an unknown type, an integer beyond 64 bits
        return reference_bytes(value)  # raises the reference's error, or agrees with it
    if numbers == _OTHER or not data.isascii():
        return reference_bytes(value)
    return data


def _numbers(items: Any) -> int:
    """The worst of the numbers in `items` (a list, tuple or dict's values) and in what they hold: a walk of
    the value, cheaper than scanning its encoding (a reward is mostly long strings)."""
    worst = _ALIKE
    for item in items:
        kind = type(item)
        if kind is str:
            continue
        if kind is dict:
            found = _numbers(item.values())
        elif kind is list or kind is tuple:
            found = _numbers(item)
        elif kind is float:
            if item.is_integer():
                found = _INTEGRAL if abs(item) < _EXACT_INTEGRAL_FLOAT else _OTHER
            else:
                # Without an exponent in both encodings; NaN and infinities fail the test.
                found = _ALIKE if 1e-4 <= abs(item) < 1e15 else _OTHER
        elif kind is int:
            found = _ALIKE if -_SAFE_INT < item < _SAFE_INT else _OTHER
        elif kind is bool or item is None:
            continue
        else:
            return _OTHER  # a subclass (OrderedDict, IntEnum, ...) or another type: the reference decides
        if found > worst:
            if found == _OTHER:
                return _OTHER
            worst = found
    return worst


def _is_integral(value: Any) -> bool:
    return type(value) is float and value.is_integer() and abs(value) < _EXACT_INTEGRAL_FLOAT


def _integral_floats_as_ints(value: Any) -> Any:
    # JCS writes an integral float as the integer (12.0 -> 12, -0.0 -> 0); below 2**53 the integer's
    # digits are the float's shortest round-trip digits, so the int encodes to the very bytes.
    if type(value) is dict:
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if type(value) is list or type(value) is tuple:
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
    if set(encoded) & set(members) or not all(
        type(key) is str and key.isascii() and type(value) is bytes for key, value in encoded.items()
    ):
        raise ValueError("encoded members need distinct ASCII keys and bytes values")
    if _numbers(members.values()) == _ALIKE and all(type(key) is str and key.isascii() for key in members):
        # One encoding of the whole object, the encoded members spliced in as they are (orjson.Fragment).
        try:
            whole = {**members, **{key: orjson.Fragment(value) for key, value in encoded.items()}}
            data = orjson.dumps(whole, option=_ORJSON_OPTIONS)
        except TypeError:  # what only the reference writes, or refuses: the member by member path says
            data = b""
        if data and data.isascii():  # else a string (or an encoded member) outside ASCII: member by member
            return data
    parts = {key: canonical_bytes(value) for key, value in members.items()}
    if not all(key.isascii() for key in parts):
        return canonical_bytes({**members, **{k: orjson.loads(v) for k, v in encoded.items()}})
    parts.update(encoded)
    # ASCII keys: UTF-16 code unit order is byte order.
    return b"{" + b",".join(orjson.dumps(key) + b":" + parts[key] for key in sorted(parts)) + b"}"
