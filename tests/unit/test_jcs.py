"""The fast canonicaliser gives exactly the reference RFC 8785 bytes (the ``rfc8785`` package), or an error
where the reference has one; `signing.canonical_bytes` is that canonicaliser."""

from __future__ import annotations

import enum
import random
import sys
from collections import OrderedDict, defaultdict

import pytest
import rfc8785

from services.common import jcs, signing
from services.common.signing import Keypair
from tests.support.factories import signed_reward


class _Level(float, enum.Enum):
    HIGH = 12.0


class _Big(enum.IntEnum):
    HUGE = 2**60


EDGE_FLOATS = [
    0.1,
    12.5,
    -3.75,
    1e-4,
    9.99e-5,
    1e-5,
    1e-6,
    1e-7,
    5e-324,
    1e15 + 0.5,
    1e16,
    1.5e16,
    1e21,
    1e22,
    2.0**53,
    2.0**53 + 2,
    2.0**60,
    -0.0,
    0.0,
    12.0,
    -14.0,
    2.0**53 - 1,
    -(2.0**53) + 1,
    1e15,
    1 / 3,
    99999999999999.98,
    sys.float_info.max,
]


@pytest.mark.parametrize("value", EDGE_FLOATS)
def test_edge_floats_match_the_reference(value: float) -> None:
    assert jcs.canonical_bytes({"v": [value]}) == rfc8785.dumps({"v": [value]})


def test_random_numbers_match_the_reference() -> None:
    rng = random.Random(8785)
    for _ in range(5000):
        number = rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
        integer = rng.randint(-(2**53) + 1, 2**53 - 1)
        value = {"f": number, "i": integer, "n": [number, integer]}
        assert jcs.canonical_bytes(value) == rfc8785.dumps(value)


def test_integral_floats_beside_nulls_and_nesting_match_the_reference_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = [
        {"values": {"pm2_5": 14.0, "pm10": 7.5, "no2": -0.0}, "person": None, "seq": 3},
        {"a": [1.0, [2.0, {"b": 3.0}]], "s": "12.0"},
        [100.0, None, 0.5],
    ]
    expected = [rfc8785.dumps(value) for value in values]
    monkeypatch.setattr(jcs, "reference_bytes", None)  # sensor values such as 14.0 take the fast path
    assert [jcs.canonical_bytes(value) for value in values] == expected


def test_strings_keys_and_nesting_match_the_reference() -> None:
    value = {
        "z": 'tab\tquote"backslash\\ctrl\x01\x1f del\x7f line\u2028 é 😀',
        "a": [None, True, False, {"b": 1, "a": [], "": {}}],
        "é": "non-ASCII key (UTF-16 order)",
        "\U0001f600": "astral key",
        "\ue000": "private use key",
        "reward": signed_reward(Keypair.generate()),
    }
    assert jcs.canonical_bytes(value) == signing.canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), {"big": 2**53}, {"lone": "\ud800"}, {"set": {1}}]
)
def test_what_has_no_canonical_form_is_refused(value: object) -> None:
    with pytest.raises(rfc8785.CanonicalizationError):
        rfc8785.dumps(value)
    with pytest.raises(jcs.CanonicalizationError):
        jcs.canonical_bytes(value)
    with pytest.raises(signing.SignatureError, match="cannot canonicalize"):
        signing.canonical_bytes(value)


@pytest.mark.parametrize(
    "value",
    [
        {"at": "07:18:20.0Z", "list": "x,1e5", "ratio": ":12.0", "digits": "[1234567890123456789"},
        {"memo": None, "amount": 12.5, "nested": [None, {"a": None}]},
        {"zero": 0, "minus_zero_int": -0, "max_safe": 2**53 - 1, "min_safe": -(2**53) + 1},
        {"tiny": 5e-324, "big_int_float": 1234567890123456.5, "fraction": 0.000123},
    ],
)
def test_strings_that_look_like_numbers_nulls_and_limits_match_the_reference(value: object) -> None:
    assert jcs.canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [{"n": None, "x": float("nan")}, [None, float("-inf")], {1: "int key"}])
def test_nan_beside_null_and_non_string_keys_are_refused(value: object) -> None:
    with pytest.raises(jcs.CanonicalizationError):
        jcs.canonical_bytes(value)


def test_shortest_float_digits_agree_with_the_reference_across_magnitudes() -> None:
    rng = random.Random(9162)
    for _ in range(20000):
        value = {"v": rng.getrandbits(64) / (1 << rng.randint(0, 80))}
        assert jcs.canonical_bytes(value) == rfc8785.dumps(value)


def test_every_ascii_character_escapes_as_the_reference_does() -> None:
    every = "".join(chr(code) for code in range(128))
    value = {"s": every, every: [every[::-1]]}
    assert jcs.canonical_bytes(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        12.0,
        1e21,
        -7,
        2**60,
        {"a": [{"b": [1.0, {"c": 2.5}]}], "s": "1e21 and 12.0 and 99999999999999999"},
        {"deep": [[[[-0.0]]]], "big": [1, 2, 2**53 + 1]},
        {"t": (1.0, "x", 1e-7), "n": None, "b": True},
        # Subclasses of the JSON types, which orjson writes as their base type: the reference decides.
        OrderedDict(a=12.0, b=[1e20]),
        defaultdict(list, a=[1.0]),
        {"e": _Level.HIGH, "i": _Big.HUGE},
    ],
)
def test_numbers_anywhere_in_a_value_match_the_reference(value: object) -> None:
    # Numbers at the top, deep down, in tuples, beside strings that look like numbers (which need nothing);
    # integers beyond 2**53 are refused by both.
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        with pytest.raises(jcs.CanonicalizationError):
            jcs.canonical_bytes(value)
    else:
        assert jcs.canonical_bytes(value) == expected


@pytest.mark.parametrize(
    "members",
    [
        {"tx_id": "ab" * 32, "type": "reward", "postings": [{"account": "pool", "amount": -5}], "n": None},
        {"values": {"pm2_5": 14.0, "pm10": 7.5}, "seq": 3},  # an integral float: written as the integer
        {"amount": 1e16, "tiny": 1e-7},  # exponents only the reference writes
        {"memo": "café ☕", "z": 1},  # a string outside ASCII
        {"é": "a key outside ASCII", "a": [1, 2]},
        {"level": _Level.HIGH, "n": 2},  # a subclass of a JSON type
        {"ordered": OrderedDict([("b", 1), ("a", 2)]), "d": defaultdict(int, {"x": 1})},
        {"quote": 'a "reward": {"forged": 1} \\ \n'},  # text that looks like the spliced member
    ],
)
@pytest.mark.parametrize(
    "encoded_value",
    [{"wallet": "did:key:z6Mk", "amount": 12, "nested": {"b": [1.5, None], "a": True}}, {"name": "Zoë ⚡"}],
)
def test_an_object_with_encoded_members_is_the_reference_encoding_of_the_whole(
    members: dict, encoded_value: dict
) -> None:
    encoded = {"reward": rfc8785.dumps(encoded_value), "attestation": rfc8785.dumps({"sig": "x", "size": 2})}
    whole = {**members, "reward": encoded_value, "attestation": {"sig": "x", "size": 2}}
    assert jcs.object_bytes(members, encoded) == rfc8785.dumps(whole)


@pytest.mark.parametrize("members", [{"x": float("nan")}, {"lone": "\ud800"}, {"big": 2**53}, {"set": {1}}])
def test_an_object_with_encoded_members_refuses_what_has_no_canonical_form(members: dict) -> None:
    with pytest.raises(jcs.CanonicalizationError):
        jcs.object_bytes(members, {"reward": b"{}"})


@pytest.mark.parametrize(
    ("members", "encoded"),
    [
        ({"reward": 1}, {"reward": b"1"}),
        ({"a": 1}, {"é": b"1"}),
        ({"a": 1}, {b"reward": b"1"}),
        ({"a": 1}, {"reward": '{"x":1}'}),  # text, not bytes: orjson.Fragment would take it
    ],
)
def test_encoded_members_need_distinct_ascii_keys(members: dict, encoded: dict) -> None:
    with pytest.raises(ValueError, match="distinct ASCII keys"):
        jcs.object_bytes(members, encoded)
