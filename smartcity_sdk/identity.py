"""Identity (port 8104): identities, consents, notices, presentations, erasure, and the kiosk of a custodial
wallet (a person without a phone, whose key the city keeps under their PIN).

Identity's writes and a person's reads of their own data are signed request bodies with an ``issued_at``
within 5 minutes of the server's time (`signed_request`), signed once per call: a retry sends the very same
body, well within that window.

Idempotent, so retried when no answer came (`smartcity_sdk.http`): registering an identity (the same did again
is answered 200), listing consents, reading notices, verifying a presentation, an erasure (its id derives from
the signed bytes), reading an erasure's status. Not: changing a consent (a change already stored is answered
409 ``stale-consent``), and the kiosk's PIN calls (a wrong PIN whose answer was lost would count twice towards
the lockout; a kiosk payment may be sent again by the caller with the same ``request_id``, which pays at most
once). Those are retried only on 429 and 503, answers that say nothing was done.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from smartcity_sdk.http import ServiceClient, json_object
from smartcity_sdk.signed_reads import SignedReadAuth
from smartcity_sdk.signing import Keypair
from smartcity_sdk.timestamps import now_rfc3339
from smartcity_sdk.types import (
    AidHolder,
    ConsentChange,
    Consents,
    Erasure,
    Identity,
    Inbox,
    Receipt,
    Statement,
    VerifiedPresentation,
)

CITY_GRANTEE = "city"
"""The grantee standing for the city's own pipeline (ingest, rewards): what a reading's consent is given to."""


def signed_request(key: Keypair, **fields: Any) -> dict[str, Any]:
    """`fields` with ``issued_at`` now, signed by `key`: an identity request body."""
    return key.sign({"issued_at": now_rfc3339(), **fields})


def _did_path(did: str) -> str:
    return quote(did, safe=":")


class IdentityClient(ServiceClient):
    """A client of the identity service (``IdentityClient("http://127.0.0.1:8104")``)."""

    def resolve(self, did: str) -> dict[str, Any]:
        """A did:key's public key (multibase, JWK, hex) and DID document."""
        return self.call("GET", f"/v1/identities/{_did_path(did)}", idempotent=True).json()

    def register(self, key: Keypair, *, zone: str | None = None) -> Identity:
        """Register the did:key of `key`, a person's own, with the city `zone` they live or stay in (notices to
        a zone's groups reach them)."""
        body = signed_request(key, **json_object(did=key.did, zone=zone))
        return self.call("POST", "/v1/identities", idempotent=True, json=body).json()

    def change_consent(
        self,
        subject: Keypair,
        category: str,
        action: str,
        *,
        purpose: str,
        grantee: str = CITY_GRANTEE,
        until: str | None = None,
    ) -> ConsentChange:
        """Grant (``action="grant"``) or revoke (``"revoke"``) the consent `category` (a reading kind's: see the
        ingest's ``/v1/kinds``) to `grantee`, until an RFC 3339 UTC time if given. Ingest and rewards follow it
        within seconds; the answer carries the city's signed receipt."""
        fields = json_object(
            subject=subject.did,
            category=category,
            grantee=grantee,
            action=action,
            purpose=purpose,
            until=until,
        )
        body = signed_request(subject, **fields)
        return self.call("POST", "/v1/consents", idempotent=False, json=body).json()

    def grant_consent(
        self, subject: Keypair, category: str, *, purpose: str, **options: Any
    ) -> ConsentChange:
        return self.change_consent(subject, category, "grant", purpose=purpose, **options)

    def revoke_consent(
        self, subject: Keypair, category: str, *, purpose: str, **options: Any
    ) -> ConsentChange:
        return self.change_consent(subject, category, "revoke", purpose=purpose, **options)

    def consents(self, key: Keypair) -> Consents:
        """The person's consents, each in its latest state with its receipt."""
        body = signed_request(key, did=key.did, action="list-consents")
        return self.call("POST", "/v1/consents/query", idempotent=True, json=body).json()

    def notices(self, key: Keypair, *, aid_holder: str | None = None) -> Inbox:
        """The person's unexpired notices, newest first; naming their AID holder key
        (`smartcity_sdk.aid_holder`) lets notices to their zone's AID holders reach them."""
        body = signed_request(key, **json_object(did=key.did, action="read-notices", aid_holder=aid_holder))
        return self.call("POST", "/v1/notices/inbox", idempotent=True, json=body).json()

    def verify_presentation(self, presentation: str, *, nonce: str, audience: str) -> VerifiedPresentation:
        """Check an SD-JWT presentation made for `audience` with `nonce`: its issuer, type, validity and
        exactly the claims it discloses; a 400 `ProblemError` (``presentation-<reason>``) if it does not hold."""
        body = {"presentation": presentation, "nonce": nonce, "audience": audience}
        return self.call("POST", "/v1/presentations/verify", idempotent=True, json=body).json()

    def erase(self, key: Keypair) -> Erasure:
        """Ask the city to erase the person's data (README "Erasure": what goes, what stays): identity at once,
        then ingest and the ledger, which it forwards the request to. The same request again is the same
        erasure; `erasure` tells where it stands."""
        body = signed_request(key, did=key.did, action="erase")
        return self.call("POST", "/v1/erasures", idempotent=True, json=body).json()

    def erasure(self, request_id: str, reader: Keypair) -> Erasure:
        """Where an erasure stands, read by the person who asked for it (signed read)."""
        path = f"/v1/erasures/{request_id}"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    # ---------------------------------------------------------------------------------------------------------
    # A custodial wallet's kiosk: the person's did and PIN (5 wrong PINs lock the wallet, each lock longer)

    def _kiosk(self, did: str, call: str, body: dict[str, Any]) -> Any:
        path = f"/v1/custodial-wallets/{_did_path(did)}/{call}"
        return self.call("POST", path, idempotent=False, json=body).json()

    def kiosk_pay(
        self,
        did: str,
        pin: str,
        *,
        to: str,
        amount: int,
        currency: str,
        request_id: str,
        memo: str | None = None,
    ) -> Receipt:
        """Pay from a custodial wallet (``CITY``, or ``AID`` from the person's AID holder key): the city signs
        the transfer with their key and the ledger decides. `request_id` is the caller's id of this payment:
        sent again, it pays at most once and answers the same receipt."""
        body = json_object(pin=pin, to=to, amount=amount, currency=currency, request_id=request_id, memo=memo)
        return self._kiosk(did, "transfers", body)

    def kiosk_statement(self, did: str, pin: str) -> Statement:
        """A custodial wallet's balances (AID from its holder key) and latest transactions."""
        return self._kiosk(did, "statement", {"pin": pin})

    def kiosk_notices(self, did: str, pin: str) -> Inbox:
        return self._kiosk(did, "notices", {"pin": pin})

    def kiosk_aid_holder(self, did: str, pin: str) -> AidHolder:
        """The custodial person's AID holder key: where the city grants them AID."""
        return self._kiosk(did, "aid-holder", {"pin": pin})

    def kiosk_erase(self, did: str, pin: str, *, close_wallet: bool = False) -> Erasure:
        """The person's erasure, signed by the city with their key once the PIN opens it; with `close_wallet`
        the key itself is deleted and funds left in the wallet can no longer be spent."""
        return self._kiosk(did, "erasure", {"pin": pin, "close_wallet": close_wallet})
