"""Every service's OpenAPI document is one a code generator can use: valid OpenAPI (``openapi-spec-validator``),
every success typed with an example, every request body typed with an example, every error the RFC 9457
``Problem`` it is (with ``Retry-After`` where the service sends one), every signed read declared as one.

The documents are built as the services serve them (``create_app(...).openapi()``, default settings, no lifespan:
nothing is started)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from services.common.openapi import PROBLEM, REF, SIGNED_OBJECTS, SIGNED_READ
from services.directory.app import create_app as directory_app
from services.identity.app import create_app as identity_app
from services.ingest.app import create_app as ingest_app
from services.ledger.app import create_app as ledger_app
from services.portal.app import create_app as portal_app
from services.rewards.openapi import document as rewards_document

DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "ingest": lambda: ingest_app().openapi(),
    "ledger": lambda: ledger_app().openapi(),
    "identity": lambda: identity_app().openapi(),
    "directory": lambda: directory_app().openapi(),
    "portal": lambda: portal_app().openapi(),
    "rewards": rewards_document,
}
NOT_PROBLEMS = {("get", "/readyz", "503")}
"""Errors answered in another shape, on purpose: a service not ready says which of its checks fail."""
RETRY_AFTER = {"423", "429", "503"}
METHODS = {"get", "put", "post", "delete", "patch"}

Operation = tuple[str, str, dict[str, Any]]


def operations(document: Mapping[str, Any]) -> Iterator[Operation]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def resolve(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        assert schema["$ref"].startswith(REF), schema
        schema = document["components"]["schemas"][schema["$ref"].removeprefix(REF)]
    return schema


def typed(document: Mapping[str, Any], schema: Mapping[str, Any] | None) -> bool:
    """A schema that says what the JSON is: not ``{}``, not a bare object with anything in it."""
    if not schema:
        return False
    schema = resolve(document, schema)
    if any(key in schema for key in ("properties", "items", "oneOf", "anyOf", "allOf")):
        return True
    if schema.get("type") == "object":
        return isinstance(schema.get("additionalProperties"), dict) and bool(schema["additionalProperties"])
    return schema.get("type") in ("string", "integer", "number", "boolean", "array")


def exemplified(document: Mapping[str, Any], media: Mapping[str, Any]) -> bool:
    if "example" in media or media.get("examples"):
        return True
    return bool(resolve(document, media.get("schema", {})).get("examples"))


def body_fields(document: Mapping[str, Any], body: Mapping[str, Any]) -> set[str]:
    schema = resolve(document, body["content"]["application/json"]["schema"])
    return set(schema.get("properties", {}))


def violations(document: Mapping[str, Any]) -> list[str]:
    """What the lint finds wrong in `document`, one line each."""
    found = []
    for method, path, operation in operations(document):
        where = f"{method.upper()} {path}"
        responses = operation.get("responses", {})
        successes = {status: r for status, r in responses.items() if status.startswith("2")}
        if not successes:
            found.append(f"{where}: no success response")
        for status, response in successes.items():
            content = response.get("content", {})
            if not content:
                found.append(f"{where} {status}: no content")
            for media_type, media in content.items():
                if not typed(document, media.get("schema")):
                    found.append(f"{where} {status} {media_type}: untyped schema")
                if not exemplified(document, media):
                    found.append(f"{where} {status} {media_type}: no example")
        for status, response in responses.items():
            if status[0] not in "45" or (method, path, status) in NOT_PROBLEMS:
                continue
            if response.get("content") != {"application/problem+json": {"schema": {"$ref": REF + PROBLEM}}}:
                found.append(f"{where} {status}: not the Problem schema as application/problem+json")
            if status in RETRY_AFTER and "Retry-After" not in response.get("headers", {}):
                found.append(f"{where} {status}: Retry-After not documented")
        body = operation.get("requestBody")
        if body is not None:
            for media_type, media in body.get("content", {}).items():
                if not typed(document, media.get("schema")):
                    found.append(f"{where} request {media_type}: untyped schema")
                if not exemplified(document, media):
                    found.append(f"{where} request {media_type}: no example")
        signed_read = any(SIGNED_READ in requirement for requirement in operation.get("security", []))
        if signed_read and "401" not in responses:
            found.append(f"{where}: a signed read without its 401")
        for signed in operation.get(SIGNED_OBJECTS, []):
            if body is None:
                found.append(f"{where}: a signed object but no request body")
            elif signed["object"] == "(body)" and signed["signer"] not in body_fields(document, body):
                found.append(f"{where}: signed by {signed['signer']}, which the body does not have")
    return found


@pytest.fixture(scope="module", params=sorted(DOCUMENTS))
def document(request: pytest.FixtureRequest) -> dict[str, Any]:
    return DOCUMENTS[request.param]()


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)


def test_every_operation_documents_its_successes_bodies_and_problems(document: dict[str, Any]) -> None:
    found = violations(document)
    assert not found, "\n".join(found)


def examples(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], Any]]:
    """(where, schema, example) of every example in `document`: of a component, a request or a response."""
    for name, schema in document["components"]["schemas"].items():
        for example in schema.get("examples", []):
            yield name, {"$ref": REF + name}, example
    for method, path, operation in operations(document):
        bodies = {"request": operation.get("requestBody", {}), **operation["responses"]}
        for what, body in bodies.items():
            for media_type, media in body.get("content", {}).items():
                if "example" in media:
                    yield f"{method.upper()} {path} {what} {media_type}", media["schema"], media["example"]


def test_every_example_fits_its_schema(document: dict[str, Any]) -> None:
    wrong = []
    for where, schema, example in examples(document):
        checker = Draft202012Validator({**schema, "components": document["components"]})
        wrong += [f"{where}: {error.message}" for error in checker.iter_errors(example)]
    assert not wrong, "\n".join(wrong)


def test_fastapis_validation_error_shape_is_gone(document: dict[str, Any]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas


def test_signed_reads_are_declared_where_the_signature_is_checked() -> None:
    document = ledger_app().openapi()
    operation = document["paths"]["/v1/accounts/{wallet}"]["get"]
    assert operation["security"] == [{SIGNED_READ: []}]
    assert "security" not in document["paths"]["/v1/checkpoint"]["get"]


def test_the_lint_finds_an_untyped_success_and_an_error_in_another_shape() -> None:
    broken = ledger_app().openapi()
    operation = broken["paths"]["/v1/checkpoint"]["get"]
    operation["responses"]["200"]["content"]["application/json"]["schema"] = {}
    operation["responses"]["404"]["content"] = {"application/json": {"schema": {}}}
    assert violations(broken) == [
        "GET /v1/checkpoint 200 application/json: untyped schema",
        "GET /v1/checkpoint 200 application/json: no example",
        "GET /v1/checkpoint 404: not the Problem schema as application/problem+json",
    ]
