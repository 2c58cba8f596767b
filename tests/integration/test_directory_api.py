"""The directory API on a real broker and PostgreSQL: register, update, list and get merchants, and their
facts on the compacted topic city.merchants.v1."""

from __future__ import annotations

import json

from services.common import embedded, schemas, signing
from services.common.events import headers_dict
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import MERCHANTS
from services.directory.app import create_app
from tests.support.asgi import assert_problem, running
from tests.support.topics import end_offsets, records_published_during


def _registration(wallet: Keypair, **overrides) -> dict:
    body = {
        "wallet": wallet.did,
        "name": "Corner Bakery",
        "category": "food",
        "locally_owned": True,
        "accepts": ["CITY", "AID"],
        "address": "1 Market Square",
        "lat": 52.37,
        "lon": 4.9,
        **overrides,
    }
    return wallet.sign({k: v for k, v in body.items() if v is not None})


async def test_register_update_list_get_and_publish(platform_settings: PlatformSettings):
    bakery, pharmacy, clinic = Keypair.generate(), Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    async with running(create_app(platform_settings)) as client:
        start = await end_offsets(bootstrap, MERCHANTS)
        created = await client.post("/v1/merchants", json=_registration(bakery))
        assert created.status_code == 201, created.text
        assert created.json()["verified"] is False
        renamed = _registration(bakery, name="Corner Bakery & Café")
        updated = await client.post("/v1/merchants", json=renamed)
        assert updated.status_code == 200, updated.text
        assert updated.json()["name"] == "Corner Bakery & Café"
        assert updated.json()["registered_at"] == created.json()["registered_at"]
        assert updated.json()["registration"] == renamed
        for wallet, name, category in ((pharmacy, "Apotheek", "pharmacy"), (clinic, "Zorg", "health")):
            body = _registration(wallet, name=name, category=category, address=None, lat=None, lon=None)
            assert (await client.post("/v1/merchants", json=body)).status_code == 201

        got = await client.get(f"/v1/merchants/{bakery.did}")
        assert got.status_code == 200 and got.json() == updated.json()
        assert_problem(await client.get(f"/v1/merchants/{Keypair.generate().did}"), 404)
        assert_problem(await client.get("/v1/merchants/nobody"), 400)

        everyone = (await client.get("/v1/merchants")).json()
        assert everyone["total"] == 3
        assert [m["name"] for m in everyone["merchants"]] == ["Apotheek", "Corner Bakery & Café", "Zorg"]
        page = (await client.get("/v1/merchants", params={"limit": 1, "offset": 1})).json()
        assert [m["name"] for m in page["merchants"]] == ["Corner Bakery & Café"] and page["total"] == 3
        food = (await client.get("/v1/merchants", params={"category": "food"})).json()
        assert [m["wallet"] for m in food["merchants"]] == [bakery.did] and food["total"] == 1
        assert_problem(await client.get("/v1/merchants", params={"category": "weapons"}), 422)
        assert_problem(await client.get("/v1/merchants", params={"limit": 0}), 422)
        assert (await client.get("/v1/categories")).json()["categories"]["food"]

        published = await records_published_during(bootstrap, MERCHANTS, start)

    mine = [m for m in published if m.key() == bakery.did.encode()]
    assert len(mine) == 2  # one record per registration: consumers fold them to the latest per key
    facts = [json.loads(m.value()) for m in sorted(mine, key=lambda m: m.offset())]
    for fact, message in zip(facts, mine, strict=True):
        schemas.validate(MERCHANTS, fact)
        headers = headers_dict(message.headers())
        assert headers["ce_type"] == "city.merchant.v1" and headers["ce_source"] == "smartcity/directory"
    assert facts[-1]["name"] == "Corner Bakery & Café"
    assert facts[-1]["registration"] == renamed
    assert facts[-1]["verified"] is False and facts[-1]["category"] == "food"
    signing.verify(facts[-1]["registration"], "wallet")
    assert {m.key() for m in published} >= {pharmacy.did.encode(), clinic.did.encode()}


async def test_bad_registrations_get_a_problem_and_store_nothing(platform_settings: PlatformSettings):
    wallet = Keypair.generate()
    async with running(create_app(platform_settings)) as client:
        assert_problem(await client.post("/v1/merchants", content=b"{nope"), 400)
        assert_problem(await client.post("/v1/merchants", json=["a list"]), 422)
        wrong = await client.post(
            "/v1/merchants", json=_registration(wallet, category="weapons", lat="north")
        )
        fields = {e["field"] for e in assert_problem(wrong, 422)["errors"]}
        assert {"category", "lat"} <= fields
        tampered = {**_registration(wallet), "name": "Another Bakery"}
        assert_problem(await client.post("/v1/merchants", json=tampered), 400)
        assert (await client.get("/v1/merchants")).json()["total"] == 0


async def test_broker_unreachable_gives_503_and_stores_nothing(platform_settings: PlatformSettings):
    unreachable = platform_settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{embedded.free_port()}", "kafka_send_timeout_s": 1.0}
    )
    wallet = Keypair.generate()
    async with running(create_app(unreachable)) as client:
        response = await client.post("/v1/merchants", json=_registration(wallet))
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0
        assert_problem(await client.get(f"/v1/merchants/{wallet.did}"), 404)
