"""Directory service settings (env prefix ``DIRECTORY_``)."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common import didkey
from services.directory.ranking import RankingWeights
from services.directory.search import DEFAULT_TYPO_SIMILARITY

SERVICE = "directory"


class DirectorySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIRECTORY_", extra="ignore")

    port: int = 8105
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=200, ge=1)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest request body accepted.")
    retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After of a 503: the broker or the database is down."
    )
    publisher_key: SecretStr | None = Field(
        default=None,
        description="base64url 32-byte Ed25519 seed of the key attesting the merchants' facts the directory "
        "publishes to city.merchants.v1 (it must hold the merchant-verifier role on the chain). Unset: "
        "<SMARTCITY_DATA_DIR>/directory/publisher.key, generated on first use (development).",
    )
    verifier_keys: list[str] = Field(
        default_factory=list,
        description="did:keys holding the city's directory role: they sign merchant verifications. A JSON "
        "list, e.g. DIRECTORY_VERIFIER_KEYS='[\"did:key:z6Mk...\"]'; rotate by adding the new key, then "
        "removing the old one (verifications it signed stay valid).",
    )
    city_timezone: str = Field(
        default="Europe/Amsterdam", description="IANA time zone of the city: opening hours are in its time."
    )
    default_radius_km: float = Field(
        default=5.0, gt=0, description="Search radius when a location is given without radius_km."
    )
    max_radius_km: float = Field(default=50.0, gt=0, description="Largest radius_km accepted.")
    typo_similarity: float = Field(
        default=DEFAULT_TYPO_SIMILARITY,
        gt=0,
        le=1,
        description="Trigram word similarity at which a query matches a name despite typos (pg_trgm).",
    )
    rank_text: float = Field(default=RankingWeights.text, ge=0, description="Weight of text relevance.")
    rank_distance: float = Field(default=RankingWeights.distance, ge=0, description="Weight of proximity.")
    rank_local: float = Field(
        default=RankingWeights.local, ge=0, description="Weight of being a verified locally owned business."
    )
    rank_half_distance_km: float = Field(
        default=RankingWeights.half_distance_km, gt=0, description="Distance at which proximity is one half."
    )
    rank_unverified_local: float = Field(
        default=RankingWeights.unverified_local,
        ge=0,
        le=1,
        description="Share of the local weight a business gets that says it is local but is not verified.",
    )

    @field_validator("verifier_keys")
    @classmethod
    def _did_keys(cls, value: list[str]) -> list[str]:
        for did in value:
            didkey.decode(did)  # raises a clear error at start-up rather than refusing every verification
        return value

    @field_validator("city_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.city_timezone)

    @property
    def ranking(self) -> RankingWeights:
        """The ranking constants these settings give."""
        return RankingWeights(
            text=self.rank_text,
            distance=self.rank_distance,
            local=self.rank_local,
            half_distance_km=self.rank_half_distance_km,
            unverified_local=self.rank_unverified_local,
        )
