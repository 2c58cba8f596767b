"""What a search asks for, and the geometry and query text it needs (pure, no I/O)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG); the SQL distance uses the same constant
_KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 8
# Trigram word similarity at which a query word matches a word of a name: "bakry" ~ "Bakery" is 0.5.
DEFAULT_TYPO_SIMILARITY = 0.45


@dataclass(frozen=True)
class Location:
    """A point and the radius around it that results must fall within."""

    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True)
class SearchQuery:
    """A search, every part optional; `at_minute` (minute of the week, city time) is set for open_now."""

    text: str | None = None
    location: Location | None = None
    categories: tuple[str, ...] = ()
    accepts: tuple[str, ...] = ()
    at_minute: int | None = None
    local_only: bool = False
    limit: int = 50
    offset: int = 0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(location: Location) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) of a box holding every point within the radius.

    The index answers "in the box" fast; the exact distance then drops the box's corners. Near a pole, or
    across the antimeridian, the box widens to every longitude rather than miss anything.
    """
    dlat = location.radius_km / _KM_PER_DEGREE
    min_lat, max_lat = max(-90.0, location.lat - dlat), min(90.0, location.lat + dlat)
    widest = max(abs(min_lat), abs(max_lat))
    cos_lat = math.cos(math.radians(widest))
    dlon = 180.0 if cos_lat < 1e-6 else location.radius_km / (_KM_PER_DEGREE * cos_lat)
    if dlon >= 180.0 or location.lon - dlon < -180.0 or location.lon + dlon > 180.0:
        return -180.0, min_lat, 180.0, max_lat
    return location.lon - dlon, min_lat, location.lon + dlon, max_lat


def query_words(text: str) -> list[str]:
    """The words of a query (at most `MAX_QUERY_WORDS`), lower case; punctuation and operators dropped."""
    return [w.lower() for w in _WORD.findall(text)][:MAX_QUERY_WORDS]


def prefix_tsquery(text: str, weights: str = "") -> str:
    """A PostgreSQL tsquery matching every word of `text` as a prefix (``bak`` finds ``bakery``), only in the
    parts of the document of `weights` (e.g. ``"A"``, the name) if given.

    Only word characters pass, so no user input can form tsquery syntax; empty if `text` has no words.
    """
    return " & ".join(f"{word}:*{weights}" for word in query_words(text))
