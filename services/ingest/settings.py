"""Ingest service settings (env prefix ``INGEST_``)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE = "ingest"


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    port: int = 8101
    max_batch_size: int = Field(default=1000, ge=1, description="Most readings one request may carry.")
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest request body accepted."
    )
    device_cache_ttl_s: float = Field(
        default=30.0, ge=0, description="How long a device registration stays cached in memory (0: no cache)."
    )
    device_cache_size: int = Field(default=100_000, ge=1, description="Most registrations kept in the cache.")
    check_workers: int = Field(
        default=2, ge=1, description="Threads that check readings (schema, signature) off the event loop."
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503 when the broker is down.")
