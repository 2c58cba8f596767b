"""Identity's answers as models (what its OpenAPI document shows, and what each route's answer is checked
against), and examples of its requests, made of real keys, signatures and credentials
(`services.common.openapi`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from services.common import sdjwt
from services.common.aid_holder import aid_holder
from services.common.bindings import RESIDENT_VCT, binding_request
from services.common.openapi import example_id, example_key, examples, schema_file
from services.identity import did
from services.identity.requests import request_id
from services.ledger.api.models import AccountTransaction

ALICE, CITY, CASEWORKER, ISSUER, SHELTER = (
    example_key(n) for n in ("alice", "identity", "caseworker", "issuer", "shelter")
)
TIME = "2026-03-14T09:26:53Z"
LATER = "2026-03-21T09:00:00Z"
MOMENT = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
IAT = int(MOMENT.timestamp())
CLAIMS = {
    "given_name": "Ada",
    "family_name": "Lovelace",
    "birthdate": "1990-12-10",
    "age_over_18": True,
    "age_over_21": True,
    "age_over_65": False,
    "resident_of": "Example City",
}
STATUS = {"status_list": {"idx": 17, "uri": "http://127.0.0.1:8104/v1/status-lists/resident"}}
SD_JWT = sdjwt.issue(CITY, ALICE.did, CLAIMS, vct=RESIDENT_VCT, iat=IAT, exp=IAT + 365 * 86400, status=STATUS)
PRESENTATION = sdjwt.present(
    SD_JWT, ["age_over_18"], ALICE, nonce="n-0S6_WzA2Mj", audience="https://shop", iat=IAT
)
WALLET_BINDING = binding_request(SD_JWT, ALICE, ALICE, MOMENT)
PIN = {"pin": "482913"}


def _signed(key: Any, obj: dict[str, Any]) -> dict[str, Any]:
    return key.sign({**obj, "issued_at": TIME})


CONSENT = _signed(
    ALICE,
    {
        "subject": ALICE.did,
        "category": "air_quality",
        "grantee": "city",
        "action": "grant",
        "purpose": "rewards",
    },
)
NOTICE = _signed(
    example_key("notices"),
    {
        "sender": example_key("notices").did,
        "group": {"custody": "custodial"},
        "title": "Cold night shelter open",
        "body": "The shelter at 12 Harbour Street opens at 18:00 tonight, beds for 40.",
        "expires_at": LATER,
    },
)
ENROLMENT = _signed(CASEWORKER, {"caseworker": CASEWORKER.did, "action": "enrol", "zone": "harbour"})
REQUESTS = {
    "registration": _signed(ALICE, {"did": ALICE.did, "zone": "harbour"}),
    "enrolment": {"enrolment": ENROLMENT, **PIN},
    "presentation": {**PIN, "disclose": ["age_over_18"], "nonce": "n-0S6_WzA2Mj", "audience": "https://shop"},
    "verify": {"presentation": PRESENTATION, "nonce": "n-0S6_WzA2Mj", "audience": "https://shop"},
    "credential": _signed(
        ISSUER,
        {
            "issuer": ISSUER.did,
            "action": "issue-credential",
            "subject": ALICE.did,
            "facts": {"given_name": "Ada", "family_name": "Lovelace", "birthdate": "1990-12-10"},
        },
    ),
    "revocation": _signed(
        ISSUER,
        {"issuer": ISSUER.did, "action": "revoke-credential", "credential_id": example_id("cred")[:32]},
    ),
    "consent": CONSENT,
    "list-consents": _signed(ALICE, {"did": ALICE.did, "action": "list-consents"}),
    "read-notices": _signed(
        ALICE, {"did": ALICE.did, "action": "read-notices", "aid_holder": aid_holder(ALICE).did}
    ),
    "receipt-proof": _signed(
        ALICE, {"did": ALICE.did, "action": "consent-receipt-proof", "receipt_id": example_id("receipt")}
    ),
    "binding": WALLET_BINDING,
    "notice": NOTICE,
    "service-record": _signed(
        SHELTER,
        {"provider": SHELTER.did, "subject": ALICE.did, "service": "overnight_stay", "day": "2026-03-14"},
    ),
    "custodial-transfer": {
        **PIN,
        "to": example_key("bakery").did,
        "amount": 3_200_000,
        "currency": "AID",
        "memo": "bread",
        "request_id": "kiosk-7-20260314-0042",
    },
    "pin-reset": {
        "order": _signed(
            CASEWORKER,
            {
                "caseworker": CASEWORKER.did,
                "action": "reset-pin",
                "did": ALICE.did,
                "proof": {"photo_sha256": example_id("photo")},
            },
        ),
        "new_pin": "730651",
    },
    "custodial-erasure": {**PIN, "close_wallet": False},
}


class Identity(BaseModel):
    """A registered did and who holds its key."""

    model_config = examples({"did": ALICE.did, "custody": "self"})
    did: str
    custody: str = Field(description="self (the person holds the key) or custodial (the city, under a PIN).")


class Resolution(BaseModel):
    """A did:key's public key, in three forms, and its DID document."""

    model_config = examples(did.resolve(ALICE.did))
    did: str
    public_key_multibase: str
    public_key_hex: str
    public_key_jwk: dict[str, str]
    did_document: dict[str, Any] = Field(
        description="The W3C DID document (@context, id, verificationMethod...)."
    )


class ExportedWallet(BaseModel):
    """A custodial key taken out to the person's own device: the city's copy is deleted."""

    model_config = examples(
        {
            "did": ALICE.did,
            "seed": "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8M",
            "custody": "self",
            "credentials": [SD_JWT],
        }
    )
    did: str
    seed: str = Field(description="base64url of the 32-byte Ed25519 seed.")
    custody: str
    credentials: list[str] = Field(description="The SD-JWT credentials the city kept for the person.")


class Presentation(BaseModel):
    """An SD-JWT presentation with its key-binding JWT, disclosing only the claims asked for."""

    model_config = examples({"presentation": PRESENTATION})
    presentation: str


class InboxNotice(BaseModel):
    notice_id: str
    sender: str
    title: str
    body: str
    posted_at: str
    group: dict[str, str] | None = Field(
        None, description="The group it was posted to, if not to one person."
    )
    expires_at: str | None = None
    notice: dict[str, Any] = Field(description="The signed notice as the sender posted it, to re-verify.")


class Inbox(BaseModel):
    """A person's notices and their groups' notices, unexpired, newest first."""

    model_config = examples(
        {
            "notices": [
                {
                    "notice_id": request_id(NOTICE),
                    "sender": NOTICE["sender"],
                    "title": NOTICE["title"],
                    "body": NOTICE["body"],
                    "posted_at": TIME,
                    "group": {"custody": "custodial"},
                    "expires_at": LATER,
                    "notice": NOTICE,
                }
            ]
        }
    )
    notices: list[InboxNotice]
    unresolved: list[str] | None = Field(
        None, description="Groups the inbox could not resolve now (the ledger did not answer): aid_zone."
    )


class Credential(BaseModel):
    """A resident credential issued: an SD-JWT VC whose claims are each selectively disclosable."""

    model_config = examples(
        {
            "credential_id": example_id("cred")[:32],
            "subject": ALICE.did,
            "vct": RESIDENT_VCT,
            "status_index": 17,
            "expires_at": "2027-03-14T09:26:53Z",
            "sd_jwt": SD_JWT,
        }
    )
    credential_id: str
    subject: str
    vct: str
    status_index: int = Field(description="Its bit in the status list.")
    expires_at: str
    sd_jwt: str


class Revocation(BaseModel):
    """A credential revoked: its bit in the status list is set."""

    model_config = examples(
        {"credential_id": example_id("cred")[:32], "status_index": 17, "revoked_at": TIME}
    )
    credential_id: str
    status_index: int
    revoked_at: str


class VerifiedPresentation(BaseModel):
    """A presentation that verified, and exactly the claims it discloses."""

    model_config = examples(
        {
            "issuer": CITY.did,
            "vct": RESIDENT_VCT,
            "issued_at": IAT,
            "expires_at": IAT + 365 * 86400,
            "disclosed": {"age_over_18": True},
        }
    )
    issuer: str
    vct: str
    issued_at: int = Field(description="Seconds since the epoch.")
    expires_at: int
    disclosed: dict[str, Any]


CONSENT_RECORD = {
    "subject": ALICE.did,
    "category": "air_quality",
    "grantee": "city",
    "purpose": "rewards",
    "status": "granted",
    "changed_at": TIME,
    "consent": CONSENT,
}
CONSENT_RECEIPT = CITY.sign(
    {
        "issuer": CITY.did,
        "subject": ALICE.did,
        "category": "air_quality",
        "grantee": "city",
        "status": "granted",
        "changed_at": TIME,
        "consent_sha256": example_id("consent"),
    }
)


class ConsentChange(BaseModel):
    """A consent change recorded and published: the city.consents.v1 record and the city's signed receipt."""

    model_config = examples(
        {"record": CONSENT_RECORD, "receipt": CONSENT_RECEIPT, "receipt_id": example_id("receipt")}
    )
    record: Annotated[dict[str, Any], schema_file("consents.v1", "The city.consents.v1 value.")]
    receipt: dict[str, Any] = Field(description="Signed by the city's identity key (issuer).")
    receipt_id: str = Field(description="sha256 hex of the receipt's JCS bytes without sig.")


class ConsentState(BaseModel):
    subject: str
    category: str
    grantee: str
    status: str
    purpose: str
    changed_at: str
    consent: Annotated[dict[str, Any], schema_file("defs.v1.consent", "The signed consent.")]
    receipt: dict[str, Any]
    until: str | None = None


class Consents(BaseModel):
    """A person's consents, each with its latest receipt."""

    model_config = examples({"consents": [{**CONSENT_RECORD, "receipt": CONSENT_RECEIPT}]})
    consents: list[ConsentState]


class ReceiptProof(BaseModel):
    """Where a consent receipt is anchored on the ledger's chain."""

    model_config = examples(
        {
            "receipt_id": example_id("receipt"),
            "receipt": CONSENT_RECEIPT,
            "tx_id": example_id("anchor"),
            "anchor": {"kind": "consent-receipts", "root": example_id("receipts root"), "size": 128},
            "leaf_index": 5,
            "audit_path": [example_id("receipt 4"), example_id("receipts 6-7"), example_id("receipts 0-3")],
        }
    )
    receipt_id: str
    receipt: dict[str, Any]
    tx_id: str = Field(description="The ledger transaction of the anchor.")
    anchor: dict[str, Any] = Field(description="The signed anchor on the chain.")
    leaf_index: int = Field(description="The receipt's leaf in the anchored batch.")
    audit_path: list[str] = Field(description="Its RFC 9162 inclusion path in the batch, hex.")


class Binding(BaseModel):
    wallet: str
    person: str = Field(
        description="sha256 hex of the credential's issuer-signed JWT: the same for every wallet."
    )
    issuer: str
    expires_at: str
    bound_at: str
    binding: Annotated[dict[str, Any], schema_file("defs.v1.binding", "The wallet's signed binding request.")]


class BindingAnswer(BaseModel):
    """A wallet's binding to a person, as published to city.bindings.v1."""

    model_config = examples(
        {
            "binding": {
                "wallet": ALICE.did,
                "person": example_id("person"),
                "issuer": CITY.did,
                "expires_at": "2027-03-14T09:26:53Z",
                "bound_at": TIME,
                "binding": WALLET_BINDING,
            }
        }
    )
    binding: Binding


class NoticePosted(BaseModel):
    model_config = examples({"notice_id": request_id(NOTICE)})
    notice_id: str = Field(description="The signed notice's id: the same notice again is the same id.")


class ServiceRecorded(BaseModel):
    model_config = examples({"record_id": example_id("service record")})
    record_id: str


class ServiceCount(BaseModel):
    service: str
    day: str
    count: int


class ServiceCounts(BaseModel):
    """Services given per service and day: counts only, never who."""

    model_config = examples(
        {
            "since": "2026-02-12",
            "until": "2026-03-14",
            "counts": [{"service": "overnight_stay", "day": "2026-03-14", "count": 31}],
        }
    )
    since: str
    until: str
    counts: list[ServiceCount]


class PinReset(BaseModel):
    model_config = examples({"did": ALICE.did, "proof": "photo", "reset_at": TIME})
    did: str
    proof: str = Field(description="The re-proof the caseworker gave: photo or credential.")
    reset_at: str


class Statement(BaseModel):
    """A custodial holder's balances and latest transactions, of their wallet and their AID holder key."""

    model_config = examples(
        {
            "did": ALICE.did,
            "aid_holder": aid_holder(ALICE).did,
            "balances": {"CITY": 1_250_000, "AID": 40_000_000, "CREDIT": 0},
            "transactions": [
                {
                    "tx_id": example_id("transfer"),
                    "leaf_index": 41,
                    "block_height": 6,
                    "type": "transfer",
                    "changes": {"AID": -3_200_000},
                    "settled_at": TIME,
                    "seq": 42,
                }
            ],
            "more": False,
        }
    )
    did: str
    aid_holder: str
    balances: dict[str, int]
    transactions: list[AccountTransaction]
    more: bool


class AidHolder(BaseModel):
    """The account the city grants a person AID to, which the public chain cannot link to their wallet."""

    model_config = examples({"did": ALICE.did, "aid_holder": aid_holder(ALICE).did})
    did: str
    aid_holder: str


class Erasure(BaseModel):
    """An erasure's status: when identity, ingest and the ledger each completed their part."""

    model_config = examples(
        {
            "request_id": example_id("erasure")[:32],
            "did": ALICE.did,
            "status": "in-progress",
            "requested_at": TIME,
            "completed": {"identity": TIME, "ingest": TIME, "ledger": None},
            "completed_at": None,
            "close_wallet": False,
            "attempts": 1,
            "request": _signed(ALICE, {"did": ALICE.did, "action": "erase"}),
        }
    )
    request_id: str
    did: str
    status: str = Field(description="in-progress or completed.")
    requested_at: str
    completed: dict[str, str | None]
    completed_at: str | None
    close_wallet: bool
    attempts: int
    request: dict[str, Any] = Field(description="The signed request.")
