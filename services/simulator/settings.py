"""Sensor simulator settings (env prefix ``SIMULATOR_``)."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIMULATOR_", extra="ignore")

    ingest_url: str = "http://127.0.0.1:8101"
    identity_url: str = "http://127.0.0.1:8104"
    wallets: int = 40
    devices: int = 300
    readings_per_second: float = 200.0
    batch_size: int = 100
    seed: str = "smartcity-dev"
