"""Sensor simulator settings (env prefix ``SIMULATOR_``)."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.keyfiles import load_keypair
from services.common.roles import OPERATOR_KEY
from services.common.settings import PlatformSettings
from services.common.signing import Keypair


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMULATOR_", extra="ignore")

    ingest_url: str = "http://127.0.0.1:8101"
    identity_url: str = "http://127.0.0.1:8104"
    wallets: int = 40
    devices: int = 300
    readings_per_second: float = 200.0
    batch_size: int = 100
    seed: str = "smartcity-dev"
    operator_key: SecretStr | None = Field(
        default=None,
        description="base64url 32-byte Ed25519 seed of the city operator key that registers the simulated "
        "city devices (a key of INGEST_OPERATORS). Unset: <SMARTCITY_DATA_DIR>/city/operator.key, the one "
        "ingest trusts by default (development).",
    )

    def operator(self) -> Keypair:
        """The operator key registering the simulated city devices."""
        service, name = OPERATOR_KEY
        return load_keypair(self.operator_key, PlatformSettings().data_dir / service / f"{name}.key")
