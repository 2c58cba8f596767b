"""The SDK has a typed call for every operation of every service's API, and each call sends what the service
expects.

Each client method that sends an operation is marked with it (`smartcity_sdk.http.operation`: the method and the
path template of the service's OpenAPI document). Checked both ways, against the documents as the services serve
them (`tests.unit.test_openapi.DOCUMENTS`):

- every operation of every service (but its health, readiness, metrics and the document itself) has a marked
  method, and every marked method's operation is one of its service's;
- every marked method, called against a stand-in of its service made of that service's document, sends exactly
  the request it is marked with: a request body of the documented schema, each signed object in it (``x-signed-
  objects``) signed by the key it names, a signed read where the operation is one (checked by the services' own
  checks), and it takes the documented example of the answer;
- what a marked method returns is the TypedDict of the operation's answer (``smartcity_sdk/types.py``, mirrored
  against the models by ``tests/unit/test_sdk_types.py``), but for the answers listed in `NOT_TYPED_DICTS`.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, get_args, get_origin, is_typeddict

import httpx
import pytest
from jsonschema import Draft202012Validator

from services.common import signing as services_signing
from services.common.openapi import REF, SIGNED_OBJECTS, SIGNED_READ
from services.common.signed_reads import verify_read
from services.ledger.api.models import POLICY
from smartcity_sdk import DirectoryClient, IdentityClient, IngestClient, LedgerClient, PortalClient
from smartcity_sdk.http import Operation, RetryPolicy, ServiceClient, operation, operations
from smartcity_sdk.identity import signed_request
from smartcity_sdk.ingest import sign_reading
from smartcity_sdk.ledger import sign_transfer
from smartcity_sdk.signing import Keypair
from smartcity_sdk.timestamps import now_rfc3339
from tests.unit.test_openapi import DOCUMENTS, METHODS, resolve
from tests.unit.test_sdk_types import MIRRORS

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"

CLIENTS: dict[str, type[ServiceClient] | None] = {
    "ingest": IngestClient,
    "ledger": LedgerClient,
    "identity": IdentityClient,
    "directory": DirectoryClient,
    "portal": PortalClient,
    "rewards": None,  # a worker: its web server has only the pages below
}
"""Each service and the SDK's client of it."""
NOT_API = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
"""Paths of every service that are not its API: for orchestrators and scrapers, not city apps."""

NOT_TYPED_DICTS: dict[tuple[str, str], str] = {
    ("LedgerClient", "transaction"): "a record of any of the chain's types, each with members of its own",
    ("LedgerClient", "transaction_bytes"): "the record's exact bytes, its Merkle leaf",
    ("LedgerClient", "leaves"): "records' exact bytes, one per leaf",
    ("LedgerClient", "policy"): "a policy document (schemas/policy.v1.json), no response model",
    ("IdentityClient", "status_list"): "a compact JWS (application/statuslist+jwt)",
}
"""Marked methods whose answer is not a JSON object of a response model, and why."""


def documented(document: Mapping[str, Any]) -> set[Operation]:
    """The API operations of a service's document."""
    return {
        Operation(method.upper(), path)
        for path, item in document["paths"].items()
        if path not in NOT_API
        for method in item
        if method in METHODS
    }


def coverage_gaps(document: Mapping[str, Any], client: type[ServiceClient] | None) -> list[str]:
    """What does not match between a service's operations and its client's marked methods, one line each."""
    marked = operations(client) if client is not None else {}
    api = documented(document)
    gaps = [
        f"{op.method} {op.path}: no SDK method sends it (mark one with @operation({op.method!r}, {op.path!r}))"
        for op in sorted(api - set(marked))
    ]
    gaps += [
        f"{client.__name__}.{name} is marked {op.method} {op.path}, which the service does not have"
        for op in sorted(set(marked) - api)
        for name in marked[op]
        if client is not None
    ]
    return gaps


def test_every_service_with_an_app_has_its_document_and_its_client_here() -> None:
    apps = {path.parent.name for path in SERVICES_DIR.glob("*/app.py")}
    assert apps == set(DOCUMENTS) == set(CLIENTS)


@pytest.mark.parametrize("service", sorted(CLIENTS))
def test_every_operation_has_an_sdk_method_and_every_marked_method_an_operation(service: str) -> None:
    gaps = coverage_gaps(DOCUMENTS[service](), CLIENTS[service])
    assert not gaps, "\n".join(gaps)


def test_the_check_finds_an_operation_without_a_method_and_a_method_without_an_operation() -> None:
    document = {
        "paths": {
            "/healthz": {"get": {}},
            "/v1/things/{thing}": {"get": {}, "post": {}, "parameters": []},
        }
    }

    class Stray(ServiceClient):
        @operation("GET", "/v1/things/{thing}")
        def thing(self) -> None: ...

        @operation("GET", "/v1/nowhere")
        def nowhere(self) -> None: ...

    assert coverage_gaps(document, Stray) == [
        "POST /v1/things/{thing}: no SDK method sends it (mark one with @operation('POST', '/v1/things/{thing}'))",
        "Stray.nowhere is marked GET /v1/nowhere, which the service does not have",
    ]
    assert coverage_gaps(document, None) == [
        "GET /v1/things/{thing}: no SDK method sends it (mark one with @operation('GET', '/v1/things/{thing}'))",
        "POST /v1/things/{thing}: no SDK method sends it (mark one with @operation('POST', '/v1/things/{thing}'))",
    ]


# --------------------------------------------------------------------------------------------------------------
# Each marked method sends its request, as the service's document says, against a stand-in of the service.

KEY = Keypair.from_seed(bytes(range(32)))
"""Every call's signer."""
OTHER = Keypair.from_seed(bytes(range(1, 33)))
HEX32, HEX64 = "ab" * 16, "ab" * 32
ERASURE = signed_request(KEY, did=KEY.did, action="erase")
MERCHANT = KEY.sign(
    {
        "wallet": KEY.did,
        "name": "Harbour Bakery",
        "category": "food",
        "locally_owned": True,
        "accepts": ["CITY"],
        "issued_at": now_rfc3339(),
    }
)

BY_NAME: dict[str, Any] = {
    "pin": "482913",
    "new_pin": "730651",
    "birthdate": "1990-12-10",
    "given_name": "Ada",
    "family_name": "Lovelace",
    "day": "2026-03-14",
    "service": "overnight_stay",
    "receipt_id": HEX64,
    "credential_id": HEX32,
    "request_id": HEX32,
    "policy_hash": HEX64,
    "tx_id": HEX64,
    "reading_id": HEX64,
    "zone": "harbour",
    "category": "food",
    "currency": "CITY",
    "name": "Harbour Bakery",
    "title": "Cold night shelter open",
    "body": "Beds for 40.",
    "nonce": "n-0S6_WzA2Mj",
    "audience": "https://shop",
    "presentation": "eyJhbGciOiJFZERTQSJ9.e30.c2ln~",
    "to": OTHER.did,
}
"""What a required parameter of one of these names is given (a did:key for any other string)."""
GIVEN: dict[tuple[str, str], dict[str, Any]] = {
    ("LedgerClient", "submit_transfer"): {"body": sign_transfer(KEY, OTHER.did, 1, "CITY", 1, memo="lunch")},
    ("LedgerClient", "issuer_command"): {
        "command": "mint",
        "to": OTHER.did,
        "currency": "CREDIT",
        "amount": 1,
    },
    ("LedgerClient", "authority_command"): {"command": "grant-role", "role": "auditor", "key": OTHER.did},
    ("LedgerClient", "publish_policy"): {"document": POLICY.document},
    ("LedgerClient", "anchor"): {"kind": "consent-receipts", "root": HEX64, "size": 128},
    ("LedgerClient", "erase"): {"request": ERASURE},
    ("IngestClient", "erase"): {"request": ERASURE},
    ("IngestClient", "register_device"): {"kind": "air_quality", "location": {"lat": 52.37, "lon": 4.89}},
    ("IngestClient", "submit_readings"): {
        "readings": [sign_reading(KEY, seq=1, kind="air_quality", zone="harbour", values={"pm2_5": 8.4})]
    },
    ("IdentityClient", "change_consent"): {
        "category": "air_quality",
        "action": "grant",
        "purpose": "rewards",
    },
    ("IdentityClient", "reset_pin"): {"photo_sha256": HEX64},
    ("IdentityClient", "post_notice"): {"group": {"custody": "custodial"}},
    ("IdentityClient", "kiosk_present"): {"disclose": ["age_over_18"]},
    ("IdentityClient", "kiosk_pay"): {"amount": 3_200_000, "currency": "AID", "memo": "bread"},
    ("DirectoryClient", "register_merchant"): {"accepts": ["CITY"], "locally_owned": True},
    ("DirectoryClient", "verify_merchant"): {"registration": MERCHANT},
}
"""Arguments of particular calls, where the service's schema asks for more than `BY_NAME` gives."""


def sample(name: str, hint: Any) -> Any:
    """A value for a required parameter `name` of type `hint`."""
    if hint is Keypair:
        return KEY
    if type(None) in get_args(hint):
        return sample(name, next(arg for arg in get_args(hint) if arg is not type(None)))
    origin = get_origin(hint) or hint
    if origin is bool:
        return True
    if origin is int:
        return 1
    if origin is float:
        return 1.0
    if origin in (list, Sequence):
        return []
    if origin in (dict, Mapping):
        return {}
    if origin is str:
        return BY_NAME.get(name, KEY.did)
    raise TypeError(f"no sample of {name}: {hint}")


def arguments(client: type[ServiceClient], name: str) -> dict[str, Any]:
    """Arguments for a call of `client`'s method `name`: every required parameter, and those `GIVEN` for it."""
    function = getattr(client, name)
    hints = typing.get_type_hints(function)
    given = dict(GIVEN.get((client.__name__, name), {}))
    for parameter in list(inspect.signature(function).parameters.values())[1:]:
        required = parameter.default is inspect.Parameter.empty
        if required and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            given.setdefault(parameter.name, sample(parameter.name, hints[parameter.name]))
    return given


def template_pattern(path: str) -> re.Pattern[str]:
    """A path template as a pattern of the paths it stands for (a parameter: one segment)."""
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"({[^}]+})", path))
    )


def matching(document: Mapping[str, Any], method: str, path: str) -> tuple[Operation, dict[str, Any]] | None:
    for template, item in document["paths"].items():
        if method.lower() in item and template_pattern(template).fullmatch(path):
            return Operation(method, template), item[method.lower()]
    return None


def signed_objects(body: Any, at: str) -> Iterator[Any]:
    """The objects at `at` of a request body (``(body)``: the body itself; ``readings[]``: each reading)."""
    if at == "(body)":
        yield body
    elif at.endswith("[]"):
        yield from body.get(at.removesuffix("[]"), [])
    else:
        yield body.get(at)


def beside(signers: Sequence[Mapping[str, Any]]) -> set[str]:
    """Members a body carries beside the signed object, unsigned and not in its schema (a transfer's
    ``memo_disclosure``): what the body's signer excludes that is no other signer's signature."""
    signatures = {signed["signature"] for signed in signers}
    return {
        member
        for signed in signers
        if signed["object"] == "(body)"
        for member in signed.get("excludes", ())
        if member not in signatures
    }


def example_answer(document: Mapping[str, Any], spec: Mapping[str, Any]) -> httpx.Response:
    """The operation's first success, with its documented example."""
    status = min(code for code in spec["responses"] if code.startswith("2"))
    media_type, media = next(iter(spec["responses"][status]["content"].items()))
    example = media["example"] if "example" in media else resolve(document, media["schema"])["examples"][0]
    content = example.encode() if isinstance(example, str) else json.dumps(example).encode()
    return httpx.Response(int(status), content=content, headers={"content-type": media_type})


class StandIn:
    """A service made of its OpenAPI document: each request must be one of its operations, with a body of the
    documented schema, its signed objects and signed reads verifying; the answer is the documented example."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.sent: list[Operation] = []
        self.wrong: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        found = matching(self.document, request.method, request.url.path)
        if found is None:
            self.wrong.append(f"{request.method} {request.url.path}: not an operation of the service")
            return httpx.Response(404, json={"type": "about:blank", "status": 404, "detail": self.wrong[-1]})
        sent, spec = found
        self.sent.append(sent)
        where = f"{sent.method} {sent.path}"
        if any(SIGNED_READ in requirement for requirement in spec.get("security", [])):
            try:
                verify_read(request.method, str(request.url), request.headers)
            except Exception as exc:
                self.wrong.append(f"{where}: not a signed read that verifies ({exc})")
        if "requestBody" in spec:
            self.check_body(where, spec, json.loads(request.content or b"null"))
        return example_answer(self.document, spec)

    def check_body(self, where: str, spec: Mapping[str, Any], body: Any) -> None:
        signers = spec.get(SIGNED_OBJECTS, [])
        schema = spec["requestBody"]["content"]["application/json"]["schema"]
        validator = Draft202012Validator({**schema, "components": self.document["components"]})
        shaped = (
            {k: v for k, v in body.items() if k not in beside(signers)} if isinstance(body, dict) else body
        )
        self.wrong += [f"{where} body: {error.message}" for error in validator.iter_errors(shaped)]
        for signed in signers:
            for obj in signed_objects(body, signed["object"]):
                if signed["signer"] not in obj and signed["signature"] not in obj:
                    continue  # an optional signer (an erasure's AID holder) not named
                try:
                    services_signing.verify_detached(
                        obj, signed["signer"], signed["signature"], exclude=signed.get("excludes", ())
                    )
                except services_signing.SignatureError as exc:
                    self.wrong.append(f"{where}: {signed['object']} not signed by {signed['signer']}: {exc}")


def marked_methods() -> Iterator[tuple[str, type[ServiceClient], str, Operation]]:
    for service, client in sorted(CLIENTS.items()):
        if client is not None:
            for op, names in sorted(operations(client).items()):
                for name in names:
                    yield service, client, name, op


MARKED = list(marked_methods())


@pytest.fixture(scope="module")
def documents() -> Callable[[str], dict[str, Any]]:
    """Each service's document, made once for the module."""
    return cache(lambda service: DOCUMENTS[service]())


@pytest.mark.parametrize(
    ("service", "client", "name", "op"), MARKED, ids=[f"{c.__name__}.{n}" for _, c, n, _ in MARKED]
)
def test_a_marked_method_sends_its_request_as_the_service_documents_it(
    documents: Callable[[str], dict[str, Any]],
    service: str,
    client: type[ServiceClient],
    name: str,
    op: Operation,
) -> None:
    stand_in = StandIn(documents(service))
    http = httpx.Client(transport=httpx.MockTransport(stand_in), base_url="http://service")
    with client(http=http, retry=RetryPolicy(attempts=1)) as calling:
        getattr(calling, name)(**arguments(client, name))
    assert not stand_in.wrong, "\n".join(stand_in.wrong)
    assert stand_in.sent[-1] == op, f"{client.__name__}.{name} sent {stand_in.sent}, marked {op}"


@pytest.mark.parametrize(
    ("service", "client", "name", "op"), MARKED, ids=[f"{c.__name__}.{n}" for _, c, n, _ in MARKED]
)
def test_a_marked_method_returns_the_typed_dict_of_the_operations_answer(
    documents: Callable[[str], dict[str, Any]],
    service: str,
    client: type[ServiceClient],
    name: str,
    op: Operation,
) -> None:
    returned = typing.get_type_hints(getattr(client, name))["return"]
    if (client.__name__, name) in NOT_TYPED_DICTS:
        assert not is_typeddict(returned)
        return
    assert is_typeddict(returned), f"{client.__name__}.{name} returns {returned}, not a TypedDict"
    spec = documents(service)["paths"][op.path][op.method.lower()]
    status = min(code for code in spec["responses"] if code.startswith("2"))
    schema = spec["responses"][status]["content"]["application/json"]["schema"]
    assert MIRRORS[returned].__name__ == schema["$ref"].removeprefix(REF), (
        f"{client.__name__}.{name} returns {returned.__name__} (mirroring {MIRRORS[returned].__name__}), "
        f"the operation answers {schema['$ref']}"
    )


COMPOSITES: list[tuple[str, type[ServiceClient], str, dict[str, Any], Operation]] = [
    (
        "ledger",
        LedgerClient,
        "transfer",
        {"sender": KEY, "to": OTHER.did, "amount": 1, "memo": "lunch"},
        Operation("POST", "/v1/transfers"),
    ),
    (
        "ledger",
        LedgerClient,
        "grant_role",
        {"root": KEY, "role": "auditor", "key": OTHER.did},
        Operation("POST", "/v1/authority/commands"),
    ),
    (
        "ledger",
        LedgerClient,
        "revoke_role",
        {"root": KEY, "role": "auditor", "key": OTHER.did},
        Operation("POST", "/v1/authority/commands"),
    ),
    (
        "ledger",
        LedgerClient,
        "authority_command",
        {"root": KEY, "command": "rotate-root", "new_root": OTHER.did},
        Operation("POST", "/v1/authority/commands"),
    ),
    (
        "identity",
        IdentityClient,
        "grant_consent",
        {"subject": KEY, "category": "air_quality", "purpose": "rewards"},
        Operation("POST", "/v1/consents"),
    ),
    (
        "identity",
        IdentityClient,
        "reset_pin",
        {
            "caseworker": KEY,
            "did": OTHER.did,
            "new_pin": "730651",
            "credential": "eyJhbGciOiJFZERTQSJ9.e30.c2ln~",
        },
        Operation("POST", "/v1/custodial-wallets/{did_value}/pin-reset"),
    ),
    (
        "ingest",
        IngestClient,
        "register_city_device",
        {
            "operator": KEY,
            "device": OTHER,
            "device_class": "recycling_station",
            "kind": "recycling_dropoff",
            "zone": "harbour",
        },
        Operation("POST", "/v1/devices"),
    ),
    ("ingest", IngestClient, "my_devices", {"owner": KEY}, Operation("GET", "/v1/devices")),
    (
        "ingest",
        IngestClient,
        "my_decisions",
        {"wallet": KEY},
        Operation("GET", "/v1/wallets/{wallet}/decisions"),
    ),
]
"""Calls made of marked ones, and marked calls given what `arguments` does not give them (another command, another
re-proof), each with the request it ends with."""


@pytest.mark.parametrize(
    ("service", "client", "name", "given", "op"),
    COMPOSITES,
    ids=[f"{c[1].__name__}.{c[2]}" for c in COMPOSITES],
)
def test_other_calls_and_variants_send_what_the_service_documents(
    documents: Callable[[str], dict[str, Any]],
    service: str,
    client: type[ServiceClient],
    name: str,
    given: dict[str, Any],
    op: Operation,
) -> None:
    stand_in = StandIn(documents(service))
    http = httpx.Client(transport=httpx.MockTransport(stand_in), base_url="http://service")
    with client(http=http, retry=RetryPolicy(attempts=1)) as calling:
        getattr(calling, name)(**given)
    assert not stand_in.wrong, "\n".join(stand_in.wrong)
    assert stand_in.sent[-1] == op
