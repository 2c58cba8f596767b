"""Custodial wallets: a person's private key sealed at rest, opened only with their PIN. Pure (no I/O).

The seed is sealed twice: inside, under a key derived from the PIN with Argon2id; outside, under the service's
wallet key (so a copy of the database alone, PIN guesses and all, cannot be attacked offline). Opening needs
both; a wrong PIN fails the inner box's authentication.

A person who forgets their PIN keeps their did and their funds: a recovery copy of the seed is sealed under a
key derived from the wallet key (`recovery_key`), opened only for a caseworker's signed reset order with a
re-proof of the person (`services.identity.api.pin_resets`). It gives the service no power it lacked: whoever
holds the wallet key and the database can try every 4-digit PIN offline in minutes, so the PIN layer guards
against guesses at the API, which `PinGuard` bounds, not against the service itself.

Guessing is bounded by `PinGuard`: a run of wrong PINs locks the did, and each lock lasts twice the one before
(up to a ceiling), so a 4-digit PIN would take centuries to guess. A did that holds no custodial wallet is
guarded, answered and timed exactly alike (`decoy`), so the answers do not tell who holds one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from nacl import hash as nacl_hash
from nacl import pwhash, utils
from nacl.encoding import RawEncoder
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

PIN_PATTERN = re.compile(r"^[0-9]{4,12}$")


class WrongPinError(ValueError):
    """The PIN does not open the wallet."""


def check_pin_format(pin: object) -> str:
    """The PIN if it is 4 to 12 digits; raises ValueError otherwise."""
    if not isinstance(pin, str) or not PIN_PATTERN.fullmatch(pin):
        raise ValueError("a PIN is 4 to 12 digits")
    return pin


@dataclass(frozen=True)
class KdfCost:
    """Argon2id work factors of the PIN key derivation."""

    opslimit: int
    memlimit: int


def _pin_key(pin: str, salt: bytes, cost: KdfCost) -> bytes:
    return pwhash.argon2id.kdf(
        SecretBox.KEY_SIZE, pin.encode(), salt, opslimit=cost.opslimit, memlimit=cost.memlimit
    )


def seal(wallet_key: bytes, seed: bytes, pin: str, cost: KdfCost) -> tuple[bytes, bytes]:
    """The sealed seed and the salt of its PIN key."""
    salt = utils.random(pwhash.argon2id.SALTBYTES)
    inner = SecretBox(_pin_key(pin, salt, cost)).encrypt(seed)
    return bytes(SecretBox(wallet_key).encrypt(inner)), salt


def unseal(wallet_key: bytes, sealed: bytes, salt: bytes, pin: str, cost: KdfCost) -> bytes:
    """The seed of a sealed wallet; raises `WrongPinError` if `pin` does not open it."""
    inner = SecretBox(wallet_key).decrypt(sealed)  # a CryptoError here is a wrong wallet key: a server fault
    try:
        return SecretBox(_pin_key(pin, salt, cost)).decrypt(inner)
    except CryptoError as exc:
        raise WrongPinError("wrong PIN") from exc


def recovery_key(wallet_key: bytes) -> bytes:
    """The key of the recovery copies: a keyed BLAKE2b of the wallet key, so it needs no secret of its own."""
    return nacl_hash.blake2b(
        b"", key=wallet_key, person=b"pin-recovery", digest_size=SecretBox.KEY_SIZE, encoder=RawEncoder
    )


def seal_recovery(wallet_key: bytes, seed: bytes) -> bytes:
    """The recovery copy of a seed: opened by `open_recovery` for a caseworker's PIN reset."""
    return bytes(SecretBox(recovery_key(wallet_key)).encrypt(seed))


def open_recovery(wallet_key: bytes, recovery_sealed: bytes) -> bytes:
    """The seed of a recovery copy (a CryptoError here is a wrong wallet key: a server fault)."""
    return SecretBox(recovery_key(wallet_key)).decrypt(recovery_sealed)


def decoy(pin: str, cost: KdfCost) -> None:
    """The work `unseal` does, for a did with no wallet: the answer then takes as long as for a wrong PIN."""
    _pin_key(pin, utils.random(pwhash.argon2id.SALTBYTES), cost)


@dataclass(frozen=True)
class LockoutPolicy:
    """`attempts` wrong PINs in a row lock a did; the n-th lock lasts ``first_s * 2**(n-1)``, at most `max_s`."""

    attempts: int
    first_s: int
    max_s: int


@dataclass(frozen=True)
class PinGuard:
    """The wrong PINs given for a did since its last right one: in the current run (`failed`), and how often a
    run locked it (`lockouts`), until when."""

    failed: int = 0
    lockouts: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def after_wrong_pin(self, policy: LockoutPolicy, now: datetime) -> PinGuard:
        """The guard once one more wrong PIN was given (the did is not locked now)."""
        failed = self.failed + 1
        if failed < policy.attempts:
            return PinGuard(failed, self.lockouts, None)
        lockouts = self.lockouts + 1
        lock_s = min(policy.max_s, policy.first_s * 2 ** min(lockouts - 1, 62))
        return PinGuard(0, lockouts, now + timedelta(seconds=lock_s))

    def attempts_left(self, policy: LockoutPolicy) -> int:
        return policy.attempts - self.failed
