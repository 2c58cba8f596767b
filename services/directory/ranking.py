"""The local-first ranking of search results (pure); docs/directory-ranking.md explains it.

    score = w_text * text + w_distance * proximity + w_local * local

- ``text`` in [0, 1]: how well the query matches (PostgreSQL full-text rank or trigram word similarity of the
  name, whichever is higher); 0 without a query.
- ``proximity`` in (0, 1]: ``1 / (1 + distance_km / half_distance_km)``, so 1 at the door and 0.5 at the
  half distance; 0 without a location.
- ``local`` in [0, 1]: 1 for a locally owned business the city verified, ``unverified_local`` for one that
  only says it is locally owned, 0 for a chain.

The local boost is bounded by ``w_local``, so a local business overtakes a chain only when their relevance and
distance are similar: a far better text match or a much nearer shop still wins. The database computes the
same formula (``services.directory.store``) so that it can order and page; this module is its reference.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankingWeights:
    """The tunable constants of the ranking (settings ``DIRECTORY_RANK_*``)."""

    text: float = 1.0
    distance: float = 0.6
    local: float = 0.25
    half_distance_km: float = 1.0
    unverified_local: float = 0.4


@dataclass(frozen=True)
class ScoreParts:
    """A result's weighted score parts and their sum, as the API shows them."""

    text: float
    distance: float
    local: float

    @property
    def total(self) -> float:
        return self.text + self.distance + self.local

    def as_json(self) -> dict[str, float]:
        """The parts rounded for display (the order uses the exact values)."""
        parts = {"text": self.text, "distance": self.distance, "local": self.local, "total": self.total}
        return {name: round(value, 4) for name, value in parts.items()}


def proximity(distance_km: float | None, weights: RankingWeights) -> float:
    """1 at distance 0, 0.5 at the half distance, towards 0 far away; 0 when the distance is unknown."""
    if distance_km is None:
        return 0.0
    return 1.0 / (1.0 + distance_km / weights.half_distance_km)


def local_signal(locally_owned: bool, verified: bool, weights: RankingWeights) -> float:
    """1 for a verified local business, a share of it for a self-declared one, 0 for a chain."""
    if not locally_owned:
        return 0.0
    return 1.0 if verified else weights.unverified_local


def score(
    text: float, distance_km: float | None, locally_owned: bool, verified: bool, weights: RankingWeights
) -> ScoreParts:
    """The weighted parts of one result's score."""
    return ScoreParts(
        text=weights.text * text,
        distance=weights.distance * proximity(distance_km, weights),
        local=weights.local * local_signal(locally_owned, verified, weights),
    )
