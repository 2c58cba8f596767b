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


# What people search for or buy in each category: how `/v1/alternatives?to=` maps a product ("shoes",
# "groceries") to the categories of local merchants that sell it, and what the seed data sells.
CATEGORY_TERMS: dict[str, tuple[str, ...]] = {
    "food": (
        "restaurant",
        "cafe",
        "coffee",
        "bakery",
        "bread",
        "pizza",
        "burger",
        "takeaway",
        "lunch",
        "meal",
    ),
    "grocery": ("groceries", "supermarket", "market", "vegetables", "fruit", "butcher", "cheese", "produce"),
    "shelter": ("housing", "hostel", "lodging", "bed", "beds", "hotel", "night"),
    "health": ("clinic", "doctor", "dentist", "physio", "care", "therapy", "optician"),
    "transit": ("bike", "bicycle", "taxi", "ride", "bus", "scooter", "transport"),
    "pharmacy": ("drugstore", "medicine", "chemist", "prescriptions", "vitamins"),
    "clothing": ("clothes", "shoes", "fashion", "jeans", "shirts", "jackets", "boutique", "apparel"),
    "repair": ("fix", "phone", "electronics", "tailor", "cobbler", "appliances", "laptop"),
    "education": ("books", "bookshop", "school", "courses", "tutoring", "lessons", "stationery"),
    "services": ("hairdresser", "barber", "laundry", "cleaning", "printing", "accountant", "locksmith"),
    "other": ("gifts", "flowers", "toys", "hardware", "furniture", "garden"),
}


def categories_for(text: str) -> list[str]:
    """The categories that `text` names or describes (a category name or one of its terms), in taxonomy
    order; empty if none."""
    words = {w for w in text.lower().replace(",", " ").split() if w}
    return [name for name in CATEGORIES if name in words or words & set(CATEGORY_TERMS[name])]
