"""Ledger service settings (env prefix ``LEDGER_``)."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE = "ledger"


class LedgerSettings(BaseSettings):
    """The ledger's own options; platform-wide ones are `PlatformSettings`."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    port: int = 8103
    seal_interval_ms: int = Field(
        default=250, ge=10, description="How often pending transactions are sealed."
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
