"""The registry of reading kinds: ``schemas/kinds/<kind>.v1.json``, one JSON Schema per kind for a reading's
``values``, with each value's unit (``x-unit``) and the consent category the data falls under
(``x-consent-category``: a citizen grants or refuses the city each category, and the pipeline enforces it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from services.common import schemas

KINDS_DIR = "kinds"


class UnknownKindError(KeyError):
    """No such kind in the registry."""


@dataclass(frozen=True)
class Kind:
    """A reading kind: its name, what it measures, its consent category and the unit of each value."""

    name: str
    title: str
    consent_category: str
    units: Mapping[str, str]
    schema_file: str

    def as_json(self) -> dict[str, Any]:
        """The kind as the API answers it."""
        return {
            "kind": self.name,
            "title": self.title,
            "consent_category": self.consent_category,
            "units": dict(self.units),
        }


def _units(schema: Mapping[str, Any]) -> dict[str, str]:
    units = {name: prop["x-unit"] for name, prop in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping) and "x-unit" in extra:
        # Open-ended value names (e.g. one per recycled material) share one unit: listed under "*".
        units["*"] = extra["x-unit"]
    return units


@cache
def registry() -> dict[str, Kind]:
    """Every kind of the registry, by name (read once)."""
    found: dict[str, Kind] = {}
    for path in sorted((schemas.SCHEMA_DIR / KINDS_DIR).glob("*.json")):
        schema = json.loads(path.read_text())
        name = schema["x-kind"]
        found[name] = Kind(
            name=name,
            title=schema["title"],
            consent_category=schema["x-consent-category"],
            units=_units(schema),
            schema_file=f"{KINDS_DIR}/{path.name}",
        )
    return found


def get(name: str) -> Kind:
    """The kind called `name`; raises `UnknownKindError`."""
    try:
        return registry()[name]
    except KeyError:
        raise UnknownKindError(name) from None


def exists(name: object) -> bool:
    """True if `name` is a kind of the registry."""
    return isinstance(name, str) and name in registry()


def category(name: str) -> str:
    """The consent category of kind `name` (environment, mobility, energy, household...)."""
    return get(name).consent_category


def validate_values(name: str, values: Any) -> None:
    """Raise `schemas.SchemaError` naming the field (``values/<name>: ...``) unless `values` fit kind `name`;
    `UnknownKindError` if there is no such kind."""
    try:
        schemas.validate_against(get(name).schema_file, values)
    except schemas.SchemaError as exc:
        where = str(exc)
        raise schemas.SchemaError(
            "values" + ("" if where.startswith("(root)") else "/") + where.removeprefix("(root)")
        ) from exc
