"""The AID holder key: derived from the wallet's seed alone, stable, and unlinkable to the wallet's did."""

from __future__ import annotations

from services.common.aid_holder import aid_holder
from services.common.signing import Keypair

VECTOR_SEED = bytes(range(32))
VECTOR_HOLDER = "did:key:z6MkrzC1whV6x8wveJrs6XGvuCoGJU1JB5brxi4HvacKHpK1"
"""The holder of the wallet with seed 00 01 .. 1f: computed once and recorded, so a wallet app in another
language can check its derivation against ours."""


def test_the_holder_key_is_the_recorded_derivation_of_the_wallet_seed() -> None:
    wallet = Keypair.from_seed(VECTOR_SEED)
    assert aid_holder(wallet).did == VECTOR_HOLDER
    assert aid_holder(Keypair.from_seed(VECTOR_SEED)).seed == aid_holder(wallet).seed


def test_holders_differ_from_their_wallets_and_from_each_other() -> None:
    wallets = [Keypair.generate() for _ in range(50)]
    holders = {aid_holder(w).did for w in wallets}
    assert len(holders) == 50
    assert holders.isdisjoint(w.did for w in wallets)
