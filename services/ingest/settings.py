"""Ingest service settings (env prefix ``INGEST_``)."""

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common import didkey

SERVICE = "ingest"


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore")

    port: int = 8101
    attestor_key: SecretStr | None = Field(
        default=None,
        description="base64url 32-byte Ed25519 seed of the key attesting the readings ingest publishes (it "
        "must hold the ingest-attestor role on the chain). Unset: <SMARTCITY_DATA_DIR>/ingest/attestor.key, "
        "generated on first use (development).",
    )
    max_batch_size: int = Field(default=1000, ge=1, description="Most readings one request may carry.")
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest request body accepted."
    )
    max_reading_bytes: int = Field(
        default=4096, ge=256, description="Largest reading accepted (its JCS bytes and signature)."
    )
    max_ahead_s: float = Field(
        default=300.0, ge=0, description="How far a reading's ts may be ahead of the ingest clock."
    )
    max_age_s: float = Field(
        default=86_400.0, gt=0, description="How old a reading's ts may be (devices buffer while offline)."
    )
    device_rate_per_s: float = Field(
        default=10.0,
        gt=0,
        description="Readings per second a device may send, counted across every ingest instance (in the "
        "database).",
    )
    device_burst: float = Field(default=100.0, ge=1, description="Readings a device may send at once.")
    operators: list[str] = Field(
        default_factory=list,
        description="did:keys of the city operators, who register city devices (the recycling stations, "
        "transit gates, smart meters... whose receipts attest behaviour) and may revoke any device (JSON list "
        "in the env). Empty: the did of <SMARTCITY_DATA_DIR>/city/operator.key (development).",
    )
    device_cache_ttl_s: float = Field(
        default=30.0, ge=0, description="How long a device registration stays cached in memory (0: no cache)."
    )
    device_cache_size: int = Field(default=100_000, ge=1, description="Most registrations kept in the cache.")
    check_workers: int = Field(
        default=2, ge=1, description="Threads that check readings (schema, signature) off the event loop."
    )
    consents_start_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long startup waits for the broker before serving without consents (readings that "
        "need one get 503 until the consent view has caught up; it keeps retrying meanwhile).",
    )
    consents_ready_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long startup waits for the consent view to read city.consents.v1.",
    )
    consents_max_age_s: float = Field(
        default=5.0,
        gt=0,
        description="Readings get 503 when the consent view has not heard from the broker for this long "
        "(a revocation must take effect within 5 s).",
    )
    binding_issuers: list[str] = Field(
        default_factory=list,
        description="did:keys of the issuers whose resident credentials bind wallets to people "
        "(city.bindings.v1): the identity service's city key (IDENTITY_CITY_KEY). Empty: the did of "
        "<SMARTCITY_DATA_DIR>/identity/city.key (development).",
    )
    retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After of a 503: the broker or the database is down."
    )
    rewards_oracles: list[str] = Field(
        default_factory=list,
        description="did:keys of the rewards workers' oracle key (REWARDS_ORACLE_KEY), whose attested "
        "decisions (city.reward-decisions.v1) are kept for people to read (JSON list); a decisions record "
        "another key attested, or none, goes to the topic's DLQ. Empty: the did of "
        "<SMARTCITY_DATA_DIR>/rewards/oracle.key (development).",
    )
    decisions_group: str = Field(
        default="ingest-decisions",
        description="Consumer group following city.reward-decisions.v1 into the decisions people read.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="mqtt://host:port of the MQTT broker the bridge subscribes to; unset: no MQTT bridge.",
    )
    mqtt_topic_prefix: str = Field(
        default="", description="Prefix of the bridge's topics (before city/devices/...)."
    )
    mqtt_share_group: str = Field(
        default="smartcity-ingest",
        pattern=r"^[^/+#]*$",
        description="MQTT shared subscription group of the bridges ($share/<group>/...): the broker hands "
        "each message to one bridge of the group, so ingest instances split the devices' readings. Every "
        "instance of one deployment uses the same group; empty: no sharing (each instance takes every "
        "reading).",
    )
    mqtt_batch_size: int = Field(default=500, ge=1, description="Most MQTT readings checked as one batch.")
    mqtt_batch_wait_ms: int = Field(
        default=20, ge=0, description="How long the bridge gathers MQTT readings into a batch."
    )

    @field_validator("rewards_oracles")
    @classmethod
    def _oracles_are_did_keys(cls, value: list[str]) -> list[str]:
        # A placeholder left in a deployment (CHANGE-ME) would send every decision to the DLQ: refuse to start.
        if wrong := [key for key in value if not didkey.is_did_key(key)]:
            raise ValueError(f"INGEST_REWARDS_ORACLES holds what is not a did:key: {wrong}")
        return value
