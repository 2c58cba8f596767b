"""Portal settings (env prefix ``PORTAL_``)."""

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.topics import ANALYST, CONSUMER_GROUPS

SERVICE = "portal"


class PortalSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore")

    port: int = 8106
    ingest_url: str = Field(default="http://127.0.0.1:8101", description="Where the pages' ingest calls go.")
    rewards_url: str = Field(
        default="http://127.0.0.1:8102", description="Where the pages' rewards calls go."
    )
    ledger_url: str = Field(default="http://127.0.0.1:8103", description="Where the pages' ledger calls go.")
    identity_url: str = Field(
        default="http://127.0.0.1:8104", description="Where the pages' identity calls go."
    )
    directory_url: str = Field(
        default="http://127.0.0.1:8105", description="Where the pages' directory calls go."
    )
    upstream_timeout_s: float = Field(
        default=15.0, gt=0, description="How long a service may take to answer."
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body passed on.")
    impact_client_id: str = Field(
        default=f"{CONSUMER_GROUPS[ANALYST]}-portal-impact",
        description="Kafka client id (and consumer group prefix) of the zone statistics the impact page reads: "
        "the portal reads city.zone-stats.v1 as the analysts do, so it must start with their group prefix.",
    )
    impact_horizon_s: int = Field(
        default=48 * 3600,
        ge=24 * 3600,  # readings come up to a day late (the policy's quality.late_s): their windows too
        description="How far behind a zone's newest window the impact fold still tells a window published again "
        "from a new one (services.portal.impact); older windows are ignored.",
    )
    impact_policy_refresh_s: float = Field(
        default=30.0,
        gt=0,
        description="How often the reward policy in force (its emission factors) is asked for.",
    )
    impact_start_timeout_s: float = Field(
        default=10.0, gt=0, description="How long one attempt to start reading the zone statistics may take."
    )

    @field_validator("impact_client_id")
    @classmethod
    def _an_analyst_group(cls, value: str) -> str:
        # The broker's ACLs let the analyst principal use only groups of its prefix: fail at start, not later.
        if not value.startswith(CONSUMER_GROUPS[ANALYST]):
            raise ValueError(
                f"must start with {CONSUMER_GROUPS[ANALYST]!r}, the analysts' consumer group prefix"
            )
        return value

    def upstreams(self) -> dict[str, str]:
        """Each service the pages may call, by the name in ``/api/<name>/...``, and its base URL."""
        return {
            "ingest": self.ingest_url,
            "rewards": self.rewards_url,
            "ledger": self.ledger_url,
            "identity": self.identity_url,
            "directory": self.directory_url,
        }
