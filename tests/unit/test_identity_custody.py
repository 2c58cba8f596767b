"""Custodial wallet sealing (pure): only the PIN and the wallet key together open it."""

from __future__ import annotations

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
