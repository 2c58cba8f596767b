"""Portal settings (env prefix ``PORTAL_``)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    def upstreams(self) -> dict[str, str]:
        """Each service the pages may call, by the name in ``/api/<name>/...``, and its base URL."""
        return {
            "ingest": self.ingest_url,
            "rewards": self.rewards_url,
            "ledger": self.ledger_url,
            "identity": self.identity_url,
            "directory": self.directory_url,
        }
