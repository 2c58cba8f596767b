"""Merchant registrations and the facts published about merchants."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.common import schemas, signing
from services.common.events import headers_dict
from services.common.signing import Keypair, SignatureError
from services.common.topics import MERCHANTS
from services.directory import merchants
from services.directory.merchants import Merchant

WALLET = Keypair.generate()


def _registration(**overrides) -> dict:
    body = {
        "wallet": WALLET.did,
        "name": "Corner Bakery",
        "category": "food",
        "locally_owned": True,
        "accepts": ["CITY", "AID"],
        "address": "1 Market Square",
        "lat": 52.37,
        "lon": 4.9,
    }
    body.update(overrides)
    return WALLET.sign({k: v for k, v in body.items() if v is not None})


def _merchant(signed: dict) -> Merchant:
    registration = merchants.check_registration(signed)
    return Merchant(
        wallet=registration.wallet,
        name=registration.name,
        category=registration.category,
        locally_owned=registration.locally_owned,
        accepts=list(registration.accepts),
        address=registration.address,
        lat=registration.lat,
        lon=registration.lon,
        verified=False,
        registration=signed,
        registered_at=datetime(2026, 11, 20, tzinfo=UTC),
        updated_at=datetime(2026, 11, 21, 8, 30, tzinfo=UTC),
    )


def test_a_signed_registration_passes():
    registration = merchants.check_registration(_registration())
    assert registration.category == "food" and registration.accepts == ["CITY", "AID"]


def test_address_and_coordinates_are_optional():
    merchants.check_registration(_registration(address=None, lat=None, lon=None))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"category": "weapons"}, "category"),
        ({"category": "Food"}, "category"),
        ({"locally_owned": "yes"}, "locally_owned"),
        ({"accepts": ["EUR"]}, "accepts"),
        ({"accepts": []}, "accepts"),
        ({"accepts": ["CITY", "CITY"]}, "accepts"),
        ({"lat": 91.0}, "lat"),
        ({"lat": "52"}, "lat"),
        ({"name": ""}, "name"),
        ({"name": "bad\u0000name"}, "name"),
        ({"wallet": "did:key:z6Mknope"}, "wallet"),
        ({"loyalty": "gold"}, "loyalty"),
    ],
)
def test_a_malformed_registration_names_the_field(overrides, field):
    with pytest.raises(ValidationError) as raised:
        merchants.check_registration(_registration(**overrides))
    assert field in {str(error["loc"][0]) for error in raised.value.errors() if error["loc"]}


def test_lat_without_lon_is_refused():
    with pytest.raises(ValidationError, match="lat and lon go together"):
        merchants.check_registration(_registration(lon=None))


def test_a_registration_not_signed_by_its_wallet_is_refused():
    with pytest.raises(SignatureError):
        merchants.check_registration({**_registration(), "name": "Someone Else's Bakery"})
    other = Keypair.generate()
    with pytest.raises(SignatureError):
        merchants.check_registration(other.sign(signing.unsigned(_registration())))


def test_the_fact_fits_the_topic_schema_and_keeps_the_signed_registration():
    signed = _registration()
    fact = _merchant(signed).fact()
    schemas.validate(MERCHANTS, fact)
    assert fact["verified"] is False and fact["active"] is True
    assert fact["updated_at"] == "2026-11-21T08:30:00.000Z"
    assert fact["registration"] == signed
    signing.verify(fact["registration"], "wallet")


def test_the_fact_leaves_out_what_was_not_given():
    fact = _merchant(_registration(address=None, lat=None, lon=None)).fact()
    schemas.validate(MERCHANTS, fact)
    assert not {"address", "lat", "lon"} & set(fact)


def test_the_record_is_keyed_by_wallet_with_a_stable_event_id():
    merchant = _merchant(_registration())
    record = merchants.outgoing_record(merchant)
    assert record.topic is MERCHANTS and record.key == WALLET.did
    headers = headers_dict(record.headers)
    assert headers["ce_type"] == "city.merchant.v1"
    assert headers["ce_source"] == "smartcity/directory"
    assert headers["ce_id"] == headers_dict(merchants.outgoing_record(merchant).headers)["ce_id"]
    renamed = _merchant(_registration(name="Corner Bakery & Café"))
    assert headers_dict(merchants.outgoing_record(renamed).headers)["ce_id"] != headers["ce_id"]


def test_description_chain_hours_and_closing_are_registered_and_published():
    signed = _registration(
        description="Sourdough and coffee", chain="MegaBake", hours={"sat": ["08:00-14:00"]}, active=False
    )
    registration = merchants.check_registration(signed)
    assert registration.hours == {"sat": ["08:00-14:00"]} and registration.active is False
    assert merchants.check_registration(_registration()).active is True


@pytest.mark.parametrize("bad", [{"someday": ["08:00-12:00"]}, {"mon": ["8-12"]}, {"mon": "08:00-12:00"}])
def test_malformed_hours_name_the_field(bad):
    with pytest.raises(ValidationError) as raised:
        merchants.check_registration(_registration(hours=bad))
    assert "hours" in {str(error["loc"][0]) for error in raised.value.errors()}


CITY = Keypair.generate()


def _verification(signed: dict, by: Keypair = CITY, **overrides) -> dict:
    body = {
        "merchant": WALLET.did,
        "registration": merchants.registration_hash(signed),
        "category": "food",
        "locally_owned": True,
        "verified_at": "2026-11-21T10:00:00Z",
        "verifier": by.did,
    }
    body.update(overrides)
    return by.sign(body)


def test_a_verification_by_a_directory_key_passes():
    verification = merchants.check_verification(_verification(_registration()), {CITY.did})
    assert verification.verified_at == datetime(2026, 11, 21, 10, tzinfo=UTC)


def test_a_verification_by_a_key_without_the_role_is_refused_before_its_signature_is_checked():
    other = Keypair.generate()
    with pytest.raises(merchants.NotAVerifierError):
        merchants.check_verification(_verification(_registration(), by=other), {CITY.did})
    with pytest.raises(SignatureError):
        merchants.check_verification({**_verification(_registration()), "locally_owned": False}, {CITY.did})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"verified_at": "2026-11-21T10:00:00"}, "verified_at"),
        ({"registration": "abc"}, "registration"),
        ({"category": "weapons"}, "category"),
        ({"merchant": "did:key:nope"}, "merchant"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_malformed_verification_names_the_field(overrides, field):
    with pytest.raises(ValidationError) as raised:
        merchants.check_verification(_verification(_registration(), **overrides), {CITY.did})
    assert field in {str(error["loc"][0]) for error in raised.value.errors()}


def test_a_verification_holds_while_the_checked_claims_are_unchanged():
    signed = _registration()
    verified = Merchant(
        **{**vars(_merchant(signed)), "verified": True, "verification": _verification(signed)}
    )
    renamed = merchants.check_registration(_registration(name="Corner Bakery & Café", hours={"mon": []}))
    assert merchants.kept_verification(verified, renamed) == verified.verification
    for change in ({"category": "grocery"}, {"locally_owned": False}):
        assert (
            merchants.kept_verification(verified, merchants.check_registration(_registration(**change)))
            is None
        )
    assert merchants.kept_verification(None, renamed) is None
    assert merchants.kept_verification(_merchant(signed), renamed) is None


def test_a_verified_fact_carries_the_signed_verification_and_fits_the_schema():
    signed = _registration(chain="MegaBake", hours={"mon": ["08:00-12:00"]})
    verification = _verification(signed, locally_owned=False)
    merchant = Merchant(
        **{
            **vars(_merchant(signed)),
            "verified": True,
            "locally_owned": False,
            "verification": verification,
            "chain": "MegaBake",
        }
    )
    fact = merchant.fact()
    schemas.validate(MERCHANTS, fact)
    assert fact["verification"] == verification and fact["chain"] == "MegaBake"
    signing.verify(fact["verification"], "verifier")
    with pytest.raises(schemas.SchemaError):
        schemas.validate(MERCHANTS, {**fact, "verification": {"sig": "x"}})


def test_once_registrations_carry_a_time_an_older_one_is_a_replay():
    first = _registration(issued_at="2026-11-21T10:00:00Z")
    held = _merchant(first)
    newer = _registration(name="Corner Bakery & Café", issued_at="2026-11-21T10:00:01+00:00")
    merchants.check_newer(held, merchants.check_registration(newer), newer)
    merchants.check_newer(held, merchants.check_registration(first), first)  # the same again: a retry
    for stale in (
        _registration(name="Old Name", issued_at="2026-11-21T09:00:00Z"),
        _registration(name="Same Time", issued_at="2026-11-21T11:00:00+01:00"),
        _registration(name="No Time"),
    ):
        with pytest.raises(merchants.StaleRegistrationError):
            merchants.check_newer(held, merchants.check_registration(stale), stale)
    untimed = _registration()
    merchants.check_newer(_merchant(untimed), merchants.check_registration(first), first)
    merchants.check_newer(None, merchants.check_registration(first), first)
