"""Identity service settings (env prefix ``IDENTITY_``).

Role keys are lists of did:keys (JSON in the environment, e.g. ``IDENTITY_CASEWORKERS='["did:key:z6Mk..."]'``);
rotating one is adding the new key, then removing the old one.
"""

from nacl import pwhash
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.identity.custody import LockoutPolicy

SERVICE = "identity"


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore")

    port: int = 8104
    public_url: str = Field(
        default="http://127.0.0.1:8104", description="Base URL of this service, named in credentials' status."
    )
    city_name: str = Field(default="Smart City", description="The resident_of claim of resident credentials.")
    city_key: SecretStr | None = Field(
        default=None,
        description="base64url Ed25519 seed of the city's identity key, which signs credentials, status lists "
        "and receipts; unset: generated into the data dir (development).",
    )
    wallet_key: SecretStr | None = Field(
        default=None,
        description="base64url 32-byte SecretBox key sealing custodial wallets at rest; unset: generated into "
        "the data dir (development).",
    )
    trusted_issuers: list[str] = Field(
        default_factory=list,
        description="Further did:keys whose credentials verify (earlier city keys, after a rotation).",
    )
    caseworkers: list[str] = Field(default_factory=list, description="did:keys that enrol custodial wallets.")
    issuers: list[str] = Field(
        default_factory=list, description="did:keys that order credentials and revocations."
    )
    notice_senders: list[str] = Field(default_factory=list, description="did:keys that post notices.")
    providers: list[str] = Field(
        default_factory=list, description="did:keys of service providers (shelters...)."
    )
    credential_days: int = Field(default=365, ge=1, description="How long a resident credential is valid.")
    wallets_per_person: int = Field(
        default=3,
        ge=1,
        description="Most wallets one resident credential binds (POST /v1/bindings); the reward policy's "
        "people.wallets_per_person says how many of them earn in a day.",
    )
    pin_attempts: int = Field(default=5, ge=1, description="Wrong PINs in a row before a wallet locks.")
    pin_lockout_s: int = Field(
        default=900,
        ge=1,
        description="How long the first lock lasts; each further lock lasts twice the one before.",
    )
    pin_lockout_max_s: int = Field(
        default=30 * 86400, ge=1, description="The longest a lock lasts (until a right PIN resets the count)."
    )
    pin_opslimit: int = Field(default=pwhash.argon2id.OPSLIMIT_INTERACTIVE, ge=pwhash.argon2id.OPSLIMIT_MIN)
    pin_memlimit: int = Field(default=pwhash.argon2id.MEMLIMIT_INTERACTIVE, ge=pwhash.argon2id.MEMLIMIT_MIN)
    pin_concurrency: int = Field(
        default=2, ge=1, description="PIN derivations at once (each takes pin_memlimit bytes of memory)."
    )
    request_skew_s: int = Field(default=300, ge=1, description="How old a signed request may be.")
    kb_max_age_s: int = Field(default=300, ge=1, description="How old a presentation's key binding may be.")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body accepted.")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503.")
    ledger_url: str = Field(
        default="http://127.0.0.1:8103",
        description="The ledger's base URL, where custodial wallets' signed transfers are submitted.",
    )
    ledger_timeout_s: float = Field(default=10.0, gt=0, description="How long a ledger call may take.")
    anchor_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the consent receipts not anchored yet are anchored on the ledger's chain (their "
        "Merkle root, signed by the city key, which must hold the consent-anchor role).",
    )
    ingest_url: str = Field(
        default="http://127.0.0.1:8101",
        description="Ingest's base URL, where a person's erasure request is forwarded (their devices, decisions).",
    )
    erasure_retry_s: float = Field(
        default=30.0,
        gt=0,
        description="How often the erasures a service has not done yet are forwarded to it again.",
    )
    statement_size: int = Field(
        default=20, ge=1, le=1000, description="Transactions a custodial wallet's statement lists."
    )

    @property
    def lockout(self) -> LockoutPolicy:
        """How wrong PINs lock a did (`custody.PinGuard`)."""
        return LockoutPolicy(self.pin_attempts, self.pin_lockout_s, self.pin_lockout_max_s)
