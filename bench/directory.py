"""Directory: local-first search latency at 50,000 merchants over a realistic query mix, beside a bare indexed
SELECT by category in the same run.

Runs on its own embedded broker and PostgreSQL (a temporary directory), so nothing else is disturbed.

1. A synthetic city (`smartcity directory seed`'s data: neighbourhoods, local shops and chain branches,
   opening hours) of ``BENCH_DIRECTORY_MERCHANTS`` merchants is loaded through the seed code (not published).
2. Queries, one at a time, through the directory app in-process (HTTP over ASGI: routing, validation, SQL,
   JSON), from places in the city's neighbourhoods: text near me, text with a typo, category near me,
   open now, currency filter, a merchant's full name city-wide, a chain's name city-wide.
3. Baseline: ``SELECT wallet, name FROM merchants WHERE category = $1 ORDER BY name LIMIT 50`` (the index
   ``(category, name)``) through the same engine: what one round trip for a trivial indexed query costs here.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
from sqlalchemy import text

from services.common import db, embedded
from services.common.kafka import ensure_topics
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import ALL_TOPICS
from services.directory import synthetic
from services.directory.app import create_app
from services.directory.categories import CATEGORIES, CATEGORY_TERMS
from services.directory.seed import seed
from services.directory.settings import SERVICE, DirectorySettings
from services.directory.store import MerchantStore

MERCHANTS = int(os.environ.get("BENCH_DIRECTORY_MERCHANTS", "50000"))
QUERIES = int(os.environ.get("BENCH_DIRECTORY_QUERIES", "1000"))
WARMUP = 100
SEED = 1
NOUNS = ("bakery", "pizza", "cafe", "market", "butcher", "pharmacy", "shoes", "barber", "bike", "clinic")
NOUNS += ("bookshop", "laundry", "tailors", "flowers", "hostel", "repair", "deli", "vintage")
CHAINS = ("MegaMart", "BurgerPlanet", "ShoeWorld", "MediChain", "CoffeeCorp")


def _typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    if rng.random() < 0.5:
        return word[:i] + word[i + 1 :]  # a letter dropped
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # two letters swapped


def query_mix(count: int, names: list[str]) -> list[tuple[str, dict]]:
    """`count` (kind, params) searches, drawn as a city's residents would send them (reproducible)."""
    rng = random.Random(42)
    places = synthetic.neighbourhoods(SEED)
    mix = []
    for _ in range(count):
        lat, lon = rng.choice(places)
        here = {"lat": round(lat + rng.gauss(0, 0.005), 5), "lon": round(lon + rng.gauss(0, 0.008), 5)}
        radius = rng.choice((1, 1.5, 2, 3))
        roll = rng.random()
        word = rng.choice(NOUNS + tuple(w for terms in CATEGORY_TERMS.values() for w in terms[:2]))
        if roll < 0.30:
            mix.append(("text near", {"q": word, **here, "radius_km": radius}))
        elif roll < 0.45:
            mix.append(("typo near", {"q": _typo(rng, rng.choice(NOUNS)), **here, "radius_km": radius}))
        elif roll < 0.60:
            mix.append(
                ("category near", {"category": rng.choice(list(CATEGORIES)), **here, "radius_km": radius})
            )
        elif roll < 0.70:
            category = rng.choice(("food", "grocery", "pharmacy", "health", "transit"))
            mix.append(("open now", {"category": category, "open_now": "true", **here, "radius_km": radius}))
        elif roll < 0.80:
            mix.append(("text + AID", {"q": word, "accepts": "AID", **here, "radius_km": radius}))
        elif roll < 0.90:
            mix.append(("name city-wide", {"q": rng.choice(names)}))
        else:
            mix.append(("chain city-wide", {"q": rng.choice(CHAINS)}))
    return mix


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _row(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"  {label:<34} n={len(ms):>5}  p50 {percentile(ms, 50):7.2f} ms  p95 {percentile(ms, 95):7.2f} ms"
        f"  p99 {percentile(ms, 99):7.2f} ms"
    )


async def _run(platform: PlatformSettings) -> None:
    url = await db.prepare_database(platform, SERVICE)
    engine = db.create_engine(url, pool_size=2)
    started = time.perf_counter()
    await seed(MerchantStore(engine), None, MERCHANTS, SEED, Keypair.generate())
    async with engine.begin() as conn:
        names = list(
            (await conn.execute(text("SELECT name FROM merchants ORDER BY random() LIMIT 200"))).scalars()
        )
    print(f"  seeded {MERCHANTS:,} merchants in {time.perf_counter() - started:.0f} s")

    mix = query_mix(WARMUP + QUERIES, names)
    app = create_app(platform, DirectorySettings())
    by_kind: dict[str, list[float]] = defaultdict(list)
    searches: list[float] = []
    baseline: list[float] = []
    totals: list[int] = []
    categories = list(CATEGORIES)
    bare = text("SELECT wallet, name FROM merchants WHERE category = :c ORDER BY name LIMIT 50")
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
    ):
        for i, (kind, params) in enumerate(mix):
            t0 = time.perf_counter()
            response = await client.get("/v1/search", params=params)
            elapsed = time.perf_counter() - t0
            assert response.status_code == 200, response.text
            # The baseline, interleaved so both see the same load on this shared machine.
            t1 = time.perf_counter()
            async with engine.connect() as conn:
                (await conn.execute(bare, {"c": categories[i % len(categories)]})).all()
            bare_elapsed = time.perf_counter() - t1
            if i < WARMUP:
                continue
            searches.append(elapsed)
            by_kind[kind].append(elapsed)
            baseline.append(bare_elapsed)
            totals.append(response.json()["total"])
    await engine.dispose()

    print(_row("search, whole mix (HTTP in-process)", searches))
    for kind, samples in sorted(by_kind.items()):
        print(_row(f"  {kind}", samples))
    print(_row("baseline: bare SELECT by category", baseline))
    ratio = {p: percentile(searches, p) / percentile(baseline, p) for p in (50, 95, 99)}
    ratios = "    ".join(f"p{p} {ratio[p]:7.1f}x" for p in (50, 95, 99))
    print(f"  {'ratio search / baseline':<34}          {ratios}")
    print(f"  matches per search: median {statistics.median(totals):.0f}, max {max(totals)}")
    p95 = percentile(searches, 95) * 1000
    verdict = "met" if p95 < 20 else "NOT met"
    print(f"  target p95 < 20 ms: {verdict} ({p95:.1f} ms); load average: {os.getloadavg()[0]:.2f}")


def main() -> None:
    print(f"directory search ({MERCHANTS:,} merchants, {QUERIES} queries one at a time, {WARMUP} warm-up)")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-directory-"))
    port = embedded.free_port()
    broker: subprocess.Popen | None = None
    try:
        broker = embedded.start_broker(port, data_dir / "tansu.log")
        bootstrap = f"127.0.0.1:{port}"
        ensure_topics(bootstrap, ALL_TOPICS)
        platform = PlatformSettings(
            kafka_bootstrap_servers=bootstrap,
            database_url=os.environ.get("DATABASE_URL") or embedded.postgres_url(data_dir),
            database_prefix=f"bench{uuid.uuid4().hex[:8]}_",
            smartcity_data_dir=data_dir,
        )
        asyncio.run(_run(platform))
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        embedded.stop_postgres(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
