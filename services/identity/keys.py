"""The identity service's secrets: the city's identity key (signs credentials, status lists and receipts) and
the key sealing custodial wallets. Each comes from settings, else (development) a file under the data dir."""

from __future__ import annotations

from pathlib import Path

from services.common.bindings import CITY_KEY_FILE
from services.common.keyfiles import load_keypair, load_secret
from services.common.signing import Keypair
from services.identity.settings import SERVICE, IdentitySettings


def city_keypair(settings: IdentitySettings, data_dir: Path) -> Keypair:
    """The city's identity key (IDENTITY_CITY_KEY, else generated into the data dir)."""
    return load_keypair(settings.city_key, data_dir / CITY_KEY_FILE)


def wallet_key(settings: IdentitySettings, data_dir: Path) -> bytes:
    """The SecretBox key sealing custodial wallets (IDENTITY_WALLET_KEY, else generated into the data dir)."""
    return load_secret(settings.wallet_key, data_dir / SERVICE / "wallet.key")
