"""Directory service settings (env prefix ``DIRECTORY_``)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE = "directory"


class DirectorySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIRECTORY_", extra="ignore")

    port: int = 8105
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=200, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body accepted.")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503 when the broker is down.")
