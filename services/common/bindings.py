"""Wallets bound to people: the wallet's signed binding request, its record on ``city.bindings.v1``, and
`BindingView`, the in-memory fold of that compacted topic which ingest asks for a reading's person.

A wallet earns rewards only once it is bound to a person (the reward policy's ``people.binding_required``).
The binding is a presentation of a resident credential (SD-JWT, `services.common.sdjwt`) whose key-binding
JWT is made by the credential's holder key for the audience `AUDIENCE` with the wallet's did as nonce, inside
a request the wallet signs (`signing.verify(obj, "wallet")`)::

    {"wallet": did:key, "presentation": "<issuer-signed JWT>~<disclosures>~<kb-jwt>", "issued_at": RFC 3339,
     "sig": ...}

So the holder of the credential says "bind this wallet to me" and the wallet says "bind me": neither can bind
the other alone. The holder key is usually the wallet itself (a resident's first wallet is the did the
credential was issued to); a person's further wallets present the same credential.

The person is pseudonymous: sha256 hex of the credential's issuer-signed JWT (`person_id`). Every presentation
of one credential gives the same id, and the id says nothing about the person to whoever sees it on a reward
or on the chain without the credential itself. A credential issued anew (a renewal) is a new person id.

The identity service verifies the request (and the credential's status), stores the binding and publishes
the record (``bindings.v1.json``), which carries the signed request, so that any consumer re-verifies it:
`BindingView` does, and refuses (and dead-letters, given a `DeadLetter`) a record that is forged, malformed,
or replays a presentation for another wallet. A consumer checks the key binding's freshness at the time the
wallet signed the request, not now: the record stays valid for as long as the credential.

The issuer-signed credential and its key binding are checked by `services.common.sdjwt` (pure, no I/O).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from services.common import events, schemas, sdjwt, signing
from services.common.consents import parse_time
from services.common.dead_letters import DeadLetter
from services.common.follower import TopicView
from services.common.keyfiles import load_keypair
from services.common.signing import Keypair
from services.common.topics import BINDINGS

AUDIENCE = "smartcity:bindings"
"""The audience of a binding presentation's key-binding JWT (its nonce is the wallet's did)."""
RESIDENT_VCT = "https://smartcity.example/credentials/resident/v1"
"""The credential type that binds: the identity service's resident credential."""
CITY_KEY_FILE = Path("identity") / "city.key"
"""Where the identity service's city key (the issuer of resident credentials) lives under the data dir in
development; other services trust its did when not told otherwise."""
ISSUER_KEY_FILE = Path("city") / "issuer.key"
"""Where a key that orders resident credentials (a key of ``IDENTITY_ISSUERS``) lives under the data dir in
development: ``smartcity up`` lists it, and the simulator orders its wallets' credentials with it."""

# Why a binding was refused, besides the presentation's own reasons (`sdjwt`, prefixed "presentation-").
MALFORMED = "malformed"
SIGNATURE = "wallet-signature"
MISMATCH = "mismatch"
NOT_RESIDENT = "not-resident"

BINDING_VIEW_AGE = Gauge(
    "smartcity_binding_view_age_seconds",
    "Seconds since the binding view last heard from the broker (how stale its answers may be).",
    ["client"],
)
BINDING_RECORDS = Counter(
    "smartcity_binding_records_total",
    "city.bindings.v1 records folded by a binding view, by outcome: applied, superseded (the wallet was bound "
    "earlier: a replay, or a later binding), refused (not a valid binding: forged, malformed, another "
    "wallet's presentation), failed (the fold raised: a bug). Refused and failed records are dead-lettered.",
    ["client", "outcome"],
)


class BindingError(ValueError):
    """A binding request or record that does not hold; `reason` is a stable code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def person_id(presentation: str) -> str:
    """The person a presentation stands for: sha256 hex of its credential's issuer-signed JWT."""
    return hashlib.sha256(sdjwt.split(presentation)[0].encode("ascii", "replace")).hexdigest()


def development_order_key(data_dir: Path) -> Keypair:
    """The development key of `data_dir` that orders resident credentials (created on first use)."""
    return load_keypair(None, data_dir / ISSUER_KEY_FILE)


def development_issuer(data_dir: Path) -> str:
    """The did of the identity service's city key of `data_dir` (created on first use, as identity does)."""
    return load_keypair(None, data_dir / CITY_KEY_FILE).did


@dataclass(frozen=True)
class Binding:
    """A checked binding: the wallet, its person, the credential's issuer and expiry, and the signed request."""

    wallet: str
    person: str
    issuer: str
    expires_at: datetime
    signed_at: datetime
    """When the wallet signed the request (its ``issued_at``): the order of bindings of one wallet."""
    status_uri: str | None
    status_index: int | None
    signed: Mapping[str, Any]

    def record(self, bound_at: datetime) -> dict[str, Any]:
        """The record value published to ``city.bindings.v1`` (key: the wallet)."""
        return {
            "wallet": self.wallet,
            "person": self.person,
            "issuer": self.issuer,
            "expires_at": events.rfc3339(self.expires_at),
            "bound_at": events.rfc3339(bound_at),
            "binding": dict(self.signed),
        }


def binding_request(credential: str, holder: Keypair, wallet: Keypair, issued_at: datetime) -> dict[str, Any]:
    """The signed request binding `wallet` to the person of the SD-JWT `credential`: presented (disclosing no
    claim) by its `holder` key, signed by the wallet's key (the same key for a resident's own wallet)."""
    presentation = sdjwt.present(
        credential, [], holder, nonce=wallet.did, audience=AUDIENCE, iat=int(issued_at.timestamp())
    )
    return wallet.sign(
        {"wallet": wallet.did, "presentation": presentation, "issued_at": events.rfc3339(issued_at)}
    )


def check_binding(obj: Any, verifier: sdjwt.Verifier, now: int | None = None) -> Binding:
    """Check a signed binding request: its shape, the wallet's signature, and the presentation (issuer,
    validity and key binding at `now`, default the time the wallet signed it); raises `BindingError`.

    The credential's status (revocation) is not checked here: the binding's `status_index` is for the caller.
    """
    if not isinstance(obj, Mapping):
        raise BindingError(MALFORMED, "a binding must be a JSON object")
    try:
        schemas.validate_definition("binding", obj)
        signed_at = parse_time(obj["issued_at"])
    except (schemas.SchemaError, ValueError) as exc:
        raise BindingError(MALFORMED, str(exc)) from exc
    try:
        signing.verify(obj, "wallet")
    except signing.SignatureError as exc:
        raise BindingError(SIGNATURE, f"not signed by its wallet: {exc}") from exc
    wallet, presentation = obj["wallet"], obj["presentation"]
    at = int(signed_at.timestamp()) if now is None else now
    try:
        verified = verifier.verify(presentation, nonce=wallet, audience=AUDIENCE, now=at, is_revoked=None)
    except sdjwt.PresentationError as exc:
        raise BindingError(f"presentation-{exc.reason}", exc.detail) from exc
    if verified.vct != RESIDENT_VCT:
        raise BindingError(NOT_RESIDENT, f"a {verified.vct!r} credential does not bind, only {RESIDENT_VCT}")
    return Binding(
        wallet=wallet,
        person=person_id(presentation),
        issuer=verified.issuer,
        expires_at=datetime.fromtimestamp(verified.expires_at, UTC),
        signed_at=signed_at,
        status_uri=verified.status_uri,
        status_index=verified.status_index,
        signed=dict(obj),
    )


def check_record(value: Any, verifier: sdjwt.Verifier) -> Binding:
    """Check a ``city.bindings.v1`` record: its schema, and that the signed request inside verifies and says
    the same (wallet, person, issuer, expiry); raises `BindingError`."""
    try:
        schemas.validate(BINDINGS, value)
        parse_time(value["bound_at"])
        expires_at = parse_time(value["expires_at"])
    except (schemas.SchemaError, ValueError) as exc:
        raise BindingError(MALFORMED, str(exc)) from exc
    binding = check_binding(value["binding"], verifier)
    stated = (value["wallet"], value["person"], value["issuer"], expires_at)
    if stated != (binding.wallet, binding.person, binding.issuer, binding.expires_at):
        raise BindingError(MISMATCH, "the record does not say what its signed binding says")
    return binding


class BindingBook:
    """The binding in force per wallet: of the bindings folded in, the one its wallet signed first, whatever
    order they arrived in (identity binds a wallet once; a replay, or a copy of an old record, changes
    nothing). A tie on time is broken by the person id, so every view picks the same. Pure."""

    def __init__(self) -> None:
        self._bindings: dict[str, tuple[tuple[datetime, str], str, float]] = {}  # order, person, expiry

    def apply(self, binding: Binding) -> bool:
        """Fold one binding in; True if it is now the one in force for its wallet."""
        order = (binding.signed_at, binding.person)
        current = self._bindings.get(binding.wallet)
        if current is not None and current[0] <= order:
            return False
        self._bindings[binding.wallet] = (order, binding.person, binding.expires_at.timestamp())
        return True

    def person_of(self, wallet: str, now: float | None = None) -> str | None:
        """The person `wallet` is bound to, or None (not bound, or the credential has expired)."""
        current = self._bindings.get(wallet)
        if current is None or (time.time() if now is None else now) >= current[2]:
            return None
        return current[1]

    def __len__(self) -> int:
        return len(self._bindings)


class BindingView(TopicView):
    """Follows ``city.bindings.v1`` from the beginning, on a background thread (`TopicView`), re-verifying
    every record against the credential issuers it trusts, and answers `person_of` in O(1).

    A record that is not a valid binding is refused (logged, counted), and so is one whose fold raises; with a
    `dead_letter`, each goes to ``city.bindings.dlq.v1`` with the reason.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        issuers: Collection[str],
        *,
        client_id: str = "binding-view",
        poll_timeout_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        """`issuers` are the did:keys whose resident credentials bind (the identity service's city key)."""
        self._verifier = sdjwt.Verifier(issuers)
        self._book = BindingBook()
        super().__init__(
            bootstrap_servers,
            BINDINGS,
            client_id=client_id,
            age_gauge=BINDING_VIEW_AGE,
            records=BINDING_RECORDS,
            poll_timeout_s=poll_timeout_s,
            clock=clock,
            dead_letter=dead_letter,
        )

    def person_of(self, wallet: str) -> str | None:
        """The person `wallet` is bound to now (as far as the view has read), or None."""
        return self._book.person_of(wallet)

    def _fold(self, raw: bytes | None) -> tuple[str, str | None]:
        try:
            value = events.decode_json(raw)
        except ValueError as exc:
            return "refused", f"malformed JSON: {exc}"
        try:
            binding = check_record(value, self._verifier)
        except BindingError as exc:
            return "refused", str(exc)
        return ("applied" if self._book.apply(binding) else "superseded"), None
