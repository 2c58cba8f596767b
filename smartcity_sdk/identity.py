"""Identity (port 8104): identities, consents, notices, presentations, bindings, erasure, and the kiosk of a
custodial wallet (a person without a phone, whose key the city keeps under their PIN); and the calls of the
city's role-holders, each a key identity's settings list: an issuer's credentials (``IDENTITY_ISSUERS``), a
caseworker's enrolments and PIN resets (``IDENTITY_CASEWORKERS``), the notices role's notices
(``IDENTITY_NOTICE_SENDERS``), a provider's service records (``IDENTITY_PROVIDERS``).

Identity's writes and a person's reads of their own data are signed request bodies with an ``issued_at``
within 5 minutes of the server's time (`signed_request`), signed once per call: a retry sends the very same
body, well within that window.

Idempotent, so retried when no answer came (`smartcity_sdk.http`): registering an identity (the same did again
is answered 200), listing consents, reading notices, verifying a presentation, an erasure (its id derives from
the signed bytes), reading an erasure's status, a receipt's anchor, a binding (a wallet bound before is
answered 200 with its binding), an enrolment, a PIN reset, a notice, a service record (each the same signed
order again: answered 200, done once), a credential's revocation (revoking again keeps the first time), every
GET. Not: changing a consent (a change already stored is answered 409 ``stale-consent``), issuing a credential
(the same order again is answered 409 ``already-issued``, issued once), and the kiosk's PIN calls (a wrong PIN
whose answer was lost would count twice towards the lockout; a kiosk payment may be sent again by the caller
with the same ``request_id``, which pays at most once). Those are retried only on 429 and 503, answers that say
nothing was done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from smartcity_sdk.http import ServiceClient, json_object, operation
from smartcity_sdk.signed_reads import SignedReadAuth
from smartcity_sdk.signing import Keypair
from smartcity_sdk.timestamps import now_rfc3339
from smartcity_sdk.types import (
    AidHolder,
    BindingAnswer,
    ConsentChange,
    Consents,
    Credential,
    CredentialRevocation,
    Erasure,
    ExportedWallet,
    Identity,
    Inbox,
    NoticePosted,
    PinReset,
    Presentation,
    Receipt,
    ReceiptProof,
    Resolution,
    ServiceCounts,
    ServiceRecorded,
    Statement,
    VerifiedPresentation,
)

CITY_GRANTEE = "city"
"""The grantee standing for the city's own pipeline (ingest, rewards): what a reading's consent is given to."""
BINDING_AUDIENCE = "smartcity:bindings"
"""The audience of a binding presentation's key-binding JWT (its nonce is the wallet's did)."""
SERVICE_RECORDS_CATEGORY = "services"
"""The consent category a person grants a provider (``grantee``: its did) so that it may record the services it
gives them."""


def signed_request(key: Keypair, **fields: Any) -> dict[str, Any]:
    """`fields` with ``issued_at`` now, signed by `key`: an identity request body."""
    return key.sign({"issued_at": now_rfc3339(), **fields})


def _did_path(did: str) -> str:
    return quote(did, safe=":")


class IdentityClient(ServiceClient):
    """A client of the identity service (``IdentityClient("http://127.0.0.1:8104")``)."""

    @operation("GET", "/v1/identities/{did_value}")
    def resolve(self, did: str) -> Resolution:
        """A did:key's public key (multibase, JWK, hex) and DID document."""
        return self.call("GET", f"/v1/identities/{_did_path(did)}", idempotent=True).json()

    @operation("POST", "/v1/identities")
    def register(self, key: Keypair, *, zone: str | None = None) -> Identity:
        """Register the did:key of `key`, a person's own, with the city `zone` they live or stay in (notices to
        a zone's groups reach them)."""
        body = signed_request(key, **json_object(did=key.did, zone=zone))
        return self.call("POST", "/v1/identities", idempotent=True, json=body).json()

    @operation("POST", "/v1/consents")
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

    @operation("POST", "/v1/consents/query")
    def consents(self, key: Keypair) -> Consents:
        """The person's consents, each in its latest state with its receipt."""
        body = signed_request(key, did=key.did, action="list-consents")
        return self.call("POST", "/v1/consents/query", idempotent=True, json=body).json()

    @operation("POST", "/v1/consents/receipts/proof")
    def consent_receipt_proof(self, key: Keypair, receipt_id: str) -> ReceiptProof:
        """Where the person's consent receipt `receipt_id` (a `ConsentChange`'s ``receipt_id``) is anchored on
        the chain: the anchor's transaction and the receipt's inclusion path in its batch. A 409
        ``not-anchored-yet`` `ProblemError` until the next batch is anchored: ask again shortly."""
        body = signed_request(key, did=key.did, action="consent-receipt-proof", receipt_id=receipt_id)
        return self.call("POST", "/v1/consents/receipts/proof", idempotent=True, json=body).json()

    @operation("POST", "/v1/notices/inbox")
    def notices(self, key: Keypair, *, aid_holder: str | None = None) -> Inbox:
        """The person's unexpired notices, newest first; naming their AID holder key
        (`smartcity_sdk.aid_holder`) lets notices to their zone's AID holders reach them."""
        body = signed_request(key, **json_object(did=key.did, action="read-notices", aid_holder=aid_holder))
        return self.call("POST", "/v1/notices/inbox", idempotent=True, json=body).json()

    @operation("POST", "/v1/presentations/verify")
    def verify_presentation(self, presentation: str, *, nonce: str, audience: str) -> VerifiedPresentation:
        """Check an SD-JWT presentation made for `audience` with `nonce`: its issuer, type, validity and
        exactly the claims it discloses; a 400 `ProblemError` (``presentation-<reason>``) if it does not hold."""
        body = {"presentation": presentation, "nonce": nonce, "audience": audience}
        return self.call("POST", "/v1/presentations/verify", idempotent=True, json=body).json()

    @operation("POST", "/v1/erasures")
    def erase(self, key: Keypair) -> Erasure:
        """Ask the city to erase the person's data (README "Erasure": what goes, what stays): identity at once,
        then ingest and the ledger, which it forwards the request to. The same request again is the same
        erasure; `erasure` tells where it stands."""
        body = signed_request(key, did=key.did, action="erase")
        return self.call("POST", "/v1/erasures", idempotent=True, json=body).json()

    @operation("GET", "/v1/erasures/{request_id}")
    def erasure(self, request_id: str, reader: Keypair) -> Erasure:
        """Where an erasure stands, read by the person who asked for it (signed read)."""
        path = f"/v1/erasures/{request_id}"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    @operation("POST", "/v1/bindings")
    def bind_wallet(self, wallet: Keypair, presentation: str) -> BindingAnswer:
        """Bind `wallet` to the person of a resident credential, so that its readings earn rewards: signed by
        the wallet, with a `presentation` of the credential (SD-JWT, disclosing no claim) whose key-binding JWT
        the credential's holder key made for the audience `BINDING_AUDIENCE` with the wallet's did as nonce
        (the holder's wallet app makes it). A wallet bound before is answered with its binding."""
        body = signed_request(wallet, wallet=wallet.did, presentation=presentation)
        return self.call("POST", "/v1/bindings", idempotent=True, json=body).json()

    @operation("GET", "/v1/status-lists/resident")
    def status_list(self) -> str:
        """The status list of resident credentials: a Token Status List JWT (``typ statuslist+jwt``) signed by
        the city's key, a bit per credential (set: revoked)."""
        return self.call("GET", "/v1/status-lists/resident", idempotent=True).text

    @operation("GET", "/v1/service-records/counts")
    def service_counts(self, *, since: str | None = None, until: str | None = None) -> ServiceCounts:
        """Services given per service and day from `since` to `until` (YYYY-MM-DD, default the last 30 days):
        counts only, never who."""
        params = {"since": since, "until": until}
        return self.call("GET", "/v1/service-records/counts", idempotent=True, params=params).json()

    # ---------------------------------------------------------------------------------------------------------
    # The city's role-holders: each call is signed by a key identity's settings give the role

    @operation("POST", "/v1/credentials")
    def issue_credential(
        self,
        issuer: Keypair,
        subject: str,
        *,
        given_name: str,
        family_name: str,
        birthdate: str,
        address: str | None = None,
        photo_sha256: str | None = None,
    ) -> Credential:
        """Order a resident credential (an SD-JWT VC signed by the city's key) for the registered person
        `subject`, of their facts (`birthdate` YYYY-MM-DD; the credential's age_over_NN claims are computed
        from it). Issuer role only (``IDENTITY_ISSUERS``). The order is carried out once: sent again it is
        answered 409 ``already-issued`` (so a lost answer is not retried)."""
        facts = json_object(
            given_name=given_name,
            family_name=family_name,
            birthdate=birthdate,
            address=address,
            photo_sha256=photo_sha256,
        )
        body = signed_request(
            issuer, issuer=issuer.did, action="issue-credential", subject=subject, facts=facts
        )
        return self.call("POST", "/v1/credentials", idempotent=False, json=body).json()

    @operation("POST", "/v1/credentials/{credential_id}/revocation")
    def revoke_credential(self, issuer: Keypair, credential_id: str) -> CredentialRevocation:
        """Revoke a credential: its bit in the status list is set, and verifiers refuse it from then on.
        Issuer role only (``IDENTITY_ISSUERS``)."""
        body = signed_request(
            issuer, issuer=issuer.did, action="revoke-credential", credential_id=credential_id
        )
        path = f"/v1/credentials/{credential_id}/revocation"
        return self.call("POST", path, idempotent=True, json=body).json()

    @operation("POST", "/v1/custodial-wallets")
    def enrol(
        self,
        caseworker: Keypair,
        pin: str,
        *,
        photo_sha256: str | None = None,
        zone: str | None = None,
    ) -> Identity:
        """Enrol a person without a phone into a custodial wallet opened by their `pin` (4 to 12 digits); the
        answer's ``did`` is theirs. `photo_sha256` names the photo taken for the case file (what a later PIN
        reset can name as its re-proof), `zone` where they stay (notices to it reach them). Caseworker role only
        (``IDENTITY_CASEWORKERS``)."""
        fields = json_object(caseworker=caseworker.did, action="enrol", photo_sha256=photo_sha256, zone=zone)
        body = {"enrolment": signed_request(caseworker, **fields), "pin": pin}
        return self.call("POST", "/v1/custodial-wallets", idempotent=True, json=body).json()

    @operation("POST", "/v1/custodial-wallets/{did_value}/pin-reset")
    def reset_pin(
        self,
        caseworker: Keypair,
        did: str,
        new_pin: str,
        *,
        photo_sha256: str | None = None,
        credential: str | None = None,
    ) -> PinReset:
        """Give the custodial person `did`, who forgot their PIN, the `new_pin` they chose, on a re-proof of
        who they are: the photo on record (`photo_sha256`) or their resident credential (`credential`, the
        SD-JWT), exactly one. Their did, funds and credentials stay; wrong-PIN locks are lifted. Caseworker role
        only (``IDENTITY_CASEWORKERS``)."""
        if (photo_sha256 is None) == (credential is None):
            raise ValueError("give exactly one re-proof: photo_sha256 or credential")
        proof = json_object(photo_sha256=photo_sha256, credential=credential)
        order = signed_request(
            caseworker, caseworker=caseworker.did, action="reset-pin", did=did, proof=proof
        )
        path = f"/v1/custodial-wallets/{_did_path(did)}/pin-reset"
        return self.call("POST", path, idempotent=True, json={"order": order, "new_pin": new_pin}).json()

    @operation("POST", "/v1/notices")
    def post_notice(
        self,
        sender: Keypair,
        *,
        title: str,
        body: str,
        recipient: str | None = None,
        group: Mapping[str, str] | None = None,
        expires_at: str | None = None,
    ) -> NoticePosted:
        """Post a notice to one person (`recipient`, a registered did) or to a `group` (``{"custody":
        "custodial"}``, ``{"credential": vct}`` or ``{"aid_zone": zone}``, resolved when each reads their
        inbox), shown until `expires_at` (RFC 3339 UTC, at most 90 days on) if given. Notices role only
        (``IDENTITY_NOTICE_SENDERS``)."""
        fields = json_object(
            sender=sender.did,
            recipient=recipient,
            group=None if group is None else dict(group),
            title=title,
            body=body,
            expires_at=expires_at,
        )
        return self.call("POST", "/v1/notices", idempotent=True, json=signed_request(sender, **fields)).json()

    @operation("POST", "/v1/service-records")
    def record_service(self, provider: Keypair, subject: str, service: str, *, day: str) -> ServiceRecorded:
        """Record that `service` (a name: ``overnight_stay``, ...) was given to `subject` on `day`
        (YYYY-MM-DD), who must have granted `SERVICE_RECORDS_CATEGORY` to the provider (else a 403
        ``no-consent``). Provider role only (``IDENTITY_PROVIDERS``)."""
        fields = {"provider": provider.did, "subject": subject, "service": service, "day": day}
        body = signed_request(provider, **fields)
        return self.call("POST", "/v1/service-records", idempotent=True, json=body).json()

    # ---------------------------------------------------------------------------------------------------------
    # A custodial wallet's kiosk: the person's did and PIN (5 wrong PINs lock the wallet, each lock longer)

    def _kiosk(self, did: str, call: str, body: dict[str, Any]) -> Any:
        path = f"/v1/custodial-wallets/{_did_path(did)}/{call}"
        return self.call("POST", path, idempotent=False, json=body).json()

    @operation("POST", "/v1/custodial-wallets/{did_value}/transfers")
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

    @operation("POST", "/v1/custodial-wallets/{did_value}/statement")
    def kiosk_statement(self, did: str, pin: str) -> Statement:
        """A custodial wallet's balances (AID from its holder key) and latest transactions."""
        return self._kiosk(did, "statement", {"pin": pin})

    @operation("POST", "/v1/custodial-wallets/{did_value}/notices")
    def kiosk_notices(self, did: str, pin: str) -> Inbox:
        """The custodial person's notices and their groups' notices, unexpired, newest first."""
        return self._kiosk(did, "notices", {"pin": pin})

    @operation("POST", "/v1/custodial-wallets/{did_value}/aid-holder")
    def kiosk_aid_holder(self, did: str, pin: str) -> AidHolder:
        """The custodial person's AID holder key: where the city grants them AID."""
        return self._kiosk(did, "aid-holder", {"pin": pin})

    @operation("POST", "/v1/custodial-wallets/{did_value}/erasure")
    def kiosk_erase(self, did: str, pin: str, *, close_wallet: bool = False) -> Erasure:
        """The person's erasure, signed by the city with their key once the PIN opens it; with `close_wallet`
        the key itself is deleted and funds left in the wallet can no longer be spent."""
        return self._kiosk(did, "erasure", {"pin": pin, "close_wallet": close_wallet})

    @operation("POST", "/v1/custodial-wallets/{did_value}/export")
    def kiosk_export(self, did: str, pin: str) -> ExportedWallet:
        """Take the key out to the person's own device: the answer holds its seed and the credentials the city
        kept, and the city's copy is deleted (the identity becomes self-held)."""
        return self._kiosk(did, "export", {"pin": pin})

    @operation("POST", "/v1/custodial-wallets/{did_value}/presentations")
    def kiosk_present(
        self, did: str, pin: str, *, disclose: list[str], nonce: str, audience: str
    ) -> Presentation:
        """A presentation of the credential the city keeps for the custodial person, made with their key for
        `audience` with its `nonce`, disclosing only the claims named in `disclose` (e.g. ``["age_over_18"]``)."""
        body = {"pin": pin, "disclose": list(disclose), "nonce": nonce, "audience": audience}
        return self._kiosk(did, "presentations", body)

    @operation("POST", "/v1/custodial-wallets/{did_value}/binding")
    def kiosk_bind(self, did: str, pin: str) -> BindingAnswer:
        """Bind the custodial wallet to its holder: the city presents the credential it keeps for them and
        signs the request with their key (a 404 `ProblemError` if it keeps none)."""
        return self._kiosk(did, "binding", {"pin": pin})
