"""Signed reads: a GET of a person's data carries an RFC 9421 HTTP Message Signature by the reader's did:key.

The platform answers such a GET (a wallet's balances, transactions and next nonce, a memo, a person's devices
and reward decisions, an erasure's status) only to the holder of the data or a key holding a role for it. The
reader signs the request line, nothing else, with Ed25519 (RFC 9421 §3.3.6) and names their did:key as
``keyid``::

    GET /v1/accounts/did:key:z6Mk.../transactions?limit=10 HTTP/1.1
    Signature-Input: sig=("@method" "@path" "@query");created=1767225600;keyid="did:key:z6Mk...";alg="ed25519"
    Signature: sig=:<base64 of the 64-byte Ed25519 signature over the signature base>:

The signature base (RFC 9421 §2.5) is, with ``\\n`` between lines and none at the end::

    "@method": GET
    "@path": /v1/accounts/did:key:z6Mk.../transactions
    "@query": ?limit=10
    "@signature-params": ("@method" "@path" "@query");created=1767225600;keyid="did:key:z6Mk...";alg="ed25519"

``created`` must be within 5 minutes of the server's time (``SIGNED_READ_SKEW_S``), so sign each request as it
is sent: `SignedReadAuth` does, ``httpx.Client(auth=SignedReadAuth(key))`` or ``client.get(url,
auth=SignedReadAuth(key))``. The server's side (checking a signed read) is ``services/common/signed_reads.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from http_message_signatures import HTTPMessageSigner, algorithms

from smartcity_sdk.signing import Keypair

COVERED = ("@method", "@path", "@query")
"""The components every signed read covers."""
LABEL = "sig"
"""The label `sign_headers` writes (a verifier takes any one label)."""


@dataclass(frozen=True)
class Message:
    """A request as the signature library reads it: method, absolute URL, header lines (``items()``)."""

    method: str
    url: str
    headers: Any


_SIGNER = HTTPMessageSigner(signature_algorithm=algorithms.ED25519)


def sign_headers(key: Keypair, method: str, url: str, *, created: int | None = None) -> dict[str, str]:
    """The ``Signature-Input`` and ``Signature`` headers of a signed read of `url` (absolute, as sent) by
    `key`, created now unless `created` (seconds since the epoch) is given."""
    message = Message(method.upper(), url, {})
    when = datetime.fromtimestamp(time.time() if created is None else created, UTC)
    prepared = _SIGNER.prepare(
        message, key_id=key.did, created=when, label=LABEL, covered_component_ids=COVERED
    )
    _SIGNER.apply(message, prepared, key.sign_bytes(prepared.signature_base))
    return dict(message.headers)


class SignedReadAuth(httpx.Auth):
    """httpx authentication signing every request as a read by `key`:
    ``httpx.Client(auth=SignedReadAuth(key))`` or ``client.get(url, auth=SignedReadAuth(key))``. Each attempt
    of a retried request is signed again, with its own ``created``."""

    def __init__(self, key: Keypair) -> None:
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers.update(sign_headers(self.key, request.method, str(request.url)))
        yield request
