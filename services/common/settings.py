"""Settings shared by every service, read from the environment (12-factor).

Every service runs with no settings at all: the Kafka and database URLs then point at the embedded
stack that `smartcity up` starts (see `services.stack.embedded`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KAFKA_PORT = 9092


class PlatformSettings(BaseSettings):
    """Settings every process of the platform reads, without a prefix."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means the embedded broker."
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL server URL; each service uses its own database on it. "
        "Unset means the embedded PostgreSQL under the data dir.",
    )
    database_prefix: str = Field(
        default="smartcity_", description="Each service's database is named <prefix><service>."
    )
    smartcity_data_dir: Path = Field(default=Path(".smartcity"), description="Where embedded state lives.")
    bind_host: str = Field(default="127.0.0.1", description="Address HTTP servers listen on.")
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    kafka_session_timeout_ms: int = Field(
        default=6000, description="Consumer-group session timeout; joins take about half of it."
    )
    kafka_send_timeout_s: float = Field(default=10.0, description="Deadline for a broker acknowledgement.")
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="lz4",
        description="Compression of the record batches the platform produces. Against the embedded broker on "
        "this host none made no measurable difference (python -m bench e2e, 3 runs each way, 2026-12-02).",
    )
    readings_per_record: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most readings ingest puts in one city.readings.v1 record (a batch record: an envelope a "
        "line under one attestation), and what the rewards worker sizes its batches by. More spares the broker "
        "and the rewards worker their per-record costs; 1 keeps one reading a record.",
    )
    rewards_per_record: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Most rewards the rewards worker puts in one city.rewards.v1 record (a batch record: a reward "
        "a line under one attestation of their public parts, those of one partition), and what the ledger sizes "
        "its settlement batches by. More spares the broker and the ledger their per-record costs; 1 keeps one "
        "reward a record.",
    )
    consumer_stall_s: float = Field(
        default=120.0,
        gt=0,
        description="A consumer holding records it has committed nothing of for this long is stuck: the "
        "service turns not-ready and exits non-zero, to be started again.",
    )
    http_header_timeout_s: float = Field(
        default=10.0, gt=0, description="How long an HTTP client may take to send a request's headers."
    )
    signed_read_skew_s: int = Field(
        default=300,
        ge=1,
        description="How far a signed read's `created` may be from the server's time (services.common.signed_reads).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        default="PLAINTEXT",
        description="How clients meet the broker: SASL_SSL (or SASL_PLAINTEXT inside a private network) "
        "where ACLs are enforced; the embedded development broker is PLAINTEXT on 127.0.0.1.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = Field(
        default=None,
        description="The service's Kafka principal (User:<name>), whose ACLs say what it may do.",
    )
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = Field(
        default=None, description="CA certificate file the broker's TLS certificate is checked against."
    )

    @property
    def data_dir(self) -> Path:
        return self.smartcity_data_dir.expanduser().resolve()

    def kafka_security(self) -> dict[str, str]:
        """librdkafka settings of the credentials above (empty for PLAINTEXT)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        config = {"security.protocol": self.kafka_security_protocol.lower()}
        if self.kafka_security_protocol.startswith("SASL"):
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username or ""
            config["sasl.password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            )
        if self.kafka_ssl_ca_location:
            config["ssl.ca.location"] = self.kafka_ssl_ca_location
        return config

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{DEFAULT_KAFKA_PORT}"
