"""The ledger's signing key: from LEDGER_SIGNING_KEY, else (development) a key file under the data dir."""

from __future__ import annotations

from pathlib import Path

from services.common.keyfiles import load_keypair, parse_secret
from services.common.signing import Keypair
from services.ledger.settings import SERVICE, LedgerSettings

KEY_FILE = "signing.key"


def key_path(data_dir: Path) -> Path:
    return data_dir / SERVICE / KEY_FILE


def parse_seed(text: str) -> Keypair:
    """The keypair of a base64url (padding optional) 32-byte Ed25519 seed."""
    return Keypair.from_seed(parse_secret(text, "the ledger signing key"))


def load_signing_key(settings: LedgerSettings, data_dir: Path) -> Keypair:
    """The ledger key: LEDGER_SIGNING_KEY if set, else the key file under `data_dir`, created (0600) on first
    use and reused (two processes starting at once end up with the same key)."""
    return load_keypair(settings.signing_key, key_path(data_dir))
