"""OpenAPI documents a code generator can use: every error in the shape the services really send it (RFC 9457
problem JSON, one ``Problem`` schema), request bodies typed (a pydantic model, or a JSON Schema file of
``schemas/`` put into the document), examples, and the two ways a request is authorised.

A route declares what it answers: ``responses=problems(400, 403, 409)`` for its problem statuses, and a route
that reads its body itself (a signed object is verified exactly as sent, so FastAPI does not parse it)
``openapi_extra=raw_body(model_or_schema_file, example, signers=[signed_by("from")])``, which documents the body,
who signs it and the problems of reading it (400, 408, 413, 422). Its success is its ``response_model``, whose
``model_config = examples(...)`` gives its examples (made of `example_key` and `example_id`: real did:keys,
signatures and ids); another success (a 200 for a request done before), or a body the route writes itself, is
`answers`. `install` (``create_app`` calls it) refines the document FastAPI generates, once, centrally:

- FastAPI's default 422 (``HTTPValidationError``, a shape never sent) becomes the ``Problem`` a 422 is;
- every signed read (the `services.common.signed_reads.signed_reader` dependency, a security scheme) documents
  its 401;
- a ``$ref`` to ``#/components/schemas/<file stem>`` (``transfers.v1``) or ``<file stem>.<definition>``
  (``defs.v1.did_key``) is the schema file itself, put into the components with its own ``$ref`` resolved the
  same way, and a ``$ref`` to a model `raw_body` documented is that model's schema;
- examples keep their nulls (`NULL`);
- the document's description says how signed objects and signed reads work.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, WithJsonSchema

from services.common.schemas import SCHEMA_DIR
from services.common.signing import Keypair

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://smartcity.example/problems/"
REF = "#/components/schemas/"
PROBLEM = "Problem"
SIGNED_READ = "SignedRead"
"""The security scheme of RFC 9421 signed reads (`services.common.signed_reads`)."""
SIGNED_OBJECTS = "x-signed-objects"
"""The operation extension naming who signs what in its request body (`signed_by`)."""
SCHEMA_FILE = "x-schema-file"
NULL = "\x00null"
"""An example's null until the document is complete: FastAPI drops every null of the document it makes
(``exclude_none``), those of examples too, which would make them wrong (a receipt without its leaf_index)."""

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details, as every service answers an error (media type "
    "application/problem+json). `type` tells a program what went wrong; a problem may carry more members, "
    "named in its operation's description.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {
            "type": "string",
            "format": "uri",
            "description": f"{PROBLEM_BASE}<kind>, e.g. insufficient-funds, read-forbidden, invalid-request.",
        },
        "title": {"type": "string", "description": "The kind in words."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What was wrong with this request, for a person."},
        "instance": {"type": "string", "description": "The request's path."},
        "errors": {
            "type": "array",
            "description": "422 invalid-request and invalid-body: each field that is wrong.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {
                        "type": "string",
                        "description": "The field's path (dots between names), or a parameter's location "
                        "and name (query.limit).",
                    },
                    "message": {"type": "string"},
                },
            },
        },
        "reason": {
            "type": "string",
            "description": "Identity's refusals of presentations: which check failed.",
        },
        "attempts_left": {"type": "integer", "description": "wrong-pin: PINs left before the wallet locks."},
        "locked_until": {"type": "string", "description": "wallet-locked: when PINs are taken again."},
    },
    "additionalProperties": True,
    "examples": [
        {
            "type": f"{PROBLEM_BASE}insufficient-funds",
            "title": "Insufficient funds",
            "status": 409,
            "detail": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK holds 1500000 micro-CITY, "
            "2000000 are needed",
            "instance": "/v1/transfers",
        },
        {
            "type": f"{PROBLEM_BASE}invalid-request",
            "title": "Invalid request",
            "status": 422,
            "detail": "query.limit: Input should be less than or equal to 1000",
            "instance": "/v1/accounts",
            "errors": [{"field": "query.limit", "message": "Input should be less than or equal to 1000"}],
        },
    ],
}

PROBLEM_DESCRIPTIONS = {
    400: "Malformed JSON, a bad signature or an invalid parameter",
    401: "Not a signed read, or its signature does not verify (Accept-Signature says what to sign)",
    403: "The signer may not do this",
    404: "Not found",
    408: "The body did not arrive in time",
    409: "In conflict with what is stored",
    413: "The body is too large",
    422: "The body or a parameter is not of the right shape (errors names each field)",
    423: "Locked: retry after Retry-After",
    429: "Too many requests: retry after Retry-After",
    503: "A dependency (broker, database) did not answer: nothing was done, retry after Retry-After",
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}
ACCEPT_SIGNATURE = {
    "description": "RFC 9421 §5.1: what a signed read must sign.",
    "schema": {"type": "string"},
}
BODY_PROBLEMS = (400, 408, 413, 422)
"""What reading a body answers (`services.common.http.read_json_body`, then its schema)."""


def problem_response(status: int, description: str) -> dict[str, Any]:
    """The OpenAPI response of a problem with `status`."""
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": REF + PROBLEM}}},
    }
    if status in (423, 429, 503):
        response["headers"] = {"Retry-After": RETRY_AFTER}
    if status == 401:
        response["headers"] = {"Accept-Signature": ACCEPT_SIGNATURE}
    return response


def problems(*answers: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route's problems: each a status (with its usual description) or (status, description)."""
    found: dict[int | str, dict[str, Any]] = {}
    for answer in answers:
        status, description = answer if isinstance(answer, tuple) else (answer, PROBLEM_DESCRIPTIONS[answer])
        found[status] = problem_response(status, description)
    return found


def answers(
    model: Any, example: Any = None, *, status: int = 200, description: str = "", media_type: str = ""
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry of a success other than the route's own status (a 200 for a request done before),
    or, with `media_type`, of a body a route writes itself: `model` (a pydantic model or a schema ``$ref``)."""
    response: dict[str, Any] = {"description": description or "Success"}
    if isinstance(model, type) and issubclass(model, BaseModel) and not media_type:
        response["model"] = model
    else:
        schema = model if isinstance(model, dict) else {"$ref": REF + _register(model)}
        content: dict[str, Any] = {"schema": schema}
        if example is not None:
            content["example"] = _nulls_kept(example)
        response["content"] = {media_type or "application/json": content}
    return {status: response}


def signed_by(
    signer: str, *, signature: str = "sig", at: str = "", excludes: Sequence[str] = ()
) -> dict[str, Any]:
    """Who signs an object of a request body: the did:key in field `signer`, whose Ed25519 signature over the JCS
    bytes of the object without `signature` (and without `excludes`) is in `signature`; `at` says where the object
    is (``readings[]``: each item of ``readings``; empty: the body itself)."""
    entry: dict[str, Any] = {"object": at or "(body)", "signer": signer, "signature": signature}
    if excludes:
        entry["excludes"] = list(excludes)
    return entry


def schema_file(name: str, description: str = "") -> WithJsonSchema:
    """``Annotated[dict[str, Any], schema_file("defs.v1.consent")]``: a model's field documented by a schema file
    of ``schemas/`` (its component, as `raw_body` names one). Pydantic resolves every ``$ref`` it meets, so the
    field carries a mark that `refine` turns into the ``$ref``."""
    return WithJsonSchema({SCHEMA_FILE: name, **({"description": description} if description else {})})


def _file_refs(node: Any) -> Any:
    """`node` with each `schema_file` mark made the ``$ref`` it stands for."""
    if isinstance(node, list):
        return [_file_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    if SCHEMA_FILE in node:
        rest = {k: v for k, v in node.items() if k != SCHEMA_FILE}
        return {"$ref": REF + node[SCHEMA_FILE], **rest}
    return {key: _file_refs(value) for key, value in node.items()}


_MODELS: dict[str, type[BaseModel]] = {}
"""The models `raw_body` and `answers` put into documents, by component name."""


def _register(model: type[BaseModel]) -> str:
    name = model.__name__
    if _MODELS.setdefault(name, model) is not model:
        raise ValueError(f"two models are named {name} in the OpenAPI documents")
    return name


def raw_body(
    schema: type[BaseModel] | str,
    example: Any,
    *,
    signers: Sequence[Mapping[str, Any]] = (),
    description: str = "",
    problem_statuses: Sequence[int] = BODY_PROBLEMS,
) -> dict[str, Any]:
    """``openapi_extra=`` of a route reading its body itself: its `schema` (a model, or a schema file of
    ``schemas/`` such as ``"transfers.v1.json"``), an `example`, who signs it (`signed_by`), and the problems of
    reading it."""
    name = schema.removesuffix(".json") if isinstance(schema, str) else _register(schema)
    media: dict[str, Any] = {"schema": {"$ref": REF + name}, "example": _nulls_kept(example)}
    body: dict[str, Any] = {"required": True, "content": {"application/json": media}}
    if description:
        body["description"] = description
    extra: dict[str, Any] = {"requestBody": body}
    if signers:
        extra[SIGNED_OBJECTS] = [dict(s) for s in signers]
    responses = problems(*problem_statuses)
    extra["responses"] = {str(status): response for status, response in responses.items()}
    return extra


# --------------------------------------------------------------------------------------------------------------
# Examples: keys made from their names, so examples are real did:keys and real signatures, the same every time.


def examples(*given: Any) -> ConfigDict:
    """A response model's ``model_config`` with its `given` examples."""
    return ConfigDict(json_schema_extra={"examples": [_nulls_kept(example) for example in given]})


def _nulls_kept(value: Any) -> Any:
    """`value` with each null written `NULL`."""
    if value is None:
        return NULL
    if isinstance(value, dict):
        return {key: _nulls_kept(item) for key, item in value.items()}
    return [_nulls_kept(item) for item in value] if isinstance(value, list) else value


def _nulls_restored(value: Any) -> Any:
    if value == NULL:
        return None
    if isinstance(value, dict):
        return {key: _nulls_restored(item) for key, item in value.items()}
    return [_nulls_restored(item) for item in value] if isinstance(value, list) else value


def example_key(name: str) -> Keypair:
    """A key for examples, the same for the same name (never one to hold anything)."""
    return Keypair.from_seed(hashlib.sha256(f"smartcity example {name}".encode()).digest())


def example_id(name: str) -> str:
    """64 lowercase hex digits, the same for the same name: an example's tx_id, hash or id."""
    return hashlib.sha256(f"smartcity example id {name}".encode()).hexdigest()


# --------------------------------------------------------------------------------------------------------------
# The document


AUTHORISATION = """

## Authorisation

**Signed objects.** A request that makes something happen carries a signed object: a JSON object with a `sig`
member, base64url (no padding, 86 characters) of the Ed25519 signature over the RFC 8785 (JCS) canonical bytes of
the object without `sig`, by the key of the did:key named in one of its members. Each such operation says which
in `x-signed-objects` (`signer`: the member naming the did:key; `signature`: the member holding the signature;
`object`: where the object is in the body; `excludes`: members besides the signature the signature does not
cover). There is no header and no session: the body is the authorisation, and it stays verifiable by anyone.

**Signed reads** (security scheme `SignedRead`). A read of a person's data carries an RFC 9421 HTTP Message
Signature by the reader's did:key: `Signature-Input: sig=("@method" "@path" "@query");created=<unix
seconds>;keyid="<did:key>";alg="ed25519"` and `Signature: sig=:<base64 of the Ed25519 signature>:`, over the
RFC 9421 signature base of those components, `created` within 300 s (SIGNED_READ_SKEW_S) of the server's time.
Unsigned or not verifying: 401; signed by someone who may not read it: 403 (or 404 where even existence is
personal).
"""

SIGNED_READ_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Signature",
    "description": "RFC 9421 HTTP Message Signature of the request by the reader's Ed25519 did:key: the "
    '`Signature-Input` header (`sig=("@method" "@path" "@query");created=<unix seconds>;keyid="did:key:...";'
    'alg="ed25519"`) and the `Signature` header (`sig=:<base64 signature>:`), over the signature base of '
    "`@method`, `@path` and `@query` (`?` when there is none) exactly as sent; `created` within 300 s "
    '(SIGNED_READ_SKEW_S) of the server\'s time. See docs/api.md, "Signed reads", and smartcity_sdk.signed_reads.',
}


def _operations(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
                yield operation


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _file_component(name: str) -> dict[str, Any] | None:
    """The schema of component `name`: a file of ``schemas/`` (``transfers.v1``) or one of its definitions
    (``defs.v1.did_key``), its ``$ref``s rewritten to components; None if there is no such file."""
    stem, definition = name, None
    if not (SCHEMA_DIR / f"{stem}.json").is_file():
        stem, _, definition = name.rpartition(".")
        if not (SCHEMA_DIR / f"{stem}.json").is_file():
            return None
    schema = json.loads((SCHEMA_DIR / f"{stem}.json").read_text())
    definitions = schema.pop("$defs", {})
    if definition is not None:
        if definition not in definitions:
            return None
        schema = definitions[definition]
    return _components_refs(schema, stem)


def _components_refs(node: Any, stem: str) -> Any:
    """`node` with ``$schema`` and ``$id`` dropped and its ``$ref``s (``defs.v1.json#/$defs/x``, ``#/$defs/x``)
    pointing at components."""
    if isinstance(node, list):
        return [_components_refs(item, stem) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("$schema", "$id"):
            continue
        if key == "$ref":
            target, _, pointer = value.partition("#")
            owner = target.removesuffix(".json") if target else stem
            # "#/$defs/quality/properties/burst": into the component of the definition "quality".
            out[key] = REF + (f"{owner}.{pointer.removeprefix('/$defs/')}" if pointer else owner)
        else:
            out[key] = _components_refs(value, stem)
    return out


def _model_components(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF + "{model}")
    found = schema.pop("$defs", {})
    return {**found, model.__name__: schema}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every component it refers to and lacks (`_add_components`), and its examples' nulls."""
    _add_components(document)
    return _nulls_restored(document)


def _add_components(document: dict[str, Any]) -> None:
    """Every component the document refers to and lacks: a schema file's, or a documented model's."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    while missing := {
        name
        for ref in _refs(document)
        if ref.startswith(REF) and (name := ref.removeprefix(REF).split("/", 1)[0]) not in schemas
    }:
        for name in sorted(missing):
            if name in _MODELS:
                schemas.update(_file_refs(_model_components(_MODELS[name])))
            elif (found := _file_component(name)) is not None:
                schemas[name] = found
            else:
                raise KeyError(f"the OpenAPI document refers to an unknown schema {name}")


def refine(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's `document` made true to what the services send (see the module's docstring)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for operation in _operations(document):
        responses = operation.setdefault("responses", {})
        if "HTTPValidationError" in json.dumps(responses.get("422", {})):
            responses["422"] = problem_response(422, PROBLEM_DESCRIPTIONS[422])
        if any(SIGNED_READ in requirement for requirement in operation.get("security", [])):
            responses.setdefault("401", problem_response(401, PROBLEM_DESCRIPTIONS[401]))
        operation["responses"] = dict(sorted(responses.items()))
    schemas[PROBLEM] = copy.deepcopy(PROBLEM_SCHEMA)
    document["components"]["schemas"] = _file_refs(schemas)
    document = complete(document)
    document["components"]["schemas"] = dict(sorted(document["components"]["schemas"].items()))
    info = document.setdefault("info", {})
    info["description"] = info.get("description", "") + AUTHORISATION
    return document


def install(app: FastAPI) -> None:
    """Serve `refine`'s document as the app's OpenAPI (``/openapi.json``, ``/docs``), made once."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    made: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not made:
            made.append(refine(copy.deepcopy(generate())))
        return made[0]

    app.openapi = openapi  # type: ignore[method-assign]
