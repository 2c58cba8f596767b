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


def test_a_replayed_older_grant_changes_nothing_after_its_revocation():
    alice = Keypair.generate()
    grant = check_consent(consent(alice, issued_at="2026-11-21T09:00:00.000Z"))
    revoke = check_consent(consent(alice, "revoke", issued_at="2026-11-21T09:30:00.000Z"))
    book = ConsentBook()
    assert book.apply(grant) and book.apply(revoke)
    assert book.apply(grant) is False  # the old grant published again
    assert not book.allows(alice.did, "mobility", now=NOW)
    regrant = check_consent(consent(alice, issued_at="2026-11-21T09:45:00.000Z"))
    assert book.apply(regrant) and book.allows(alice.did, "mobility", now=NOW)


def test_the_fold_does_not_depend_on_arrival_order():
    alice = Keypair.generate()
    changes = [
        check_consent(consent(alice, action, issued_at=f"2026-11-21T09:{minute:02d}:00.000Z"))
        for minute, action in [(1, "grant"), (2, "revoke"), (3, "grant"), (4, "revoke")]
    ]
    for order in (changes, changes[::-1], [changes[2], changes[0], changes[3], changes[1]]):
        book = ConsentBook()
        for change in order:
            book.apply(change)
        assert not book.allows(alice.did, "mobility", now=NOW)
    for order in (changes[:3], changes[:3][::-1]):
        book = ConsentBook()
        for change in order:
            book.apply(change)
        assert book.allows(alice.did, "mobility", now=NOW)


def test_a_grant_and_a_revocation_signed_at_the_same_instant_resolve_to_the_revocation():
    alice = Keypair.generate()
    grant = check_consent(consent(alice))
    revoke = check_consent(consent(alice, "revoke"))
    for first, second in ((grant, revoke), (revoke, grant)):
        book = ConsentBook()
        book.apply(first)
        book.apply(second)
        assert not book.allows(alice.did, "mobility", now=NOW)
