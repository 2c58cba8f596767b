"""Custodial wallet sealing (pure): only the PIN and the wallet key together open it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nacl import pwhash
from nacl.exceptions import CryptoError
from nacl.utils import random

from services.common.signing import Keypair
from services.identity import custody
from services.identity.custody import KdfCost, WrongPinError

CHEAP = KdfCost(pwhash.argon2id.OPSLIMIT_MIN, pwhash.argon2id.MEMLIMIT_MIN)


def test_pin_and_wallet_key_open_the_wallet():
    wallet_key, person = random(32), Keypair.generate()
    sealed, salt = custody.seal(wallet_key, person.seed, "2468", CHEAP)
    assert person.seed not in sealed
    assert custody.unseal(wallet_key, sealed, salt, "2468", CHEAP) == person.seed
    with pytest.raises(WrongPinError):
        custody.unseal(wallet_key, sealed, salt, "2469", CHEAP)
    with pytest.raises(CryptoError):  # the database alone (without the wallet key) opens nothing
        custody.unseal(random(32), sealed, salt, "2468", CHEAP)


def test_same_pin_different_salts():
    wallet_key, seed = random(32), Keypair.generate().seed
    assert (
        custody.seal(wallet_key, seed, "2468", CHEAP)[1] != custody.seal(wallet_key, seed, "2468", CHEAP)[1]
    )


@pytest.mark.parametrize("pin", ["123", "1234567890123", "12a4", 1234, None])
def test_pin_format(pin):
    with pytest.raises(ValueError):
        custody.check_pin_format(pin)


POLICY = custody.LockoutPolicy(attempts=3, first_s=900, max_s=7 * 86400)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_run_of_wrong_pins_locks_and_each_lock_lasts_twice_the_one_before():
    guard = custody.PinGuard()
    for left in (2, 1):
        guard = guard.after_wrong_pin(POLICY, NOW)
        assert (guard.attempts_left(POLICY), guard.locked(NOW)) == (left, False)
    locks = []
    for _ in range(5):
        for _ in range(POLICY.attempts - guard.failed):
            guard = guard.after_wrong_pin(POLICY, NOW)
        assert guard.locked(NOW) and guard.failed == 0
        assert guard.locked_until is not None
        locks.append((guard.locked_until - NOW).total_seconds())
    assert locks == [900, 1800, 3600, 7200, 14400]


def test_the_lock_stops_growing_at_its_ceiling():
    guard = custody.PinGuard(failed=2, lockouts=40)
    locked = guard.after_wrong_pin(POLICY, NOW)
    assert locked.locked_until == NOW + timedelta(seconds=POLICY.max_s)
    assert not locked.locked(NOW + timedelta(seconds=POLICY.max_s))


def test_a_four_digit_pin_takes_decades_to_guess_at_the_default_lockout():
    """10,000 PINs at 5 tries a lock: the locks add up to far more than a human lifetime (before, the
    lockout never escalated and they fell in about three weeks)."""
    policy = custody.LockoutPolicy(attempts=5, first_s=900, max_s=30 * 86400)
    guard, waited = custody.PinGuard(), 0.0
    for _ in range(10_000 // policy.attempts):
        for _ in range(policy.attempts):
            guard = guard.after_wrong_pin(policy, NOW)
        assert guard.locked_until is not None
        waited += (guard.locked_until - NOW).total_seconds()
        guard = custody.PinGuard(0, guard.lockouts, None)  # the lock has run out
    assert waited / (365 * 86400) > 100
