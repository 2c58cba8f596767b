"""Ledger service settings (env prefix ``LEDGER_``)."""

import os

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common import didkey

SERVICE = "ledger"


class LedgerSettings(BaseSettings):
    """The ledger's own options; platform-wide ones are `PlatformSettings`."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    port: int = 8103
    seal_interval_ms: int = Field(
        default=250,
        ge=10,
        description="How often pending transactions are sealed when the sealer was not told they settled (the "
        "settlement consumers tell it: their rewards are sealed at once).",
    )
    max_block_txs: int = Field(
        default=10_000,
        ge=1,
        description="Most transactions in one block; a backlog seals at once in several.",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="base64url 32-byte Ed25519 seed of the ledger key. Unset (development): generated once "
        "into <SMARTCITY_DATA_DIR>/ledger/signing.key and reused.",
    )
    genesis_supply: int = Field(
        default=1_000_000_000 * 1_000_000,
        gt=0,
        description="micro-CITY the treasury issues into the rewards pool at genesis (first start only).",
    )
    consumer_group: str = Field(default="ledger", description="Consumer group of the settlement consumer.")
    consumer_batch_size: int = Field(
        default=2000, ge=1, description="Rewards settled per database transaction."
    )
    issuer_keys: str = Field(
        default="",
        description="Comma-separated did:keys seeded into the issuer role when the chain is bootstrapped "
        "(later changes are root-signed chain records).",
    )
    root_key: str | None = Field(
        default=None,
        description="did:key of the city's root key, recorded once in the chain's bootstrap record; it grants "
        "and revokes roles and may rotate itself by signed records. Unset (development): the key of "
        "<SMARTCITY_DATA_DIR>/city/root.key, and each service role seeded with that data dir's service key.",
    )
    genesis_roles: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Roles seeded into the bootstrap record, as JSON {"rewards-oracle": ["did:key:..."], ...}.',
    )
    balance_readers: list[str] = Field(
        default_factory=list,
        description="did:keys (JSON list) that may read any account's balances, not its transactions, by signed "
        "read: a service answering for people (identity: whether a notice's aid_zone group holds AID). "
        "Unset (development): the data dir's identity key. Auditors (the chain's auditor role) read both.",
    )
    aid_expiry_interval_s: float = Field(
        default=1.0, gt=0, description="How often unspent AID of expired grants returns to the aid pool."
    )
    retry_after_s: int = Field(
        default=5,
        ge=1,
        description="Retry-After of a 503: the database did not answer (connection refused, "
        "pool timeout, connection dropped).",
    )
    circulation_cache_s: float = Field(
        default=30.0,
        ge=0,
        description="How long the public circulation report (GET /v1/circulation) is kept before it is summed "
        "again: a public request must not make the database scan months of postings each time.",
    )
    consumers: int = Field(
        default=2,
        ge=1,
        description="Members of the settlement consumer group in this process; one verifies while another "
        "commits.",
    )
    verify_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=0,
        description="Worker processes verifying rewards' signed evidence (0: a thread of the ledger process).",
    )

    @field_validator("root_key")
    @classmethod
    def _root_is_a_did_key(cls, value: str | None) -> str | None:
        if value is not None and not didkey.is_did_key(value):
            raise ValueError(f"{value!r} is not an Ed25519 did:key")
        return value

    @field_validator("issuer_keys")
    @classmethod
    def _issuer_keys_are_did_keys(cls, value: str) -> str:
        for key in filter(None, (k.strip() for k in value.split(","))):
            if not didkey.is_did_key(key):
                raise ValueError(f"{key!r} is not an Ed25519 did:key")
        return value

    @property
    def issuers(self) -> frozenset[str]:
        """The did:keys holding the issuer role."""
        return frozenset(filter(None, (k.strip() for k in self.issuer_keys.split(","))))

    @property
    def merchants_group(self) -> str:
        """Consumer group folding ``city.merchants.v1`` (derived, so each ledger deployment has its own)."""
        return f"{self.consumer_group}-merchants"
