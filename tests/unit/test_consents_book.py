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


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def reencoded_signatures(sig: str) -> list[str]:
    """Other texts of the same 64 signature bytes: the last character's spare low bits set otherwise."""
    last = _B64URL.index(sig[-1])
    return [sig[:-1] + _B64URL[(last & ~3) | bits] for bits in range(4) if (last & ~3) | bits != last]


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 21, 9, minute, second, tzinfo=UTC)


def stamp(minute: int, second: int = 0) -> str:
    return consents.events.rfc3339(at(minute, second))


def test_the_consent_in_force_at_a_time_is_the_last_one_signed_at_or_before_it():
    alice = Keypair.generate()
    book = ConsentBook()
    for minute, action in [(10, "grant"), (20, "revoke"), (30, "grant")]:
        assert book.apply(check_consent(consent(alice, action, issued_at=stamp(minute))))
    assert book.at(alice.did, "mobility", at(5)).status == "none"
    assert book.allows_at(alice.did, "mobility", at(10))  # from the instant it is signed
    assert book.allows_at(alice.did, "mobility", at(19, 59))
    revoked = book.at(alice.did, "mobility", at(20))
    assert (revoked.status, revoked.allows) == ("revoked", False)
    assert revoked.change is not None and revoked.change.issued_at == at(20)
    assert revoked.consent_id == consents.signing.object_id(revoked.change.signed)
    assert not book.allows_at(alice.did, "mobility", at(29, 59))
    assert book.allows_at(alice.did, "mobility", at(30))  # re-granted
    assert book.allows(alice.did, "mobility", now=NOW)
    assert not book.allows_at(alice.did, "energy", at(30))
    assert book.at(alice.did, "mobility", at(25)).as_json("mobility") == {
        "category": "mobility",
        "status": "revoked",
        "issued_at": stamp(20),
        "consent_id": revoked.consent_id,
    }


def test_a_grant_ends_at_its_until():
    alice = Keypair.generate()
    book = ConsentBook()
    book.apply(check_consent(consent(alice, issued_at=stamp(10), until=stamp(20))))
    assert book.allows_at(alice.did, "mobility", at(19, 59))
    assert book.at(alice.did, "mobility", at(20)).status == "expired"
    assert len(book) == 1  # the latest change is a grant (expired or not)


def test_replayed_backdated_and_reencoded_grants_change_nothing_after_a_revocation():
    alice = Keypair.generate()
    grant = consent(alice, issued_at=stamp(10))
    book = ConsentBook()
    book.apply(check_consent(grant))
    book.apply(check_consent(consent(alice, "revoke", issued_at=stamp(20))))
    assert book.apply(check_consent(grant)) is False  # replayed
    for sig in reencoded_signatures(grant["sig"]):
        with pytest.raises(ConsentError):  # another text of the same signature is not a signature
            check_consent({**grant, "sig": sig})
    # Newly signed, dated before the revocation.
    backdated = check_consent(consent(alice, issued_at=stamp(15)))
    assert book.apply(backdated) is False
    for minute in (20, 25, 59):
        assert not book.allows_at(alice.did, "mobility", at(minute))
    assert book.allows_at(alice.did, "mobility", at(12))  # what was in force before the revocation still is
    assert book.allows_at(alice.did, "mobility", at(16))


def test_a_grant_and_a_revocation_of_the_same_instant_resolve_to_the_revocation_at_that_time():
    alice = Keypair.generate()
    for order in ((0, 1), (1, 0)):
        changes = [
            check_consent(consent(alice, action, issued_at=stamp(10))) for action in ("grant", "revoke")
        ]
        book = ConsentBook()
        for index in order:
            book.apply(changes[index])
        assert book.at(alice.did, "mobility", at(10)).status == "revoked"
        assert book.at(alice.did, "mobility", at(11)).status == "revoked"


def test_history_is_bounded_and_older_times_are_unknown():
    alice = Keypair.generate()
    book = ConsentBook(history_s=600)  # ten minutes before the latest change
    for minute, action in [(0, "grant"), (5, "revoke"), (10, "grant"), (40, "revoke")]:
        book.apply(check_consent(consent(alice, action, issued_at=stamp(minute))))
    assert book.at(alice.did, "mobility", at(35)).status == "granted"  # the change in force at the horizon
    assert book.at(alice.did, "mobility", at(10)).status == "granted"
    assert book.at(alice.did, "mobility", at(7)).status == "unknown"  # its history was dropped
    assert not book.allows_at(alice.did, "mobility", at(2))
    # A change older than what is kept is not taken back in.
    assert book.apply(check_consent(consent(alice, issued_at=stamp(6)))) is False
    assert book.at(alice.did, "mobility", at(7)).status == "unknown"
