"""Rewards processor settings (env prefix ``REWARDS_``)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.rewards.rules import MAX_MICRO_UNITS, NAME_PATTERN

SERVICE = "rewards"


class RewardsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REWARDS_", extra="ignore")

    web_port: int = Field(
        default=8102, description="Port of the worker's web server (/metrics, /healthz, /readyz)."
    )
    app_id: str = Field(
        default="smartcity-rewards",
        min_length=1,
        description="Faust app id: the consumer group every replica joins (they share the partitions), the "
        "'consumer' named in DLQ records, and the prefix of Faust's own topics.",
    )
    flat_amount: int = Field(
        default=1000,
        ge=1,
        le=MAX_MICRO_UNITS,
        description="Micro-CITY paid per valid reading (1000 = 0.001 CITY).",
    )
    rule: str = Field(
        default="flat",
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="Name of the flat rule.",
    )
    policy_version: str = Field(
        default="v1", min_length=1, max_length=64, description="Version stamped on every reward."
    )
    batch_size: int = Field(default=500, ge=1, description="Most readings handled in one batch.")
    batch_wait_s: float = Field(
        default=0.1, gt=0, description="Longest wait for a batch to fill before handling what arrived."
    )
