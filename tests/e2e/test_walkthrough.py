"""End to end on `smartcity up`: one person without a phone walks through the city's services.

A caseworker enrols them; the city grants them AID for food on the strength of a presentation of their
resident credential (the chain shows why, and nothing more than was disclosed, and names only their AID holder
key, never their wallet); they pay a verified food merchant with their PIN at a kiosk, and a pharmacy is
refused; the merchant's balance and a verified inclusion proof show the payment; they forget their PIN and a
caseworker resets it, their funds untouched; a shelter notice broadcast to everyone the city holds a wallet
for reaches their kiosk inbox.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from nacl import pwhash

from bench._running import RunningPlatform, fresh_platform
from services.common import events, merkle, signing
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from tests.support.factories import merchant_registration, merchant_verification

pytestmark = pytest.mark.e2e

PIN, NEW_PIN = "2468", "9731"
PHOTO = hashlib.sha256(b"photo taken at the shelter desk").hexdigest()
AID_AUDIENCE = "https://aid.smartcity.example/food"
FOOD_AID = 40_000_000  # 40 AID
DEADLINE_S = 60.0
UNSEEN = ("aid-merchants-only", "merchant-not-verified")
"""The ledger's answers for AID to a wallet it does not know yet as a merchant the city verified."""


class People:
    """The keys of everyone in the story besides the person, who has none."""

    def __init__(self) -> None:
        self.caseworker = Keypair.generate()
        self.issuer = Keypair.generate()  # the city's issuer: credentials and AID
        self.verifier = Keypair.generate()  # verifies merchants in the directory
        self.notices = Keypair.generate()
        self.grocer = Keypair.generate()
        self.pharmacy = Keypair.generate()


@pytest.fixture(scope="module")
def people() -> People:
    return People()


@pytest.fixture(scope="module")
def platform(people: People) -> Iterator[RunningPlatform]:
    env = {
        "IDENTITY_CASEWORKERS": json.dumps([people.caseworker.did]),
        "IDENTITY_ISSUERS": json.dumps([people.issuer.did]),
        "IDENTITY_NOTICE_SENDERS": json.dumps([people.notices.did]),
        "IDENTITY_PIN_OPSLIMIT": str(pwhash.argon2id.OPSLIMIT_MIN),
        "IDENTITY_PIN_MEMLIMIT": str(pwhash.argon2id.MEMLIMIT_MIN),
        "LEDGER_ISSUER_KEYS": people.issuer.did,
        "DIRECTORY_VERIFIER_KEYS": json.dumps([people.verifier.did]),
    }
    with fresh_platform("--no-simulate", env=env, prefix="smartcity-walk-") as running:
        yield running


def signed(key: Keypair, **fields: Any) -> dict[str, Any]:
    return key.sign({"issued_at": events.now_rfc3339(), **fields})


def ok(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or (200, 201)), response.text
    return response.json()


def until(what: str, attempt: Any) -> Any:
    """`attempt()` until it returns something truthy, within DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not (result := attempt()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.3)
    return result


def test_a_person_without_a_phone_gets_aid_pays_at_a_kiosk_and_is_reached(
    platform: RunningPlatform, people: People
) -> None:
    identity, ledger, directory = (platform.url(name) for name in ("identity", "ledger", "directory"))
    with httpx.Client(timeout=15) as http:
        # 1. A caseworker enrols a person who has no device, and the city issues their resident credential.
        enrolment = signed(
            people.caseworker, caseworker=people.caseworker.did, action="enrol", photo_sha256=PHOTO
        )
        person = ok(http.post(f"{identity}/v1/custodial-wallets", json={"enrolment": enrolment, "pin": PIN}))[
            "did"
        ]
        facts = {"given_name": "Sam", "family_name": "Doe", "birthdate": "1970-03-04"}
        order = signed(
            people.issuer, issuer=people.issuer.did, action="issue-credential", subject=person, facts=facts
        )
        ok(http.post(f"{identity}/v1/credentials", json=order))
        kiosk = f"{identity}/v1/custodial-wallets/{person}"
        # AID goes to the person's AID holder key, which the public chain cannot link to their wallet.
        holder = ok(http.post(f"{kiosk}/aid-holder", json={"pin": PIN}))["aid_holder"]
        assert holder != person

        # 2. At the kiosk the person presents that they live in the city and are an adult, nothing else; the
        # city verifies the presentation and grants food AID resting on it.
        nonce = signing.b64url_encode(hashlib.sha256(person.encode()).digest()[:12])
        asked = {
            "pin": PIN,
            "disclose": ["resident_of", "age_over_18"],
            "nonce": nonce,
            "audience": AID_AUDIENCE,
        }
        presentation = ok(http.post(f"{kiosk}/presentations", json=asked))["presentation"]
        checked = ok(
            http.post(
                f"{identity}/v1/presentations/verify",
                json={"presentation": presentation, "nonce": nonce, "audience": AID_AUDIENCE},
            )
        )
        assert checked["disclosed"] == {"resident_of": "Smart City", "age_over_18": True}
        eligibility = {
            "presentation_sha256": hashlib.sha256(presentation.encode()).hexdigest(),
            "credential": checked["vct"],
            "issuer": checked["issuer"],
            "disclosed": checked["disclosed"],
        }
        expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        commands = [
            {"command": "fund", "pool": "aid", "currency": "AID", "amount": 10 * FOOD_AID},
            {
                "command": "grant",
                "holder": holder,
                "amount": FOOD_AID,
                "categories": ["grocery"],
                "expires_at": expires,
                "eligibility": eligibility,
            },
        ]
        # An eligibility that names no disclosed claim, or carries more than the schema's fields, is refused.
        for malformed in ({**eligibility, "disclosed": {}}, {**eligibility, "presentation": presentation}):
            body = people.issuer.sign(
                {**commands[1], "eligibility": malformed, "issuer": people.issuer.did, "nonce": 1}
            )
            problem = http.post(f"{ledger}/v1/issuer/commands", json=body)
            assert (
                problem.status_code == 422 and problem.headers["content-type"] == "application/problem+json"
            )
        for nonce_n, command in enumerate(commands, start=1):
            body = people.issuer.sign({**command, "issuer": people.issuer.did, "nonce": nonce_n})
            grant = ok(http.post(f"{ledger}/v1/issuer/commands", json=body), 201)
        on_chain = ok(http.get(f"{ledger}/v1/transactions/{grant['tx_id']}"))
        assert on_chain["command"]["eligibility"] == eligibility
        for personal in ("Sam", "1970", person):
            assert personal not in json.dumps(on_chain)

        # 3. A grocer and a pharmacy register in the directory and the city verifies both.
        for merchant, name, category in (
            (people.grocer, "Corner Grocer", "grocery"),
            (people.pharmacy, "Bridge Pharmacy", "pharmacy"),
        ):
            registration = merchant_registration(merchant, name=name, category=category)
            ok(http.post(f"{directory}/v1/merchants", json=registration), 201)
            verification = merchant_verification(people.verifier, registration)
            ok(http.post(f"{directory}/v1/merchants/{merchant.did}/verification", json=verification))

        # 4. The person pays the grocer with their PIN. Until the ledger has folded the directory's verification
        # it refuses AID to the grocer; each attempt is a new request, and a refused one pays nothing.
        attempts = iter(range(1000))

        def pay(to: Keypair, amount: int, pin: str = PIN) -> httpx.Response:
            payment = {
                "pin": pin,
                "to": to.did,
                "amount": amount,
                "currency": "AID",
                "memo": "groceries",
                "request_id": f"kiosk-{next(attempts)}",
            }
            return http.post(f"{kiosk}/transfers", json=payment)

        def settled_payment() -> dict[str, Any] | None:
            response = pay(people.grocer, 12_500_000)
            if response.status_code == 403 and response.json()["type"].endswith(UNSEEN):
                return None
            return ok(response, 201)

        receipt = until("the ledger knows the grocer", settled_payment)

        # 5. AID is for food: the (verified) pharmacy is refused, with the reason.
        def pharmacy_answer() -> dict[str, Any] | None:
            response = pay(people.pharmacy, 1_000_000)
            problem = response.json()
            if response.status_code == 403 and problem["type"].endswith(UNSEEN):
                return None
            return problem

        refused = until("the ledger knows the pharmacy", pharmacy_answer)
        assert refused["type"].endswith("/aid-not-allowed"), refused
        assert (
            ok(http.get(f"{ledger}/v1/accounts/{people.pharmacy.did}", auth=SignedReadAuth(people.pharmacy)))[
                "balances"
            ].get("AID", 0)
            == 0
        )

        # 6. The grocer's balance shows the payment, and the chain proves it: the transaction's leaf is in the
        # tree whose root the ledger signed.
        assert (
            ok(http.get(f"{ledger}/v1/accounts/{people.grocer.did}", auth=SignedReadAuth(people.grocer)))[
                "balances"
            ]["AID"]
            == 12_500_000
        )
        tx_id = receipt["tx_id"]

        def sealed() -> dict[str, Any] | None:
            record = http.get(f"{ledger}/v1/transactions/{tx_id}").json()
            checkpoint = http.get(f"{ledger}/v1/checkpoint").json()
            proof = http.get(
                f"{ledger}/v1/transactions/{tx_id}/proof", params={"tree_size": checkpoint["tree_size"]}
            )
            return (
                {"record": record, "checkpoint": checkpoint, "proof": proof.json()}
                if proof.is_success
                else None
            )

        chain = until("the payment is sealed", sealed)
        checkpoint, proof, record = chain["checkpoint"], chain["proof"], chain["record"]
        body = {k: v for k, v in checkpoint.items() if k != "signature"}
        signing.verify_bytes(
            checkpoint["public_key"],
            signing.canonical_bytes(body),
            signing.b64url_decode(checkpoint["signature"]),
        )
        merkle.verify_inclusion(
            merkle.leaf_hash(signing.canonical_bytes(record)),
            proof["leaf_index"],
            checkpoint["tree_size"],
            [bytes.fromhex(h) for h in proof["audit_path"]],
            bytes.fromhex(checkpoint["root_hash"]),
        )
        assert record["transfer"]["from"] == holder and record["transfer"]["to"] == people.grocer.did
        assert person not in json.dumps(record)

        # 7. The person forgets their PIN; a caseworker resets it on the photo on record. Same did, same funds.
        reset = signed(
            people.caseworker,
            caseworker=people.caseworker.did,
            action="reset-pin",
            did=person,
            proof={"photo_sha256": PHOTO},
        )
        ok(http.post(f"{kiosk}/pin-reset", json={"order": reset, "new_pin": NEW_PIN}), 201)
        assert http.post(f"{kiosk}/statement", json={"pin": PIN}).status_code == 403
        statement = ok(http.post(f"{kiosk}/statement", json={"pin": NEW_PIN}))
        assert statement["did"] == person and statement["aid_holder"] == holder
        assert tx_id in [tx["tx_id"] for tx in statement["transactions"]]
        assert statement["balances"]["AID"] == FOOD_AID - 12_500_000

        # 8. A shelter's notice to everyone the city holds a wallet for reaches the person's kiosk inbox.
        tonight = (datetime.now(UTC) + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
        notice = signed(
            people.notices,
            sender=people.notices.did,
            group={"custody": "custodial"},
            title="Shelter beds tonight",
            body="40 beds tonight at the Harbour Street shelter, doors open 19:00.",
            expires_at=tonight,
        )
        ok(http.post(f"{identity}/v1/notices", json=notice), 201)
        inbox = ok(http.post(f"{kiosk}/notices", json={"pin": NEW_PIN}))["notices"]
        assert [n["title"] for n in inbox] == ["Shelter beds tonight"]
