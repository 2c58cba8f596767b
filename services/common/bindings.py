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

Unbinding (a person's erasure, `services.identity.erasures`). Identity removes a binding in two records on the
wallet's key: first an *unbinding* record, ``{"wallet", "unbinding": {"wallet", "action": "unbind",
"binding_id", "reason": "erasure", "issuer", "issued_at", "sig"}}``, signed by the identity service's city key,
which voids the binding whose signed request has the id ``binding_id`` (`binding_id`); then a tombstone (no
value), so that compaction forgets the link (Kafka keeps only a key's latest record, and drops a tombstone in
turn after ``delete.retention.ms``). `BindingView` drops a binding on the signed unbinding, and never on a
tombstone: a tombstone carries no signature, so anyone who can write to the topic could forge one, and a
binding dropped on one would turn its wallet's readings ``unverified-person``, earning nothing (a denial of
rewards). A tombstone on a wallet the view holds a binding for is refused (dead-lettered, so operators see it);
on any other wallet it is what compaction expects and changes nothing.

The signature protects what consumers *do* with records; it cannot stop the broker's compaction, which keeps
only a key's last record whatever it holds: a writer who could forge a tombstone (or any record) on a wallet's
key could have compaction drop that wallet's binding from the log, and a view replaying the compacted topic
from scratch would then not know it. That remains guarded by the topic's ACLs (only identity writes it,
`services.common.topics`), and identity's database keeps every binding it made. Unbinding names one binding
(not a time): the wallet can be bound again later with a new request (a new id), and a replay of the voided
one is refused in every view that saw the unbinding. The unbinding names no person, so the record that
stands in for the binding until compaction no longer links the wallet to anyone.
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
UNBINDING_SIGNATURE = "unbinding-signature"
UNTRUSTED_UNBINDER = "untrusted-unbinder"
UNSIGNED_REMOVAL = "unsigned-removal"
UNBIND = "unbind"
ERASURE = "erasure"

BINDING_VIEW_AGE = Gauge(
    "smartcity_binding_view_age_seconds",
    "Seconds since the binding view last heard from the broker (how stale its answers may be).",
    ["client"],
)
BINDING_RECORDS = Counter(
    "smartcity_binding_records_total",
    "city.bindings.v1 records folded by a binding view, by outcome: applied, superseded (the wallet was bound "
    "earlier: a replay, or a later binding), void (a binding the city unbound: a replay), unbound (the city's "
    "signed unbinding), tombstone (no value, on a wallet not bound: for compaction), refused (not a valid "
    "binding or unbinding: forged, malformed, another wallet's presentation, a tombstone on a bound wallet), "
    "failed (the fold raised: a bug). Refused and failed records are dead-lettered.",
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


def binding_id(signed: Mapping[str, Any]) -> str:
    """The id of a binding: that of its wallet-signed request (`signing.object_id`), which an unbinding names."""
    return signing.object_id(signed)


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

    @property
    def id(self) -> str:
        """`binding_id` of the signed request."""
        return binding_id(self.signed)

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


@dataclass(frozen=True)
class Unbinding:
    """A checked unbinding: the wallet, the id of the binding it voids, and who signed it."""

    wallet: str
    binding_id: str
    issuer: str
    signed: Mapping[str, Any]


def unbinding(city: Keypair, wallet: str, binding: Mapping[str, Any], issued_at: datetime) -> dict[str, Any]:
    """The ``city.bindings.v1`` record (key: `wallet`) by which `city` (a key whose credentials bind) voids
    the binding of `wallet` whose signed request is `binding`, on the person's erasure."""
    signed = city.sign(
        {
            "wallet": wallet,
            "action": UNBIND,
            "binding_id": binding_id(binding),
            "reason": ERASURE,
            "issuer": city.did,
            "issued_at": events.rfc3339(issued_at),
        }
    )
    return {"wallet": wallet, "unbinding": signed}


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
        if "binding" not in value:
            raise ValueError("not a binding record")
        parse_time(value["bound_at"])
        expires_at = parse_time(value["expires_at"])
    except (schemas.SchemaError, ValueError) as exc:
        raise BindingError(MALFORMED, str(exc)) from exc
    binding = check_binding(value["binding"], verifier)
    stated = (value["wallet"], value["person"], value["issuer"], expires_at)
    if stated != (binding.wallet, binding.person, binding.issuer, binding.expires_at):
        raise BindingError(MISMATCH, "the record does not say what its signed binding says")
    return binding


def check_unbinding_record(value: Any, issuers: Collection[str]) -> Unbinding:
    """Check a ``city.bindings.v1`` unbinding record: its schema, that the unbinding inside is signed by its
    issuer, one of `issuers` (the keys whose credentials bind), and names the record's wallet; raises
    `BindingError`."""
    try:
        schemas.validate(BINDINGS, value)
        if "unbinding" not in value:
            raise ValueError("not an unbinding record")
        signed = value["unbinding"]
        parse_time(signed["issued_at"])
    except (schemas.SchemaError, ValueError) as exc:
        raise BindingError(MALFORMED, str(exc)) from exc
    if signed["wallet"] != value["wallet"]:
        raise BindingError(MISMATCH, "the record does not name the wallet its unbinding names")
    try:
        signing.verify(signed, "issuer")
    except signing.SignatureError as exc:
        raise BindingError(UNBINDING_SIGNATURE, f"not signed by its issuer: {exc}") from exc
    if signed["issuer"] not in issuers:
        raise BindingError(UNTRUSTED_UNBINDER, f"{signed['issuer']} is not a key whose credentials bind")
    return Unbinding(signed["wallet"], signed["binding_id"], signed["issuer"], dict(signed))


class BindingBook:
    """The binding in force per wallet: of the bindings folded in and not unbound, the one its wallet signed
    first, whatever order they arrived in (identity binds a wallet once; a replay, or a copy of an old record,
    changes nothing). A tie on time is broken by the person id, so every view picks the same. An unbinding
    voids the binding it names, whether it came before or after it. Pure.

    A later binding of a wallet already bound is not kept aside: it cannot take over should the earlier one be
    unbound. Identity writes a wallet's records in order on one partition (it binds a wallet again only once
    the unbinding is written), so a view never meets that case from identity's records."""

    def __init__(self) -> None:
        # order, person, expiry, binding id
        self._bindings: dict[str, tuple[tuple[datetime, str], str, float, str]] = {}
        self._void: set[str] = set()  # the ids of unbound bindings

    def apply(self, binding: Binding) -> bool:
        """Fold one binding in; True if it is now the one in force for its wallet (False: a later one, a
        replay, or unbound: see `is_void`)."""
        order = (binding.signed_at, binding.person)
        current = self._bindings.get(binding.wallet)
        if current is not None and current[0] <= order:
            return False
        if binding.id in self._void:
            return False
        self._bindings[binding.wallet] = (order, binding.person, binding.expires_at.timestamp(), binding.id)
        return True

    def is_void(self, binding: Binding) -> bool:
        """Whether `binding` was unbound."""
        return binding.id in self._void

    def unbind(self, change: Unbinding) -> bool:
        """Void the binding `change` names; True if it was the one in force for its wallet (now none)."""
        self._void.add(change.binding_id)
        current = self._bindings.get(change.wallet)
        if current is None or current[3] != change.binding_id:
            return False
        del self._bindings[change.wallet]
        return True

    def is_bound(self, wallet: str) -> bool:
        """Whether a binding of `wallet` stands (expired or not)."""
        return wallet in self._bindings

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
    `dead_letter`, each goes to ``city.bindings.dlq.v1`` with the reason. A signed unbinding by one of the
    `issuers` drops the binding it names; a tombstone never does (see the module's "Unbinding").
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
        self._issuers = frozenset(issuers)
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

    def _fold_record(self, key: bytes | None, raw: bytes | None) -> tuple[str, str | None]:
        if raw is not None:
            return self._fold(raw)
        wallet = (key or b"").decode("utf-8", "replace")
        if self._book.is_bound(wallet):
            return "refused", (
                f"{UNSIGNED_REMOVAL}: a tombstone with no signed unbinding of {wallet:.80} before it: the "
                "binding stands"
            )
        return "tombstone", None

    def _fold(self, raw: bytes | None) -> tuple[str, str | None]:
        try:
            value = events.decode_json(raw)
        except ValueError as exc:
            return "refused", f"malformed JSON: {exc}"
        try:
            if isinstance(value, Mapping) and "unbinding" in value:
                self._book.unbind(check_unbinding_record(value, self._issuers))
                return "unbound", None
            binding = check_record(value, self._verifier)
        except BindingError as exc:
            return "refused", str(exc)
        if self._book.apply(binding):
            return "applied", None
        return ("void" if self._book.is_void(binding) else "superseded"), None
