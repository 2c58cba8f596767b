"""Record values: compact JSON out, strict JSON in (a poison record is a ValueError, never a crash)."""

from __future__ import annotations

import json

import pytest

from services.common import events


def test_values_are_compact_utf8_json_that_reads_back() -> None:
    value = {"zone": "vieux-carré", "values": {"pm25": 12.5}, "seq": 7, "ok": True, "memo": None}
    encoded = events.encode_json(value)
    assert encoded == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert events.decode_json(encoded) == value


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"{",
        b'{"v": NaN}',
        b'{"v": Infinity}',
        b'"\\ud800"',
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_what_is_not_strict_json_is_a_value_error(raw: bytes | None) -> None:
    with pytest.raises(ValueError):
        events.decode_json(raw)


def test_a_non_string_key_or_a_non_json_type_is_refused_on_the_way_out() -> None:
    with pytest.raises(TypeError):
        events.encode_json({1: "int key"})
    with pytest.raises(TypeError):
        events.encode_json({"set": {1, 2}})
