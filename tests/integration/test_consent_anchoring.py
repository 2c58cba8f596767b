"""Consent receipts anchored on the chain (identity and the ledger on a real broker and PostgreSQL): a consent
change is receipted, anchored (its batch's Merkle root, signed by identity's key holding the consent-anchor
role), and the subject's proof checks against the ledger's signed checkpoint; a tampered receipt does not."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from nacl import pwhash
from pydantic import SecretStr

from services.common import events, merkle, signing
from services.common.consents import CITY
from services.common.roles import Role
from services.common.settings import PlatformSettings
from services.common.signing import Keypair, b64url_encode
from services.identity.anchoring import anchor_pending
from services.identity.app import create_app as create_identity
from services.identity.settings import IdentitySettings
from services.ledger.anchors import check_anchor, verify_receipt
from services.ledger.app import create_app as create_ledger
from services.ledger.money import check_money
from services.ledger.settings import LedgerSettings
from tests.support.asgi import assert_problem, running
from tests.support.factories import TEST_ROLES
from tests.support.topics import unique_group
from tests.support.waiting import until

pytestmark = pytest.mark.integration


def change(subject: Keypair, action: str) -> dict[str, Any]:
    body = {
        "subject": subject.did,
        "category": "mobility",
        "grantee": CITY,
        "action": action,
        "purpose": "rewards for bike trips",
        "issued_at": events.now_rfc3339(),
    }
    return subject.sign(body)


def proof_request(subject: Keypair, receipt_id: str) -> dict[str, Any]:
    return subject.sign(
        {
            "did": subject.did,
            "action": "consent-receipt-proof",
            "receipt_id": receipt_id,
            "issued_at": events.now_rfc3339(),
        }
    )


async def test_a_consent_receipt_is_anchored_and_proven_against_the_checkpoint(
    platform_settings: PlatformSettings,
):
    city, ledger_key, outsider = Keypair.generate(), Keypair.generate(), Keypair.generate()
    ledger = create_ledger(
        platform_settings,
        LedgerSettings(
            signing_key=SecretStr(b64url_encode(ledger_key.seed)),
            consumer_group=unique_group("ledger-anchors"),
            seal_interval_ms=50,
            genesis_roles={**TEST_ROLES, Role.CONSENT_ANCHOR: [city.did]},
        ),
    )
    identity = create_identity(
        platform_settings,
        IdentitySettings(
            city_key=SecretStr(b64url_encode(city.seed)),
            pin_opslimit=pwhash.argon2id.OPSLIMIT_MIN,
            pin_memlimit=pwhash.argon2id.MEMLIMIT_MIN,
            anchor_interval_s=3600,  # anchored by the test, when it says
        ),
    )
    alice, bob = Keypair.generate(), Keypair.generate()
    async with running(ledger) as chain, running(identity) as client:

        async def submit(anchor: dict[str, Any]) -> str:
            response = await chain.post("/v1/anchors", json=anchor)
            assert response.status_code in (200, 201), response.text
            return response.json()["tx_id"]

        made = []
        for subject, action in ((alice, "grant"), (bob, "grant"), (alice, "revoke")):
            response = await client.post("/v1/consents", json=change(subject, action))
            assert response.status_code == 201, response.text
            made.append(response.json())
        revocation = made[2]
        assert revocation["receipt_id"] == signing.object_id(revocation["receipt"])
        # Not anchored yet: the subject is told so.
        assert_problem(
            await client.post(
                "/v1/consents/receipts/proof", json=proof_request(alice, revocation["receipt_id"])
            ),
            409,
        )

        # Anchored: one chain record for the batch; an outsider's anchor is refused (no role), and anchoring
        # the same batch again is the same record.
        assert await anchor_pending(identity.state.engine, city, submit) >= 3
        assert await anchor_pending(identity.state.engine, city, submit) == 0
        refused = await chain.post(
            "/v1/anchors",
            json=outsider.sign(
                {
                    "anchorer": outsider.did,
                    "kind": "consent-receipts",
                    "root": "00" * 32,
                    "size": 1,
                    "issued_at": events.now_rfc3339(),
                }
            ),
        )
        assert_problem(refused, 403)

        # The subject's proof, and nobody else's: bob cannot ask for alice's receipt.
        assert_problem(
            await client.post(
                "/v1/consents/receipts/proof", json=proof_request(bob, revocation["receipt_id"])
            ),
            404,
        )
        answer = await client.post(
            "/v1/consents/receipts/proof", json=proof_request(alice, revocation["receipt_id"])
        )
        assert answer.status_code == 200, answer.text
        proof = answer.json()
        assert proof["receipt"] == revocation["receipt"] and proof["receipt"]["status"] == "revoked"
        again = await chain.post("/v1/anchors", json=proof["anchor"])
        assert again.status_code == 200 and again.json()["tx_id"] == proof["tx_id"]

        # What the citizen checks, with nothing but the ledger's public API and key.
        async def sealed() -> httpx.Response | None:
            response = await chain.get(f"/v1/transactions/{proof['tx_id']}/proof")
            return response if response.status_code == 200 else None

        await until(sealed, "the anchor to be sealed")
        header = (await chain.get("/v1/checkpoint")).json()
        inclusion = (
            await chain.get(
                f"/v1/transactions/{proof['tx_id']}/proof", params={"tree_size": header["tree_size"]}
            )
        ).json()
        record = (await chain.get(f"/v1/transactions/{proof['tx_id']}")).content
        path = [bytes.fromhex(h) for h in proof["audit_path"]]

        def check(
            receipt: dict[str, Any], index: int = proof["leaf_index"], hashes: list[bytes] = path
        ) -> Any:
            return verify_receipt(receipt, index, hashes, record, inclusion, header, ledger_key.did, city.did)

        anchor = check(proof["receipt"])
        assert anchor == proof["anchor"] and anchor["anchorer"] == city.did

        # A tampered receipt fails: its text changed (the signature breaks), re-signed by another key, or the
        # genuine grant presented at the revocation's place in the batch.
        with pytest.raises(signing.SignatureError):
            check({**proof["receipt"], "status": "granted"})
        with pytest.raises(ValueError, match="issued by"):
            check(outsider.sign({**signing.unsigned(proof["receipt"]), "issuer": outsider.did}))
        with pytest.raises(merkle.ProofError):
            check(made[0]["receipt"])

        # The verifier's replay accepts the record: the anchorer's signature and role, no money.
        leaf = json.loads(record)
        assert check_anchor(leaf["anchor"]) == (city.did, Role.CONSENT_ANCHOR)
        check_money(leaf, lambda grant: "")
