"""The public circulation report on the real broker and PostgreSQL: rewards settled from ``city.rewards.v1``, a
CITY transfer to a local merchant and one to a person, and exactly those figures in ``GET /v1/circulation``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.common.kafka import KafkaProducer
from services.common.months import last_months
from services.common.policy import parse_policy
from services.common.settings import PlatformSettings
from services.common.signing import Keypair, b64url_encode
from services.ledger.app import create_app
from services.ledger.settings import LedgerSettings
from tests.integration.test_ledger_transfers import publish_merchant
from tests.support.asgi import assert_problem
from tests.support.factories import (
    AS_AUDITOR,
    TEST_POLICY,
    TEST_ROLES,
    policy_publication,
    reward_records,
    signed_reward,
    signed_transfer,
)
from tests.support.topics import unique_group
from tests.support.waiting import until

pytestmark = pytest.mark.integration


async def test_circulation_sums_rewards_transfers_and_what_local_merchants_received(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    # A policy of this test alone: the rewards other tests leave on the topic name other policies, which this
    # chain does not hold, so only this test's rewards settle here and the figures are exact.
    policy = parse_policy({**dict(TEST_POLICY.document or {}), "version": f"circulation-{uuid.uuid4().hex}"})
    alice, bob, local_shop, chain_store = (Keypair.generate() for _ in range(4))
    await publish_merchant(kafka_bootstrap, local_shop, "food", locally_owned=True, accepts=["CITY"])
    await publish_merchant(kafka_bootstrap, chain_store, "grocery", locally_owned=False, accepts=["CITY"])
    settings = LedgerSettings(
        signing_key=SecretStr(b64url_encode(Keypair.generate().seed)),
        consumer_group=unique_group("ledger-circulation"),
        seal_interval_ms=50,
        verify_workers=0,
        genesis_roles=TEST_ROLES,
    )
    app = create_app(platform_settings, settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ledger") as client,
    ):
        published = await client.post("/v1/policies", json=policy_publication(policy))
        assert published.status_code == 201, published.text
        rewards = [
            signed_reward(alice, seq=i, amount=amount, policy=policy)
            for i, amount in enumerate((1000, 2000, 3000))
        ]
        rewards.append(signed_reward(bob, seq=1, amount=500, policy=policy))
        producer = KafkaProducer(kafka_bootstrap, "circulation-test")
        try:
            records = reward_records(rewards)
            assert await producer.send_batch(records) == [None] * len(records)
        finally:
            producer.close()

        async def sealed(wallet: str, count: int) -> list[dict[str, Any]] | None:
            answer = await client.get(f"/v1/accounts/{wallet}/transactions", auth=AS_AUDITOR)
            items = answer.json()["transactions"]
            return items if len(items) == count and all(i["leaf_index"] is not None for i in items) else None

        await until(lambda: sealed(alice.did, 3), "alice's rewards to be sealed")
        await until(lambda: sealed(bob.did, 1), "bob's reward to be sealed")

        async def merchants_known() -> bool:
            async with app.state.store.connection() as conn:
                wallets = [local_shop.did, chain_store.did]
                return (
                    await conn.fetchval("SELECT count(*) FROM merchants WHERE wallet = ANY($1)", wallets) == 2
                )

        await until(merchants_known, "the merchants to be folded from city.merchants.v1")

        # Spent at a local merchant, given to a person; CITY to a chain store is refused, and counts nowhere.
        for transfer in (
            signed_transfer(alice, local_shop.did, 1500, nonce=1),
            signed_transfer(alice, bob.did, 700, nonce=2),
        ):
            assert (await client.post("/v1/transfers", json=transfer)).status_code == 201
        refused = await client.post(
            "/v1/transfers", json=signed_transfer(alice, chain_store.did, 100, nonce=3)
        )
        assert assert_problem(refused, 403)["type"].endswith("/city-outside-community")
        await until(lambda: sealed(alice.did, 5), "alice's transfers to be sealed")
        await until(lambda: sealed(local_shop.did, 1), "the shop's payment to be sealed")

        answer = await client.get("/v1/circulation", params={"months": 3})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        checkpoint = (await client.get("/v1/checkpoint")).json()
        assert report["currency"] == "CITY" and report["unit"] == "micro-CITY"
        assert report["tree_size"] <= checkpoint["tree_size"]
        months = last_months(datetime.now(UTC), 3)
        assert [m["month"] for m in report["months"]] == months
        nothing = {
            "rewards": 0,
            "paid": 0,
            "transfers": 0,
            "transferred": 0,
            "merchant_payments": 0,
            "to_local_merchants": 0,
            "local_share": None,
        }
        assert report["months"][:2] == [{"month": month, **nothing} for month in months[:2]]
        assert report["months"][2] == {
            "month": months[2],
            "rewards": 4,
            "paid": 6500,
            "transfers": 2,
            "transferred": 2200,
            "merchant_payments": 1,
            "to_local_merchants": 1500,
            "local_share": 1500 / 2200,
        }
        # A shorter period is the end of the same report; the public names no wallet.
        one = (await client.get("/v1/circulation", params={"months": 1})).json()
        assert one["months"] == report["months"][-1:] and one["tree_size"] == report["tree_size"]
        assert "did:key:" not in answer.text
        for months_asked in (0, 25):
            assert_problem(await client.get("/v1/circulation", params={"months": months_asked}), 422)
