"""The ledger's signing key (LEDGER_SIGNING_KEY, else a development key file under the data dir), and the
root key and roles its chain is bootstrapped with."""

from __future__ import annotations

from pathlib import Path

from services.common import roles
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


def bootstrap_authority(settings: LedgerSettings, data_dir: Path) -> tuple[str, dict[str, list[str]]]:
    """The root key's did and the seeded roles of the chain's bootstrap record.

    From LEDGER_ROOT_KEY, LEDGER_GENESIS_ROLES and LEDGER_ISSUER_KEYS; with no root key configured
    (development), the data dir's root key, and every service role not configured seeded with the data dir's
    key of the service that holds it (the auditor role with its auditor key), so the platform runs with no
    settings at all.
    """
    seeds = {role: list(keys) for role, keys in settings.genesis_roles.items()}
    if settings.issuers:
        seeds[roles.Role.ISSUER] = sorted({*seeds.get(roles.Role.ISSUER, []), *settings.issuers})
    if settings.root_key is not None:
        return settings.root_key, seeds
    for role in roles.SERVICE_KEYS:
        seeds.setdefault(role, [roles.service_key(None, data_dir, role).did])
    seeds.setdefault(roles.Role.AUDITOR, [roles.auditor_key(data_dir).did])
    return roles.root_key(data_dir).did, seeds
