"""Signed reads: GET requests for a person's data carry an RFC 9421 HTTP Message Signature by a did:key.

One scheme for every service. A reader signs the request line, nothing else, with Ed25519 (RFC 9421 §3.3.6)
and names their did:key as ``keyid``; the service checks the signature and the time, then decides whether that
did may read what was asked (the holder of the data, or a key holding a role: see `authorise`). Signing is the
SDK's (`smartcity_sdk.signed_reads`, whose docstring shows the headers and the signature base; `sign_headers`,
and `SignedReadAuth` for httpx), imported here under the names services use. What this side checks:

- Covered components: at least ``@method``, ``@path`` and ``@query`` (``?`` alone when there is no query), as
  the client sent them (percent-encoding included); a client may cover more (``@authority``). Not
  ``@target-uri``: behind a proxy or a TLS terminator the scheme and host the client signed are not the ones
  the service sees, and the service needs no knowledge of its public address to check a read.
- ``created`` (required, integer seconds since the epoch) within `DEFAULT_SKEW_S` (300 s, ``SIGNED_READ_SKEW_S``)
  of the server's time either way, as identity's signed request bodies (``issued_at``): a captured request
  cannot be replayed later. A read changes nothing, so a replay within the window shows the same data to
  whoever could capture the request; TLS is what keeps requests from being captured.
- ``keyid`` (required): the reader's did:key, whose public key checks the signature; ``alg`` optional, but
  ``ed25519`` if given; ``expires``, ``nonce`` and ``tag`` may be given (``expires`` is then checked); one
  signature per request, under any label.

The checks are those of the ``http-message-signatures`` library (pyauth, Apache-2.0, RFC 9421 complete); this
module adds the profile (what must be covered, the time window, did:key as keyid) and the problem types.
A browser signs the same base with WebCrypto's Ed25519 (``crypto.subtle.sign("Ed25519", key, base)``).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Request
from fastapi.openapi.models import APIKey
from fastapi.security.base import SecurityBase
from http_message_signatures import (
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)

from services.common import didkey
from services.common.http import Problem
from services.common.openapi import SIGNED_READ, SIGNED_READ_SCHEME
from smartcity_sdk.signed_reads import COVERED, LABEL, Message, SignedReadAuth, sign_headers

__all__ = [
    "ACCEPT_SIGNATURE",
    "COVERED",
    "DEFAULT_SKEW_S",
    "LABEL",
    "SignedReadAuth",
    "SignedReadError",
    "SignedReader",
    "authorise",
    "may_read",
    "request_url",
    "sign_headers",
    "signed_reader",
    "verify_read",
]

DEFAULT_SKEW_S = 300
"""How far ``created`` may be from the server's time, either way, in seconds."""
ACCEPT_SIGNATURE = f'{LABEL}=("@method" "@path" "@query");created;keyid;alg="ed25519"'
"""Sent with every 401 (RFC 9421 §5.1): what a signature must cover."""


class SignedReadError(ValueError):
    """A signed read that is missing, malformed, stale or does not verify; `kind` names its problem type."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail

    def problem(self) -> Problem:
        """The 401 problem answering it, with ``Accept-Signature`` telling what to sign."""
        return Problem(401, self.kind, self.detail, headers={"Accept-Signature": ACCEPT_SIGNATURE})


class _DidKeys(HTTPSignatureKeyResolver):
    """A did:key keyid is its own public key."""

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(didkey.decode(key_id))

    def resolve_private_key(self, key_id: str) -> Any:
        raise NotImplementedError("signed reads sign with smartcity_sdk.signed_reads.sign_headers")


def _fields(headers: Any) -> dict[str, str]:
    """Header fields by lower-case name, repeated lines joined as HTTP joins them."""
    lines: dict[str, list[str]] = {}
    for name, value in headers.items():
        lines.setdefault(name.lower(), []).append(value.strip())
    return {name: ", ".join(values) for name, values in lines.items()}


def _parameters(headers: Mapping[str, str]) -> tuple[str, dict[str, Any], list[str]]:
    """The one signature's label, parameters and covered component names (`headers` by lower-case name);
    raises `SignedReadError`."""
    if "signature-input" not in headers or "signature" not in headers:
        raise SignedReadError(
            "signature-required",
            "This is a person's data: sign the request (RFC 9421 Signature-Input and Signature headers, "
            'covering "@method" "@path" "@query", with created and keyid = your did:key).',
        )
    try:
        inputs = http_sf.parse(headers["signature-input"].encode(), tltype="dictionary")
        signatures = http_sf.parse(headers["signature"].encode(), tltype="dictionary")
    except (
        Exception
    ) as exc:  # the parser raises ValueError and others for text that is not a structured field
        raise SignedReadError("signature-malformed", f"the signature headers do not parse: {exc}") from exc
    if len(inputs) != 1 or inputs.keys() != signatures.keys():
        raise SignedReadError(
            "signature-malformed", "give exactly one signature, under the same label in both headers"
        )
    ((label, (members, params)),) = inputs.items()
    if not isinstance(members, list) or any(member_params for _, member_params in members):
        raise SignedReadError("signature-malformed", "Signature-Input must list component names")
    covered = [name for name, _ in members]
    if missing := [c for c in COVERED if c not in covered]:
        raise SignedReadError("signature-malformed", f"the signature must cover {', '.join(missing)}")
    keyid, created = params.get("keyid"), params.get("created")
    if not isinstance(keyid, str) or not didkey.is_did_key(keyid):
        raise SignedReadError("signature-malformed", "keyid must be the reader's Ed25519 did:key")
    if type(created) is not int:
        raise SignedReadError("signature-malformed", "created (seconds since the epoch) is required")
    if params.get("alg", "ed25519") != "ed25519":
        raise SignedReadError("signature-malformed", 'alg must be "ed25519" (or absent)')
    return label, params, covered


def verify_read(
    method: str, url: str, headers: Any, *, now: float | None = None, skew_s: int = DEFAULT_SKEW_S
) -> str:
    """The did:key that signed this read; raises `SignedReadError` (kind ``signature-required``,
    ``signature-malformed``, ``signature-stale`` or ``signature-invalid``).

    `url` is absolute and as sent (path and query percent-encoded as on the wire); `headers` gives every header
    line by ``items()`` (a dict, Starlette's or httpx's ``Headers``).
    """
    fields = _fields(headers)
    _label, params, _covered = _parameters(fields)
    current = time.time() if now is None else now
    if abs(current - params["created"]) > skew_s:
        raise SignedReadError("signature-stale", f"created must be within {skew_s} s of the server's time")
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_DidKeys())
    # `created` is checked above against `now`; the library checks it again only against the wall clock.
    verifier.max_clock_skew = timedelta(seconds=skew_s + abs(time.time() - current))
    try:
        verifier.verify(Message(method, url, fields), max_age=None, require_components=COVERED)
    except InvalidSignature as exc:
        raise SignedReadError("signature-invalid", f"the signature does not verify {exc}".strip()) from exc
    return params["keyid"]


def request_url(request: Request) -> str:
    """The absolute URL of `request` with its path and query exactly as the client sent them."""
    path = request.scope.get("raw_path") or request.scope["path"].encode()
    query = request.scope.get("query_string", b"")
    url = f"{request.url.scheme}://{request.url.netloc}{path.decode('latin-1')}"
    return f"{url}?{query.decode('latin-1')}" if query else url


class SignedReader(SecurityBase):
    """A FastAPI dependency: the did:key that signed the request, else a 401 problem.

    The allowed skew is ``app.state.signed_read_skew_s`` when the app sets it, else `DEFAULT_SKEW_S`. A security
    scheme: every operation that depends on it is documented as a signed read (`services.common.openapi`).
    """

    model = APIKey.model_validate(SIGNED_READ_SCHEME)
    scheme_name = SIGNED_READ

    async def __call__(self, request: Request) -> str:
        skew_s = getattr(request.app.state, "signed_read_skew_s", DEFAULT_SKEW_S)
        try:
            return verify_read(request.method, request_url(request), request.headers, skew_s=skew_s)
        except SignedReadError as exc:
            raise exc.problem() from exc


signed_reader = SignedReader()
"""``reader: str = Depends(signed_reader)``: the verified did:key of a signed read."""


def may_read(reader: str, holder: str, roles: Collection[str]) -> bool:
    """Whether `reader` may read `holder`'s data: it is the holder, or holds one of the `roles` (did:keys)."""
    return reader == holder or reader in roles


def authorise(reader: str, holder: str, roles: Collection[str], *, what: str) -> None:
    """`may_read`, else a 403 problem ``read-forbidden``. Where even existence is personal, answer with the
    service's own 404 instead (`may_read`)."""
    if not may_read(reader, holder, roles):
        raise Problem(403, "read-forbidden", f"{reader} may not read the {what} of {holder}.")
