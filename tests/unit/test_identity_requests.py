"""Signed requests and resident claims (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.common import events
from services.common.signing import Keypair
from services.identity import requests
from services.identity.requests import RequestError, ResidentFacts

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def notice(sender: Keypair, issued_at: datetime = NOW, **fields) -> dict:
    body = {
        "sender": sender.did,
        "recipient": Keypair.generate().did,
        "title": "Shelter beds tonight",
        "body": "40 beds.",
        "issued_at": events.rfc3339(issued_at),
        **fields,
    }
    return sender.sign(body)


def check(obj: dict, role: list[str]) -> requests.Notice:
    return requests.check(requests.Notice, obj, "sender", now=NOW, skew_s=300, role=role, role_name="notices")


def test_check_accepts_a_fresh_request_by_a_role_key():
    sender = Keypair.generate()
    assert check(notice(sender), [sender.did]).title == "Shelter beds tonight"


def test_check_refuses():
    sender = Keypair.generate()
    with pytest.raises(RequestError) as wrong_role:
        check(notice(sender), [Keypair.generate().did])
    assert wrong_role.value.status == 403
    with pytest.raises(RequestError) as stale:
        check(notice(sender, NOW - timedelta(minutes=6)), [sender.did])
    assert stale.value.kind == "stale-request"
    with pytest.raises(RequestError) as forged:
        check({**notice(sender), "title": "Changed"}, [sender.did])
    assert forged.value.kind == "invalid-signature"
    with pytest.raises(ValidationError):
        check(notice(sender, extra="field"), [sender.did])


def test_request_ids_are_stable_and_differ_per_request():
    sender = Keypair.generate()
    first = notice(sender)
    assert requests.request_id(first) == requests.request_id(dict(first))
    assert requests.request_id(first) != requests.request_id(notice(sender, title="Other"))


@pytest.mark.parametrize(
    ("birthdate", "over"),
    [
        ("2008-11-21", (True, False, False)),  # 18 today
        ("2008-11-22", (False, False, False)),  # 18 tomorrow
        ("2005-11-21", (True, True, False)),
        ("1961-11-21", (True, True, True)),
        ("1961-11-22", (True, True, False)),
    ],
)
def test_age_flags_are_computed_on_the_issue_date(birthdate, over):
    facts = ResidentFacts(given_name="A", family_name="B", birthdate=birthdate)
    claims = requests.resident_claims(facts, "Smart City", date(2026, 11, 21))
    assert (claims["age_over_18"], claims["age_over_21"], claims["age_over_65"]) == over
    assert claims["resident_of"] == "Smart City"
    assert "address" not in claims and "photo_sha256" not in claims


def test_address_and_photo_only_when_known():
    facts = ResidentFacts(
        given_name="A", family_name="B", birthdate="1990-01-01", address="1 Canal St", photo_sha256="ab" * 32
    )
    claims = requests.resident_claims(facts, "Smart City", date(2026, 11, 21))
    assert claims["address"] == "1 Canal St" and claims["photo_sha256"] == "ab" * 32
