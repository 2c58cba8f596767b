"""The reading-kind registry (schemas/kinds/): every kind the city collects, its units and consent category."""

import json

import pytest
from jsonschema import Draft202012Validator

from services.common import kinds, schemas

REQUIRED_KINDS = {
    "air_quality": {"pm2_5": "µg/m³", "pm10": "µg/m³", "no2": "µg/m³"},
    "noise": {"db_a": "dB(A)"},
    "traffic_count": {"vehicles": "count"},
    "parking_occupancy": {"occupied": "count", "capacity": "count"},
    "energy_saved": {"kwh": "kWh"},
    "water_use": {"litres": "l"},
    "waste_bin_fill": {"fill_pct": "%"},
    "recycling_dropoff": {"*": "kg"},
    "bike_trip": {"km": "km"},
    "walk_trip": {"km": "km"},
    "transit_checkin": {"passengers": "count"},
}


def test_the_registry_holds_every_kind_with_its_units():
    registry = kinds.registry()
    assert set(REQUIRED_KINDS) <= set(registry)
    for name, units in REQUIRED_KINDS.items():
        assert units.items() <= registry[name].units.items(), name


def test_every_kind_schema_is_valid_and_gives_every_value_a_unit():
    for kind in kinds.registry().values():
        schema = json.loads((schemas.SCHEMA_DIR / kind.schema_file).read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(kind.schema_file)
        assert schema["additionalProperties"] is False or "x-unit" in schema["additionalProperties"]
        assert all("x-unit" in prop for prop in schema.get("properties", {}).values())


def test_consent_category_is_one_lookup():
    assert kinds.category("air_quality") == "environment"
    assert kinds.category("bike_trip") == "mobility"
    assert kinds.category("energy_saved") == "energy"
    assert kinds.category("water_use") == "household"
    assert {k.consent_category for k in kinds.registry().values()} <= {
        "environment",
        "mobility",
        "energy",
        "household",
        "location",
    }
    with pytest.raises(kinds.UnknownKindError):
        kinds.category("weather")


@pytest.mark.parametrize(
    ("kind", "values", "error"),
    [
        ("air_quality", {"pm2_5": 12.0}, None),
        ("air_quality", {"pm2_5": -1}, "values/pm2_5: -1 is less than the minimum of 0"),
        ("parking_occupancy", {"occupied": 3, "capacity": 10}, None),
        (
            "parking_occupancy",
            {"occupied": 2.5, "capacity": 10},
            "values/occupied: 2.5 is not of type 'integer'",
        ),
        ("recycling_dropoff", {"glass": 2.5, "paper": 1}, None),
        ("recycling_dropoff", {"gold": 1}, "values: 'gold' is not one of"),
        ("recycling_dropoff", {"glass": 0}, "values/glass: 0 is less than or equal to the minimum of 0"),
        ("waste_bin_fill", {"fill_pct": 101}, "values/fill_pct: 101 is greater than the maximum of 100"),
        ("transit_checkin", {}, "values: 'passengers' is a required property"),
    ],
)
def test_values_are_validated_naming_the_field(kind, values, error):
    if error is None:
        kinds.validate_values(kind, values)
    else:
        with pytest.raises(schemas.SchemaError) as raised:
            kinds.validate_values(kind, values)
        assert str(raised.value).startswith(error), raised.value


def test_kind_as_json():
    assert kinds.get("noise").as_json() == {
        "kind": "noise",
        "title": "Noise level",
        "consent_category": "environment",
        "units": {"db_a": "dB(A)"},
    }


@pytest.mark.parametrize(
    "value",
    [
        {"pm2_5": 1.0},
        {"pm2_5": True},
        {"pm2_5": 1, "pm10": "2"},
        {"pm2_5": 1e308},
        {},
        [],
        None,
        {"pm2_5": 1.0, "co": 3},
    ],
)
def test_the_compiled_fast_path_agrees_with_jsonschema(value):
    # Readings are validated by a compiled validator first, and walked by jsonschema only when it refuses:
    # the two must agree on what is valid.
    file = kinds.get("air_quality").schema_file
    assert schemas._fast_validator(file).is_valid(value) == schemas.validator(file).is_valid(value)
    reading = {"device_id": "did:key:z6Mk" + "a" * 45, "seq": 1, "ts": "2026-11-21T10:00:00Z", "kind": "x"}
    reading.update(zone="z", values=value, sig="A" * 86)
    fast, slow = schemas._fast_definition_validator("reading"), schemas.definition_validator("reading")
    assert fast.is_valid(reading) == slow.is_valid(reading)
