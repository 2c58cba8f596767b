"""The fixed taxonomy of merchant categories (pure).

AID tokens are restricted to categories, so every service must agree on these names; they are ``name``s of
``defs.v1.json`` (lower case) and appear as such on ``city.merchants.v1``.
"""

from __future__ import annotations

from typing import Any

CATEGORIES: dict[str, str] = {
    "food": "Restaurants, cafés, food stalls and soup kitchens",
    "grocery": "Grocery stores and markets",
    "shelter": "Shelters, housing and lodging",
    "health": "Clinics, doctors and care",
    "transit": "Public transport, bike and ride services",
    "pharmacy": "Pharmacies and drugstores",
    "clothing": "Clothing and shoes",
    "repair": "Repair shops",
    "education": "Schools, courses and bookshops",
    "services": "Personal and professional services",
    "other": "Anything else",
}


def is_category(value: Any) -> bool:
    """True if `value` is one of the taxonomy's category names (exactly: names are lower case)."""
    return isinstance(value, str) and value in CATEGORIES
