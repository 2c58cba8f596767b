"""Validation of topic payloads against the JSON Schemas in ``schemas/``.

Each check runs a compiled (Rust) validator first: valid payloads, the common case, cost a few microseconds
instead of ~130 for the pure-Python ``jsonschema`` walk with ``$ref`` resolution. Only an invalid payload is
walked again by ``jsonschema``, which stays the authority: it decides and words every error, so the messages
are unchanged.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from services.common.topics import Topic

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


class SchemaError(ValueError):
    """A payload does not match its schema; the message names the field."""


@cache
def _registry() -> Registry:
    """Every schema under ``schemas/`` by its ``$id``, so relative ``$ref``s between files resolve."""
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text())
        if "$id" in schema:
            resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def _fast_registry() -> jsonschema_rs.Registry:
    """`_registry` for the compiled validators."""
    return jsonschema_rs.Registry(
        [(uri, resource.contents) for uri, resource in _registry().items()]  # type: ignore[attr-defined]
    )


def _fast(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    # Formats are asserted here too (no schema uses one today), so that this is not more lenient than the
    # authoritative validator: a payload it refuses is only walked again, never refused on its word alone.
    return jsonschema_rs.validator_for(schema, registry=_fast_registry(), validate_formats=True)


@cache
def validator(schema_file: str) -> Draft202012Validator:
    """The validator of one schema file (cached)."""
    schema = json.loads((SCHEMA_DIR / schema_file).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry(), format_checker=FormatChecker())


@cache
def _fast_validator(schema_file: str) -> jsonschema_rs.Validator:
    return _fast(validator(schema_file).schema)


def validate(topic: Topic, value: Any) -> None:
    """Raise `SchemaError` naming the first offending field if `value` does not fit `topic`'s schema."""
    validate_against(topic.schema, value)


def validate_against(schema_file: str, value: Any) -> None:
    """Raise `SchemaError` naming the first offending field if `value` does not fit `schema_file`."""
    if not _fast_validator(schema_file).is_valid(value):
        _raise_first(validator(schema_file), value)


def _raise_first(checker: Draft202012Validator, value: Any) -> None:
    error = next(iter(sorted(checker.iter_errors(value), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise SchemaError(f"{where}: {error.message}")


DEFS_ID = "https://smartcity.example/schemas/defs.v1.json"


@cache
def definition_validator(name: str) -> Draft202012Validator:
    """The validator of one shared definition of ``defs.v1.json`` (``reading``, ``device_registration``...)."""
    return Draft202012Validator(
        {"$ref": f"{DEFS_ID}#/$defs/{name}"}, registry=_registry(), format_checker=FormatChecker()
    )


@cache
def _fast_definition_validator(name: str) -> jsonschema_rs.Validator:
    return _fast(definition_validator(name).schema)


def validate_definition(name: str, value: Any) -> None:
    """Raise `SchemaError` naming the first offending field if `value` does not fit definition `name`."""
    if not _fast_definition_validator(name).is_valid(value):
        _raise_first(definition_validator(name), value)
