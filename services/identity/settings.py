"""Identity service settings (env prefix ``IDENTITY_``)."""

from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE = "identity"


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")

    port: int = 8104
