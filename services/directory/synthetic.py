"""A synthetic city's merchants, for development and benchmarks (pure and deterministic for a given seed).

Neighbourhoods scattered over about 16 km around the city centre, merchants clustered around them; a mix of
locally owned businesses (most verified by the city) and branches of fictional national chains; names,
descriptions, addresses, opening hours and accepted currencies drawn from each category's vocabulary. Every
registration is signed by the merchant's own key and every verification by the given city key, exactly as
the API would receive them.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.common.events import rfc3339
from services.common.signing import Keypair
from services.directory.categories import CATEGORY_TERMS
from services.directory.merchants import registration_hash

CENTRE = (52.3676, 4.9041)
CITY_RADIUS_KM = 8.0
NEIGHBOURHOODS = 40
CHAIN_SHARE = 0.2
AID_CATEGORIES = ("food", "grocery", "shelter", "health", "transit", "pharmacy")

_CATEGORY_WEIGHTS = {
    "food": 25,
    "grocery": 10,
    "shelter": 2,
    "health": 7,
    "transit": 3,
    "pharmacy": 4,
    "clothing": 12,
    "repair": 6,
    "education": 5,
    "services": 14,
    "other": 12,
}
_NOUNS = {
    "food": ("Bakery", "Café", "Kitchen", "Pizzeria", "Bistro", "Noodle Bar", "Deli", "Soup Kitchen"),
    "grocery": ("Market", "Greengrocer", "Butcher", "Cheese Shop", "Grocery", "Organic Store"),
    "shelter": ("Night Shelter", "Hostel", "Housing Point", "Guesthouse"),
    "health": ("Clinic", "Dental Care", "Physiotherapy", "Health Centre", "Opticians"),
    "transit": ("Bike Shop", "Cycle Hire", "Taxi", "Scooter Rental"),
    "pharmacy": ("Pharmacy", "Apotheek", "Chemist"),
    "clothing": ("Boutique", "Shoes", "Tailors", "Vintage", "Denim", "Fashion"),
    "repair": ("Repair Café", "Phone Repair", "Cobbler", "Electronics Repair", "Bike Repair"),
    "education": ("Bookshop", "Language School", "Tutoring", "Stationery"),
    "services": ("Barber", "Hair Salon", "Laundry", "Print Shop", "Locksmith", "Cleaners"),
    "other": ("Flowers", "Toy Shop", "Hardware", "Furniture", "Gift Shop", "Garden Centre"),
}
_CHAINS = {
    "food": ("BurgerPlanet", "PizzaGlobe", "CoffeeCorp"),
    "grocery": ("MegaMart", "FreshCo Supermarkets"),
    "health": ("CareFirst Clinics",),
    "transit": ("RideNow",),
    "pharmacy": ("MediChain Drugstores",),
    "clothing": ("FastFashion", "ShoeWorld"),
    "repair": ("FixIt Express",),
    "education": ("BookEmpire",),
    "services": ("CutAbove Salons", "SpeedyPrint"),
    "other": ("HomeWarehouse", "ToyGiant"),
}
_OWNERS = (
    "Jansen", "De Vries", "Bakker", "Visser", "Smit", "Meijer", "De Boer", "Mulder", "Bos", "Vos", "Peters",
    "Hendriks", "Dekker", "Brouwer", "Dijkstra", "Amstel", "Jordaan", "Noord", "Oost", "Zuid", "Pijp",
    "Rivierenbuurt", "Oud-West", "Eendracht", "Zonnebloem", "Tulp", "Molen", "Gracht", "Haven", "Sultan",
    "Yilmaz", "El Amrani", "Nguyen", "Silva", "Kowalski", "Rossi", "Okafor", "Singh", "Chen", "Haddad",
)  # fmt: skip
_STREETS = (
    "Marktstraat", "Kerkstraat", "Prinsengracht", "Dorpsstraat", "Haarlemmerweg", "Molenlaan",
    "Stationsplein", "Havenkade", "Javastraat", "Ferdinand Bolstraat", "Kinkerstraat", "Van Woustraat",
    "Overtoom", "Linnaeusstraat",
)  # fmt: skip
_HOURS = {
    "shop": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat")},
    "long": {d: ["08:00-22:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "restaurant": {d: ["11:30-14:30", "17:00-23:00"] for d in ("tue", "wed", "thu", "fri", "sat", "sun")},
    "night": {d: ["18:00-02:00"] for d in ("wed", "thu", "fri", "sat")},
    "office": {d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
    "always": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}
_CATEGORY_HOURS = {
    "food": ("restaurant", "long", "night"),
    "grocery": ("shop", "long"),
    "shelter": ("always",),
    "health": ("office",),
    "transit": ("long", "always"),
    "pharmacy": ("shop", "long"),
}


@dataclass(frozen=True)
class SyntheticMerchant:
    """A merchant's signed registration, and the city's signed verification when it has one."""

    registration: dict[str, Any]
    verification: dict[str, Any] | None


def merchant_key(seed: int, index: int) -> Keypair:
    """The (reproducible) key of synthetic merchant `index`."""
    return Keypair.from_seed(hashlib.sha256(f"smartcity-directory-seed:{seed}:{index}".encode()).digest())


def _point(rng: random.Random, centre: tuple[float, float], sigma_km: float) -> tuple[float, float]:
    km_per_deg_lat = 111.195
    km_per_deg_lon = km_per_deg_lat * math.cos(math.radians(centre[0]))
    lat = centre[0] + rng.gauss(0, sigma_km) / km_per_deg_lat
    lon = centre[1] + rng.gauss(0, sigma_km) / km_per_deg_lon
    return round(lat, 6), round(lon, 6)


def neighbourhoods(seed: int) -> list[tuple[float, float]]:
    """The centres of the city's neighbourhoods (where merchants cluster, and where searches come from)."""
    rng = random.Random(f"neighbourhoods:{seed}")
    centres = []
    for _ in range(NEIGHBOURHOODS):
        distance, angle = CITY_RADIUS_KM * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        centres.append(
            (
                CENTRE[0] + distance * math.cos(angle) / 111.195,
                CENTRE[1] + distance * math.sin(angle) / (111.195 * math.cos(math.radians(CENTRE[0]))),
            )
        )
    return centres


def merchants(
    count: int, seed: int, verifier: Keypair, verified_at: datetime | None = None
) -> Iterator[SyntheticMerchant]:
    """`count` synthetic merchants, the same ones for the same `seed`."""
    rng = random.Random(seed)
    centres = neighbourhoods(seed)
    when = rfc3339(verified_at or datetime(2026, 11, 1, tzinfo=UTC))
    categories, weights = list(_CATEGORY_WEIGHTS), list(_CATEGORY_WEIGHTS.values())
    for index in range(count):
        category = rng.choices(categories, weights)[0]
        key = merchant_key(seed, index)
        chain = rng.choice(_CHAINS[category]) if category in _CHAINS and rng.random() < CHAIN_SHARE else None
        noun = rng.choice(_NOUNS[category])
        lat, lon = _point(rng, rng.choice(centres), 0.7)
        terms = rng.sample(CATEGORY_TERMS[category], 3)
        body: dict[str, Any] = {
            "wallet": key.did,
            "name": f"{chain} {rng.choice(_OWNERS)}" if chain else f"{rng.choice(_OWNERS)} {noun}",
            "category": category,
            "locally_owned": chain is None,
            "accepts": _accepts(rng, category),
            "address": f"{rng.choice(_STREETS)} {rng.randint(1, 400)}",
            "lat": lat,
            "lon": lon,
            "description": f"{noun}: {', '.join(terms)}",
        }
        if chain:
            body["chain"] = chain
        if rng.random() < 0.9:
            body["hours"] = _HOURS[rng.choice(_CATEGORY_HOURS.get(category, ("shop", "long")))]
        registration = key.sign(body)
        verification = None
        if rng.random() < (0.9 if chain else 0.7):
            verification = verifier.sign(
                {
                    "merchant": key.did,
                    "registration": registration_hash(registration),
                    "category": category,
                    "locally_owned": chain is None,
                    "verified_at": when,
                    "verifier": verifier.did,
                }
            )
        yield SyntheticMerchant(registration, verification)


def _accepts(rng: random.Random, category: str) -> list[str]:
    accepts = [c for c, share in (("CITY", 0.9), ("CREDIT", 0.7)) if rng.random() < share]
    if category in AID_CATEGORIES and rng.random() < 0.6:
        accepts.append("AID")
    return accepts or ["CITY"]
