"""The directory's answers as models (what its OpenAPI document shows, and what each route's answer is checked
against), and examples of its requests, made of real keys and signatures (`services.common.openapi`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from services.common.openapi import example_key, examples
from services.directory.categories import CATEGORIES
from services.directory.merchants import registration_hash

BAKERY, VERIFIER = example_key("bakery"), example_key("verifier")
TIME = "2026-03-14T09:26:53Z"
REGISTRATION = BAKERY.sign(
    {
        "wallet": BAKERY.did,
        "name": "Harbour Bakery",
        "category": "food",
        "locally_owned": True,
        "accepts": ["CITY", "AID", "CREDIT"],
        "address": "3 Quay Street",
        "lat": 52.3734,
        "lon": 4.8951,
        "hours": {"mon": ["07:00-18:00"], "sat": ["08:00-14:00"]},
        "issued_at": TIME,
    }
)
VERIFICATION = VERIFIER.sign(
    {
        "merchant": BAKERY.did,
        "registration": registration_hash(REGISTRATION),
        "category": "food",
        "locally_owned": True,
        "verified_at": TIME,
        "verifier": VERIFIER.did,
    }
)
FACTS = {
    "wallet": BAKERY.did,
    "name": "Harbour Bakery",
    "category": "food",
    "locally_owned": True,
    "verified": True,
    "accepts": ["CITY", "AID", "CREDIT"],
    "address": "3 Quay Street",
    "lat": 52.3734,
    "lon": 4.8951,
    "hours": {"mon": ["07:00-18:00"], "sat": ["08:00-14:00"]},
}
MERCHANT = {
    **FACTS,
    "active": True,
    "updated_at": TIME,
    "registration": REGISTRATION,
    "verification": VERIFICATION,
    "registered_at": TIME,
}
HIT = {
    **FACTS,
    "distance_km": 0.412,
    "open_now": True,
    "score": {"text": 1.0, "distance": 0.4249, "local": 0.25, "total": 1.6749},
}


class Facts(BaseModel):
    """A merchant's facts: category and locally_owned are the city's findings once verified, else its claims."""

    wallet: str
    name: str
    category: str
    locally_owned: bool
    verified: bool
    accepts: list[str]
    address: str | None = None
    lat: float | None = None
    lon: float | None = None
    description: str | None = None
    chain: str | None = Field(None, description="The brand of the chain it belongs to.")
    hours: dict[str, list[str]] | None = Field(
        None, description='In the city\'s time: {"mon": ["08:00-18:00"]}.'
    )


class Merchant(Facts):
    """A merchant, its signed registration and, once the city verified it, the signed verification."""

    model_config = examples(MERCHANT)
    active: bool
    updated_at: str
    registration: dict[str, Any] = Field(description="The registration its wallet signed.")
    verification: dict[str, Any] | None = Field(None, description="The verification a verifier key signed.")
    registered_at: str


class MerchantPage(BaseModel):
    """Merchants by name."""

    model_config = examples({"merchants": [MERCHANT], "total": 1, "limit": 50, "offset": 0})
    merchants: list[Merchant]
    total: int
    limit: int
    offset: int


class Score(BaseModel):
    text: float
    distance: float
    local: float
    total: float


class SearchHit(Facts):
    distance_km: float | None = Field(description="Null without lat and lon.")
    open_now: bool | None = Field(description="Null without opening hours.")
    score: Score = Field(description="The weighted parts of its rank (docs/directory-ranking.md).")


class SearchResults(BaseModel):
    """Local-first search results, the best first."""

    model_config = examples(
        {
            "results": [HIT],
            "total": 1,
            "limit": 20,
            "offset": 0,
            "ranking": {
                "text": 1.0,
                "distance": 0.6,
                "local": 0.25,
                "half_distance_km": 1.0,
                "unverified_local": 0.4,
            },
        }
    )
    results: list[SearchHit]
    total: int
    limit: int
    offset: int
    ranking: dict[str, float] = Field(description="The ranking's weights.")


class Alternatives(BaseModel):
    """Locally owned merchants for what a person would otherwise buy from a chain."""

    model_config = examples(
        {"to": "bread", "categories": ["food"], "alternatives": [HIT], "total": 1, "limit": 20, "offset": 0}
    )
    to: str
    categories: list[str]
    alternatives: list[SearchHit]
    total: int
    limit: int
    offset: int


class Categories(BaseModel):
    """The merchant categories and what each covers."""

    model_config = examples({"categories": dict(CATEGORIES)})
    categories: dict[str, str]
