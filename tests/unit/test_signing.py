import copy
from collections import OrderedDict

import pytest

from services.common import signing
from services.common.signing import Keypair, SignatureError
from tests.support.factories import reencoded_signatures


def test_jcs_sorts_keys_and_normalises_numbers():
    # RFC 8785 section 3.2.2: sorted properties, no whitespace, ES6 number serialisation.
    value = {"b": [1.0, 1e21, 0.000001, -0.0], "a": "\u20ac", "c": {"z": True, "y": None}}
    assert signing.canonical_bytes(value) == (
        '{"a":"€","b":[1,1e+21,0.000001,0],"c":{"y":null,"z":true}}'.encode()
    )


def test_jcs_rfc8785_example():
    # The example of RFC 8785 section 3.2.3 (numbers and literals).
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "literals": [None, True, False],
    }
    assert signing.canonical_bytes(value) == (
        b'{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}'
    )


def test_sign_then_verify():
    key = Keypair.generate()
    signed = key.sign({"device_id": key.did, "seq": 1, "values": {"pm2_5": 3.5}})
    assert set(signed) == {"device_id", "seq", "values", "sig"}
    assert "=" not in signed["sig"] and len(signed["sig"]) == 86
    signing.verify(signed, "device_id")


def test_signature_is_over_canonical_bytes_so_key_order_does_not_matter():
    key = Keypair.generate()
    signed = key.sign({"a": 1, "device_id": key.did})
    reordered = {"sig": signed["sig"], "device_id": key.did, "a": 1}
    signing.verify(reordered, "device_id")


def test_resigning_replaces_an_existing_sig():
    key = Keypair.generate()
    once = key.sign({"owner": key.did})
    assert key.sign(once) == once


TAMPERINGS = [
    lambda o: o.update(seq=2),
    lambda o: o.update(sig=o["sig"][:-2] + ("AA" if o["sig"][-2:] != "AA" else "BB")),
    lambda o: o.pop("sig"),
    lambda o: o.update(sig="not base64!"),
    lambda o: o.update(sig="AAAA"),
    lambda o: o.update(device_id=Keypair.generate().did),
    lambda o: o.update(device_id="did:key:bogus"),
    lambda o: o.pop("device_id"),
]


@pytest.mark.parametrize("tamper", TAMPERINGS)
def test_tampering_is_detected(tamper):
    key = Keypair.generate()
    signed = key.sign({"device_id": key.did, "seq": 1})
    bad = copy.deepcopy(signed)
    tamper(bad)
    with pytest.raises(SignatureError):
        signing.verify(bad, "device_id")


def test_not_an_object():
    with pytest.raises(SignatureError):
        signing.verify(["sig"], "device_id")  # type: ignore[arg-type]


def test_b64url_round_trip_without_padding():
    for n in range(0, 40):
        data = bytes(range(n))
        text = signing.b64url_encode(data)
        assert "=" not in text
        assert signing.b64url_decode(text) == data


def test_seed_round_trip():
    key = Keypair.generate()
    assert Keypair.from_seed(key.seed).did == key.did


@pytest.mark.parametrize("tamper", TAMPERINGS)
def test_a_remembered_object_is_recognised_only_byte_for_byte(tamper):
    key = Keypair.generate()
    signed = key.sign({"device_id": key.did, "seq": 1})
    signing.verify(signed, "device_id", remember=True)
    bad = copy.deepcopy(signed)
    tamper(bad)
    with pytest.raises(SignatureError):
        signing.verify(bad, "device_id", remember=True)


def test_a_remembered_object_skips_the_second_ed25519_check_and_others_do_not(monkeypatch):
    key = Keypair.generate()
    registration = key.sign({"owner": key.did, "device_id": Keypair.generate().did})
    reading = key.sign({"device_id": key.did, "seq": 1})
    signing.verify(registration, "owner", remember=True)
    signing.verify(reading, "device_id")

    def no_more_checks(did: str, data: bytes, signature: bytes) -> None:
        raise SignatureError("checked again")

    monkeypatch.setattr(signing, "verify_bytes", no_more_checks)
    signing.verify(dict(reversed(registration.items())), "owner", remember=True)  # same canonical bytes
    with pytest.raises(SignatureError, match="checked again"):
        signing.verify(registration, "owner")  # without remember: always checked
    with pytest.raises(SignatureError, match="checked again"):
        signing.verify(reading, "device_id", remember=True)  # verified before, but not remembered


def test_at_most_remembered_max_objects_are_remembered(monkeypatch):
    monkeypatch.setattr(signing, "REMEMBERED_MAX", 2)
    monkeypatch.setattr(signing, "_remembered", OrderedDict())
    key = Keypair.generate()
    first, *others = [key.sign({"owner": key.did, "n": n}) for n in range(3)]
    for signed in (first, *others):
        signing.verify(signed, "owner", remember=True)

    def no_more_checks(did: str, data: bytes, signature: bytes) -> None:
        raise SignatureError("checked again")

    monkeypatch.setattr(signing, "verify_bytes", no_more_checks)
    for signed in others:
        signing.verify(signed, "owner", remember=True)
    with pytest.raises(SignatureError, match="checked again"):
        signing.verify(first, "owner", remember=True)  # the least recently used one was forgotten


def test_a_reencoded_signature_is_refused_though_it_decodes_to_the_same_bytes():
    key = Keypair.generate()
    signed = key.sign({"from": key.did, "nonce": 1})
    signing.verify(signed, "from")
    texts = reencoded_signatures(signed["sig"])
    assert len(texts) == 3
    for text in texts:
        assert signing.b64url_decode(text) == signing.b64url_decode(signed["sig"])
        with pytest.raises(SignatureError, match="canonical"):
            signing.verify({**signed, "sig": text}, "from")


def test_an_object_id_is_that_of_what_was_signed_not_of_the_signature_text():
    key = Keypair.generate()
    signed = key.sign({"from": key.did, "nonce": 1})
    assert signing.object_id(signed) == signing.object_id({**signed, "sig": signed["sig"] + "=="})
    assert signing.object_id(signed) == signing.sha256_hex(signing.canonical_bytes(signing.unsigned(signed)))
    assert signing.object_id(signed) != signing.object_id(key.sign({"from": key.did, "nonce": 2}))
