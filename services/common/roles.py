"""The roles a key may hold, granted on the chain by the city's root key, and where each service's own key
lives in development.

Who holds a role is a fact of the chain (`services.ledger.authority`): the ledger and the verifier decide
from the chain alone whether a signer held a role when its record was sealed. Services that only need to
know whom to trust before the ledger looks again (rewards: whose attested readings to decide) take a list
from their settings, and in development the did of the other service's key file.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from services.common.keyfiles import load_keypair
from services.common.signing import Keypair


class Role(StrEnum):
    """A role on the chain: what a key holding it may sign."""

    ISSUER = "issuer"
    """Mints, funds pools, grants and revokes AID, freezes accounts."""
    REWARDS_ORACLE = "rewards-oracle"
    """Attests the rewards it decided (a batch signature over city.rewards.v1 records)."""
    INGEST_ATTESTOR = "ingest-attestor"
    """Attests readings that passed registration, consent and sequence checks (city.readings.v1)."""
    MERCHANT_VERIFIER = "merchant-verifier"
    """Attests the merchant facts the ledger enforces (city.merchants.v1)."""
    POLICY_PUBLISHER = "policy-publisher"
    """Publishes the reward policies rewards are decided under."""
    CASEWORKER = "caseworker"
    NOTICES = "notices"
    PROVIDER = "provider"
    CONSENT_ANCHOR = "consent-anchor"
    """Anchors the identity service's signed consent receipts on the chain (a Merkle root per batch)."""
    AUDITOR = "auditor"
    """Reads any wallet's balances and transactions (signed reads, `services.common.signed_reads`)."""


SERVICE_KEYS: dict[Role, tuple[str, str]] = {
    Role.INGEST_ATTESTOR: ("ingest", "attestor"),
    Role.REWARDS_ORACLE: ("rewards", "oracle"),
    Role.POLICY_PUBLISHER: ("rewards", "oracle"),
    Role.MERCHANT_VERIFIER: ("directory", "publisher"),
    Role.CONSENT_ANCHOR: ("identity", "city"),
}
"""Per role a service's own key holds: (service, key name); the development key file is
``<data dir>/<service>/<name>.key``."""


ROOT_KEY = ("city", "root")
"""Where the city's root key lives in development: ``<data dir>/city/root.key``. In production it stays off
the platform's machines: the ledger knows only its did (``LEDGER_ROOT_KEY``)."""


OPERATOR_KEY = ("city", "operator")
"""Where a city operator's key lives in development: ``<data dir>/city/operator.key``. Ingest trusts it (to
register city devices, and revoke any device) when ``INGEST_OPERATORS`` is not set, and the simulator
registers its city devices with it; in production operators hold their own keys, listed in that setting."""


AUDITOR_KEY = ("city", "auditor")
"""Where an auditor's key lives in development: ``<data dir>/city/auditor.key``. A development chain is
bootstrapped with it in the auditor role (which reads any account's balances and transactions, by signed read);
``smartcity up`` shows the top wallets with it. In production auditors hold their own keys, granted the role by
the root key (``smartcity authority grant auditor DID``)."""


def auditor_key(data_dir: Path) -> Keypair:
    """The development auditor key of `data_dir` (created on first use)."""
    service, name = AUDITOR_KEY
    return load_keypair(None, data_dir / service / f"{name}.key")


def operator_key(data_dir: Path) -> Keypair:
    """The development operator key of `data_dir` (created on first use)."""
    service, name = OPERATOR_KEY
    return load_keypair(None, data_dir / service / f"{name}.key")


def root_key(data_dir: Path) -> Keypair:
    """The development root key of `data_dir` (created on first use)."""
    service, name = ROOT_KEY
    return load_keypair(None, data_dir / service / f"{name}.key")


def key_path(data_dir: Path, role: Role) -> Path:
    service, name = SERVICE_KEYS[role]
    return data_dir / service / f"{name}.key"


def service_key(configured: SecretStr | None, data_dir: Path, role: Role) -> Keypair:
    """The key of the service holding `role`: `configured` (its setting) if set, else (development) its key
    file under `data_dir`, created on first use, which every other service of that data dir reads too."""
    return load_keypair(configured, key_path(data_dir, role))
