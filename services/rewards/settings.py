"""Rewards processor settings (env prefix ``REWARDS_``)."""

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE = "rewards"
DEFAULT_POLICY = Path(__file__).resolve().parent / "policies" / "city.yaml"


class RewardsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REWARDS_", extra="ignore")

    web_port: int = Field(
        default=8102, description="Port of the worker's web server (/metrics, /healthz, /readyz)."
    )
    app_id: str = Field(
        default="smartcity-rewards",
        min_length=1,
        description="Faust app id: the workers' consumer group (any number of workers share its partitions "
        "and decide as one), the 'consumer' named in DLQ records, and the prefix of Faust's own topics.",
    )
    oracle_key: SecretStr | None = Field(
        default=None,
        description="base64url 32-byte Ed25519 seed of the key attesting the rewards this worker publishes "
        "(it must hold the rewards-oracle role on the chain). Unset: <SMARTCITY_DATA_DIR>/rewards/oracle.key, "
        "generated on first use (development).",
    )
    previous_oracles: list[str] = Field(
        default_factory=list,
        description="did:keys (JSON list) the worker's oracle key had before a rotation: a recovery still reads "
        "the decisions and snapshots they attested (a worker reads back only what its own keys attested).",
    )
    ingest_attestors: list[str] = Field(
        default_factory=list,
        description="did:keys holding the ingest-attestor role, whose attested readings are decided (JSON "
        "list). Empty: the key of <SMARTCITY_DATA_DIR>/ingest/attestor.key (development). The ledger checks "
        "the role on the chain again before a reward settles.",
    )
    ledger_url: str = Field(
        default="http://127.0.0.1:8103",
        description="The ledger the policies in force are published to (POST /v1/policies) before any reward "
        "names them. Empty: not published by the worker (the ledger then refuses its rewards until the policy "
        "is on the chain).",
    )
    policy_path: Path = Field(
        default=DEFAULT_POLICY, description="The reward policy file (YAML, schemas/policy.v1.json)."
    )
    policy_reload_s: float = Field(
        default=2.0, gt=0, description="How often the policy file is checked for a new version."
    )
    verify_workers: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 2) - 1),
        ge=0,
        description="Worker processes checking the readings' signatures while the worker decides earlier "
        "batches (0: checked in the worker process itself).",
    )
    batch_size: int = Field(
        default=2000,
        ge=1,
        description="Most readings handled in one batch (a batch is taken once full, or after batch_wait_s).",
    )
    batch_wait_s: float = Field(
        default=0.1, gt=0, description="Longest wait for a batch to fill before handling what arrived."
    )
    recent_decisions: int = Field(
        default=20000,
        ge=1000,
        description="Decisions remembered by reading id, so a redelivered reading gets the same rewards; "
        "at least a few batches' worth.",
    )
    rebuild_horizon_s: float = Field(
        default=25 * 3600,
        gt=0,
        description="How far back (broker time) a partition's state is rebuilt from city.reward-decisions.v1 "
        "after a start or a rebalance when it has no snapshot: the longest cap window (a day) and some.",
    )
    snapshot_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="How often the state of each readings partition that decided something is written to "
        "city.rewards-snapshots.v1: a restart reads its latest snapshot and the decisions since.",
    )
    snapshot_recent_s: float = Field(
        default=30.0,
        gt=0,
        description="How far before a snapshot's capture a restart reads the decisions back, to know them by "
        "reading id (a redelivery from before the last commit): longer than the commit interval, by far.",
    )
    zone_stats_grace_s: float = Field(
        default=5.0, ge=0, description="How long after its end a minute's window still takes late readings."
    )
    zone_stats_idle_s: float = Field(
        default=2.0,
        ge=0,
        description="A window whose end has passed by the clock is closed once idle for this long.",
    )
    zone_stats_max_wait_s: float = Field(
        default=60.0,
        gt=0,
        description="How long after its end the zone stage waits for every readings partition to close a "
        "window before publishing it with what came (a partition no worker holds).",
    )
    consent_history_s: float = Field(
        default=3 * 86400,
        gt=0,
        description="How far back the consent in force at a reading's time is known, per subject and "
        "category (city.consents.v1): at least the policy's longest late_s (at most two days) and some. A "
        "reading older than that earns nothing (no-consent, status unknown).",
    )
    consents_sync_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long the worker waits, before deciding a batch, for its consent view to fold every "
        "consent change on city.consents.v1; it retries (the batch waits) until it has.",
    )
