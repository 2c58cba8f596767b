"""Validation of topic payloads against the JSON Schemas in ``schemas/``.

An ``"type": "integer"`` field must be written as a JSON integer: ``200.0`` is refused, although JSON Schema
counts it as an integer, because an id or a signature derived from the object would tell ``200`` and
``200.0`` apart (a transfer's nonce names its tx_id). Every schema is read with the keyword
``x-json-integer`` added beside each integer type, which both validators below enforce.

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
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from referencing import Registry, Resource

from services.common.topics import Topic

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
JSON_INTEGER = "x-json-integer"
_NOT_AN_INTEGER = "must be written as an integer (no fraction or exponent)"


class SchemaError(ValueError):
    """A payload does not match its schema; the message names the field."""


def _is_float(value: Any) -> bool:
    return type(value) is float


def _strict_integers(schema: Any) -> Any:
    """`schema` with `JSON_INTEGER` beside every integer type (a copy; other keywords untouched)."""
    if isinstance(schema, list):
        return [_strict_integers(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict_integers(value) for key, value in schema.items()}
    kind = schema.get("type")
    if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
        out[JSON_INTEGER] = True
    return out


def load_schema(path: Path) -> dict[str, Any]:
    """A schema file as the validators read it (`JSON_INTEGER` added)."""
    return _strict_integers(json.loads(path.read_text()))


def _json_integer(validator: Any, wanted: bool, instance: Any, schema: Any) -> Any:
    if wanted and _is_float(instance):
        yield ValidationError(f"{instance!r} {_NOT_AN_INTEGER}")


class _JsonIntegerKeyword:
    """`JSON_INTEGER` for the compiled validators."""

    def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
        self.wanted = bool(value)

    def validate(self, instance: Any) -> None:
        if self.wanted and _is_float(instance):
            raise ValueError(_NOT_AN_INTEGER)


StrictValidator = validators.extend(Draft202012Validator, {JSON_INTEGER: _json_integer})


@cache
def _registry() -> Registry:
    """Every schema under ``schemas/`` by its ``$id``, so relative ``$ref``s between files resolve."""
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = load_schema(path)
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
    return jsonschema_rs.validator_for(
        schema,
        registry=_fast_registry(),
        validate_formats=True,
        keywords={JSON_INTEGER: _JsonIntegerKeyword},
    )


@cache
def validator(schema_file: str) -> Draft202012Validator:
    """The validator of one schema file (cached)."""
    schema = load_schema(SCHEMA_DIR / schema_file)
    Draft202012Validator.check_schema(schema)
    return StrictValidator(schema, registry=_registry(), format_checker=FormatChecker())


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
    return StrictValidator(
        {"$ref": f"{DEFS_ID}#/$defs/{name}"}, registry=_registry(), format_checker=FormatChecker()
    )


@cache
def _fast_definition_validator(name: str) -> jsonschema_rs.Validator:
    return _fast(definition_validator(name).schema)


def validate_definition(name: str, value: Any) -> None:
    """Raise `SchemaError` naming the first offending field if `value` does not fit definition `name`."""
    if not _fast_definition_validator(name).is_valid(value):
        _raise_first(definition_validator(name), value)
