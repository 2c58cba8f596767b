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
