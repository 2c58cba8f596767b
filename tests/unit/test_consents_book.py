"""Consent objects, records and their fold (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common import consents
from services.common.consents import CITY, ConsentBook, ConsentError, check_consent, check_record, record_key
from services.common.signing import Keypair

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def consent(subject: Keypair, action: str = "grant", **fields) -> dict:
    body = {
        "subject": subject.did,
        "category": "mobility",
        "grantee": CITY,
        "action": action,
        "purpose": "rewards for bike trips",
        "issued_at": "2026-11-21T09:59:00.000Z",
        **fields,
    }
    return subject.sign(body)


def test_check_consent_reads_a_signed_grant():
    alice = Keypair.generate()
    change = check_consent(consent(alice, until="2026-12-01T00:00:00Z"))
    assert (change.subject, change.category, change.grantee, change.status) == (
        alice.did,
        "mobility",
        CITY,
        "granted",
    )
    assert change.until == datetime(2026, 12, 1, tzinfo=UTC)
    assert change.key == f"{alice.did}/mobility"


def test_record_keys_separate_grantees():
    alice, clinic = Keypair.generate(), Keypair.generate()
    assert record_key(alice.did, "health") == f"{alice.did}/health"
    assert record_key(alice.did, "health", clinic.did) == f"{alice.did}/health/{clinic.did}"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: {**c, "category": "energy"}, "not signed"),
        (lambda c: {k: v for k, v in c.items() if k != "sig"}, "sig"),
        (lambda c: {**c, "action": "maybe"}, "action"),
        (lambda c: Keypair.generate().sign({**c, "grantee": "someone"}), "grantee"),
        (lambda c: Keypair.generate().sign(c), "not signed"),
    ],
)
def test_check_consent_rejects(mutate, message):
    with pytest.raises(ConsentError, match=message):
        check_consent(mutate(consent(Keypair.generate())))


def test_check_record_needs_the_record_to_say_what_the_consent_says():
    alice = Keypair.generate()
    record = check_consent(consent(alice)).record(NOW)
    assert check_record(record).status == "granted"
    with pytest.raises(ConsentError, match="does not say"):
        check_record({**record, "status": "revoked"})
    with pytest.raises(ConsentError, match="schema"):
        check_record({**record, "subject": "nobody"})


def test_book_folds_to_the_latest_and_honours_until():
    alice, bob = Keypair.generate(), Keypair.generate()
    book = ConsentBook()
    assert not book.allows(alice.did, "mobility", now=NOW)
    book.apply(check_consent(consent(alice)))
    book.apply(check_consent(consent(bob, until=consents.events.rfc3339(NOW + timedelta(hours=1)))))
    assert book.allows(alice.did, "mobility", now=NOW)
    assert not book.allows(alice.did, "energy", now=NOW)
    assert not book.allows(alice.did, "mobility", grantee=bob.did, now=NOW)
    assert book.allows(bob.did, "mobility", now=NOW)
    assert not book.allows(bob.did, "mobility", now=NOW + timedelta(hours=1))
    book.apply(check_consent(consent(alice, "revoke")))
    assert not book.allows(alice.did, "mobility", now=NOW)
    assert len(book) == 1
