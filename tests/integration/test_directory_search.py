"""Local-first search and alternatives on the real PostgreSQL (full-text, trigram typos, distance, filters,
opening hours, pagination), with merchants registered and verified through the API."""

from __future__ import annotations

import math

import httpx
import pytest

from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.directory import ranking
from services.directory.app import create_app
from services.directory.merchants import registration_hash
from services.directory.settings import DirectorySettings
from tests.support.asgi import assert_problem, running

HOME = (52.3700, 4.9000)
CITY = Keypair.generate()  # holds the directory role in these tests
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _at(km_north: float, km_east: float = 0.0) -> tuple[float, float]:
    """A point `km_north` and `km_east` of HOME."""
    return (
        round(HOME[0] + km_north / 111.195, 6),
        round(HOME[1] + km_east / (111.195 * math.cos(math.radians(HOME[0]))), 6),
    )


def _registration(key: Keypair, name: str, where: tuple[float, float], **extra) -> dict:
    body = {
        "wallet": key.did,
        "name": name,
        "category": "food",
        "locally_owned": True,
        "accepts": ["CITY"],
        "lat": where[0],
        "lon": where[1],
        **extra,
    }
    return key.sign(body)


async def _add(client: httpx.AsyncClient, name: str, where, *, verify: bool = True, **extra) -> Keypair:
    """Register a merchant; have the city verify what it claims unless `verify` is False."""
    key = Keypair.generate()
    signed = _registration(key, name, where, **extra)
    response = await client.post("/v1/merchants", json=signed)
    assert response.status_code == 201, response.text
    if verify:
        response = await client.post(f"/v1/merchants/{key.did}/verification", json=_verification(key, signed))
        assert response.status_code == 200, response.text
    return key


def _verification(key: Keypair, signed: dict, verified_at: str = "2026-11-21T10:00:00Z", **found) -> dict:
    return CITY.sign(
        {
            "merchant": key.did,
            "registration": registration_hash(signed),
            "category": found.get("category", signed["category"]),
            "locally_owned": found.get("locally_owned", signed["locally_owned"]),
            "verified_at": verified_at,
            "verifier": CITY.did,
        }
    )


def _app(platform: PlatformSettings):
    return create_app(platform, DirectorySettings(verifier_keys=[CITY.did], city_timezone="Europe/Amsterdam"))


async def _search(client: httpx.AsyncClient, **params) -> dict:
    response = await client.get("/v1/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _names(body: dict, key: str = "results") -> list[str]:
    return [r["name"] for r in body[key]]


async def test_a_local_shop_beats_a_chain_at_equal_relevance_and_distance(
    platform_settings: PlatformSettings,
):
    async with running(_app(platform_settings)) as client:
        await _add(client, "MegaBake Bakery", _at(0.5), locally_owned=False, chain="MegaBake")
        await _add(client, "Corner Bakery", _at(0, 0.5))
        await _add(client, "Claimed Bakery", _at(-0.5), verify=False)  # says local, not verified
        body = await _search(client, q="bakery", lat=HOME[0], lon=HOME[1])
        assert _names(body) == ["Corner Bakery", "Claimed Bakery", "MegaBake Bakery"]
        first, second, third = body["results"]
        assert first["score"]["text"] == third["score"]["text"] == 1.0
        assert first["distance_km"] == pytest.approx(third["distance_km"], abs=0.01)
        weights = ranking.RankingWeights()
        assert first["score"]["local"] == weights.local
        assert second["score"]["local"] == pytest.approx(weights.local * weights.unverified_local)
        assert third["score"]["local"] == 0 and third["chain"] == "MegaBake" and third["verified"] is True
        for result in body["results"]:
            parts = result["score"]
            assert parts["total"] == pytest.approx(
                parts["text"] + parts["distance"] + parts["local"], abs=1e-3
            )
            expected = ranking.score(
                parts["text"], result["distance_km"], result["locally_owned"], result["verified"], weights
            )
            assert parts["distance"] == pytest.approx(expected.distance, abs=1e-3)
            assert parts["local"] == pytest.approx(expected.local, abs=1e-3)


async def test_distance_and_text_still_matter(platform_settings: PlatformSettings):
    async with running(_app(platform_settings)) as client:
        await _add(client, "Next Door Bakery", _at(0.05), locally_owned=False, chain="MegaBake")
        await _add(client, "Faraway Bakery", _at(6.0))
        await _add(client, "Croissant House", _at(0.4), locally_owned=False, chain="Croissant House")
        await _add(client, "Mulder Bakery", _at(0, 0.4), description="bread and croissant every morning")
        near = await _search(client, q="bakery", lat=HOME[0], lon=HOME[1], radius_km=10)
        # A verified local shop 0.4 km away beats a chain 50 m away (similar distance), but a chain next door
        # beats a local shop 6 km away.
        assert _names(near) == ["Mulder Bakery", "Next Door Bakery", "Faraway Bakery"]
        pastry = await _search(client, q="croissant", lat=HOME[0], lon=HOME[1])
        # The chain named for it beats a local shop that only mentions it, at the same distance.
        assert _names(pastry) == ["Croissant House", "Mulder Bakery"]
        assert pastry["results"][0]["score"]["text"] > pastry["results"][1]["score"]["text"] > 0
        anywhere = await _search(client, q="bakery")  # no location: text and local ownership only
        assert set(_names(anywhere)) == {"Next Door Bakery", "Faraway Bakery", "Mulder Bakery"}
        assert all(r["score"]["distance"] == 0 and r["distance_km"] is None for r in anywhere["results"])
        assert _names(anywhere)[-1] == "Next Door Bakery"


async def test_typos_find_the_name(platform_settings: PlatformSettings):
    async with running(_app(platform_settings)) as client:
        await _add(client, "Apotheek Zuid", _at(0.3), category="pharmacy")
        await _add(client, "Corner Bakery", _at(0.2))
        await _add(client, "Fietsenmaker Jansen", _at(0.1), category="repair")
        for typo, name in (
            ("bakry", "Corner Bakery"),
            ("apoteek", "Apotheek Zuid"),
            ("fietsenmkaer", "Fietsenmaker Jansen"),
        ):
            body = await _search(client, q=typo, lat=HOME[0], lon=HOME[1])
            assert _names(body)[:1] == [name], typo
            assert 0 < body["results"][0]["score"]["text"] < 1  # a fuzzy match scores below an exact one
        assert (await _search(client, q="bakery"))["results"][0]["score"]["text"] == 1.0
        assert (await _search(client, q="xylophone"))["total"] == 0


async def test_filters_category_currency_radius_and_open_now(platform_settings: PlatformSettings):
    weekdays = {d: ["08:00-18:00"] for d in WEEKDAYS}
    async with running(_app(platform_settings)) as client:
        await _add(
            client, "Day Grocer", _at(0.2), category="grocery", accepts=["CITY", "AID"], hours=weekdays
        )
        await _add(client, "Night Kitchen", _at(0.3), hours={d: ["18:00-02:00"] for d in ("fri", "sat")})
        await _add(client, "Far Grocer", _at(3.0), category="grocery", accepts=["CITY"])
        await _add(client, "No Hours Café", _at(0.1))
        groceries = await _search(client, category="grocery")
        assert set(_names(groceries)) == {"Day Grocer", "Far Grocer"}
        assert _names(await _search(client, category="grocery", accepts="AID")) == ["Day Grocer"]
        near = await _search(client, lat=HOME[0], lon=HOME[1], radius_km=1)
        assert set(_names(near)) == {"Day Grocer", "Night Kitchen", "No Hours Café"}
        assert all(r["distance_km"] <= 1 for r in near["results"])
        # 2026-11-20 is a Friday; Amsterdam is UTC+1 in November.
        friday_noon = await _search(client, open_now="true", at="2026-11-20T11:00:00Z")
        assert _names(friday_noon) == ["Day Grocer"] and friday_noon["results"][0]["open_now"] is True
        friday_night = await _search(client, open_now="true", at="2026-11-20T22:30:00Z")
        assert _names(friday_night) == ["Night Kitchen"]
        saturday_small_hours = await _search(
            client, open_now="true", at="2026-11-21T00:30:00Z"
        )  # 01:30 local
        assert _names(saturday_small_hours) == ["Night Kitchen"]
        sunday = await _search(client, open_now="true", at="2026-11-22T12:00:00+01:00")
        assert sunday["total"] == 0
        everyone = await _search(client, at="2026-11-22T12:00:00+01:00")
        open_now = {r["name"]: r["open_now"] for r in everyone["results"]}
        assert open_now == {
            "Day Grocer": False,
            "Night Kitchen": False,
            "Far Grocer": None,
            "No Hours Café": None,
        }


async def test_pagination_is_stable_and_complete(platform_settings: PlatformSettings):
    async with running(_app(platform_settings)) as client:
        for i in range(7):
            await _add(client, f"Bakery {i}", _at(0.1 * (i % 3)), verify=i % 2 == 0)
        everything = await _search(client, q="bakery", lat=HOME[0], lon=HOME[1])
        assert everything["total"] == 7
        pages = [
            await _search(client, q="bakery", lat=HOME[0], lon=HOME[1], limit=3, offset=offset)
            for offset in (0, 3, 6)
        ]
        past_the_end = await _search(client, q="bakery", lat=HOME[0], lon=HOME[1], limit=3, offset=9)
        assert past_the_end["results"] == [] and past_the_end["total"] == 7
        assert [len(p["results"]) for p in pages] == [3, 3, 1]
        assert all(p["total"] == 7 for p in pages)
        assert [n for p in pages for n in _names(p)] == _names(everything)
        totals = [r["score"]["total"] for r in everything["results"]]
        assert totals == sorted(totals, reverse=True)


async def test_alternatives_to_a_chain_or_a_product(platform_settings: PlatformSettings):
    async with running(_app(platform_settings)) as client:
        await _add(
            client, "MegaMart Centrum", _at(0.1), category="grocery", locally_owned=False, chain="MegaMart"
        )
        await _add(client, "Greengrocer Visser", _at(0.5), category="grocery")
        await _add(client, "Claimed Market", _at(0.2), category="grocery", verify=False)
        await _add(client, "Far Market", _at(9.0), category="grocery")
        await _add(client, "Shoe Repair Bos", _at(0.3), category="repair")
        await _add(client, "Boutique Smit", _at(0.3), category="clothing")
        response = await client.get(
            "/v1/alternatives", params={"to": "megamart", "lat": HOME[0], "lon": HOME[1]}
        )
        body = response.json()
        assert response.status_code == 200, body
        assert body["categories"] == ["grocery"]
        # Locally owned only, verified first; the far one is outside the default radius.
        assert _names(body, "alternatives") == ["Greengrocer Visser", "Claimed Market"]
        shoes = (await client.get("/v1/alternatives", params={"to": "shoes"})).json()
        assert shoes["categories"] == ["clothing"] and _names(shoes, "alternatives") == ["Boutique Smit"]
        assert_problem(await client.get("/v1/alternatives", params={"to": "GlobalWidgetCorp"}), 404)
        assert_problem(await client.get("/v1/alternatives"), 422)


async def test_bad_search_parameters_get_a_problem(platform_settings: PlatformSettings):
    async with running(_app(platform_settings)) as client:
        for params in (
            {"lat": 52.0},
            {"radius_km": 2},
            {"lat": 52.0, "lon": 4.0, "radius_km": 500},
            {"lat": 95.0, "lon": 4.0},
            {"category": "weapons"},
            {"accepts": "EUR"},
            {"open_now": "maybe"},
            {"at": "2026-11-20T11:00:00"},
            {"at": "yesterday"},
            {"limit": 0},
            {"limit": 10_000},
            {"offset": -1},
            {"q": "x" * 201},
            {"q": "bake\x00ry"},
        ):
            assert_problem(await client.get("/v1/search", params=params), 422)
        assert_problem(await client.get("/v1/alternatives", params={"to": "shoes\x00"}), 422)
        assert (await _search(client, q="!!!"))["total"] == 0  # no words: nothing to find, not an error
