"""Merchants in the directory database: registrations, verifications, and the local-first search."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import RowMapping, event, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import Range, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.directory import hours
from services.directory.merchants import (
    Merchant,
    MerchantRegistration,
    MerchantVerification,
    check_newer,
    kept_verification,
    registration_hash,
)
from services.directory.ranking import RankingWeights, ScoreParts
from services.directory.search import (
    DEFAULT_TYPO_SIMILARITY,
    EARTH_RADIUS_KM,
    SearchQuery,
    bounding_box,
    prefix_tsquery,
    query_words,
)
from services.directory.tables import merchants

# Full-text rank weights of the search document's parts {D address, C description, B chain/category, A name}.
TS_WEIGHTS = "{0.1, 0.2, 0.4, 1.0}"
# ts_rank of a query word found once in the name (weight A, 1.0) is 0.6079; dividing by it makes a name match
# count 1, like an exact trigram match, and a match in the description or address count less.
TS_RANK_OF_NAME_MATCH = 0.6079


class UnknownMerchantError(LookupError):
    """No merchant is registered with that wallet."""


class StaleVerificationError(ValueError):
    """The verification is about an older registration, or older than the one held."""


# What a search result shows of a merchant: its facts without the signed documents (which `GET
# /v1/merchants/{wallet}` serves), so a page of results is light to read and decode.
RESULT_COLUMNS = (
    "wallet",
    "name",
    "category",
    "locally_owned",
    "verified",
    "accepts",
    "address",
    "lat",
    "lon",
    "description",
    "chain",
    "hours",
)


@dataclass(frozen=True)
class SearchHit:
    """One search result: the merchant's facts (`RESULT_COLUMNS`), how far it is, and its score parts."""

    facts: dict[str, Any]
    distance_km: float | None
    parts: ScoreParts


def _merchant(row: RowMapping) -> Merchant:
    return Merchant(
        wallet=row["wallet"],
        name=row["name"],
        category=row["category"],
        locally_owned=row["locally_owned"],
        accepts=list(row["accepts"]),
        address=row["address"],
        lat=row["lat"],
        lon=row["lon"],
        verified=row["verified"],
        registration=row["registration"],
        registered_at=row["registered_at"],
        updated_at=row["updated_at"],
        description=row["description"],
        chain=row["chain"],
        hours=row["hours"],
        active=row["active"],
        verification=row["verification"],
    )


def registration_columns(registration: MerchantRegistration, signed: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a registration sets (before the city's verification, if any, overrides its claims)."""
    schedule = registration.hours
    return {
        "name": registration.name,
        "category": registration.category,
        "locally_owned": registration.locally_owned,
        "accepts": list(registration.accepts),
        "address": registration.address,
        "lat": registration.lat,
        "lon": registration.lon,
        "description": registration.description,
        "chain": registration.chain,
        "hours": schedule,
        "open_minutes": None
        if schedule is None
        else [Range(start, end, bounds="[)") for start, end in hours.week_ranges(schedule)],
        "active": registration.active,
        "registration": dict(signed),
    }


LoadItem = tuple[
    MerchantRegistration, Mapping[str, Any], MerchantVerification | None, Mapping[str, Any] | None
]
"""A checked registration and its signed object, and the city's checked verification and its signed object."""

_COLUMNS = list(merchants.c)
_KEPT_ON_UPDATE = ("wallet", "registered_at", "updated_at")


class MerchantStore:
    """Merchants by wallet; the database's copy is what the API lists, the topic is what others follow."""

    def __init__(self, engine: AsyncEngine, typo_similarity: float = DEFAULT_TYPO_SIMILARITY) -> None:
        """`typo_similarity`: the trigram word similarity at which a query word matches a word of a name."""
        self.engine = engine
        setting = f"SET pg_trgm.word_similarity_threshold = {float(typo_similarity)}"

        # The trigram operator's threshold is a setting, not an argument: set it once per connection rather
        # than paying a round trip per search.
        @event.listens_for(engine.sync_engine, "connect")
        def _set_threshold(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(setting)
            cursor.close()

    async def _locked(self, conn: AsyncConnection, wallet: str) -> Merchant | None:
        query = select(*_COLUMNS).where(merchants.c.wallet == wallet).with_for_update()
        row = (await conn.execute(query)).mappings().first()
        return None if row is None else _merchant(row)

    async def register(
        self,
        registration: MerchantRegistration,
        signed: Mapping[str, Any],
        publish: Callable[[Merchant], Awaitable[None]],
    ) -> tuple[Merchant, bool]:
        """Insert or update a merchant, `publish` it, and commit only if `publish` returned.

        Returns the merchant as stored and whether it is new. If `publish` raises, nothing is stored. The
        row stays locked until the commit, so concurrent updates of one wallet are published in the order
        they are stored. The city's verification is kept while the claims it checked are unchanged. Raises
        `StaleRegistrationError` for a replayed older registration.
        """
        facts = registration_columns(registration, signed)
        async with self.engine.begin() as conn:
            previous = await self._locked(conn, registration.wallet)
            check_newer(previous, registration, signed)
            verification = kept_verification(previous, registration)
            if verification is not None:
                facts["category"] = verification["category"]
                facts["locally_owned"] = verification["locally_owned"]
            facts.update(verification=verification, verified=verification is not None)
            statement = insert(merchants).values(wallet=registration.wallet, **facts)
            statement = statement.on_conflict_do_update(
                index_elements=[merchants.c.wallet], set_={**facts, "updated_at": func.now()}
            ).returning(*_COLUMNS, literal_column("xmax = 0").label("inserted"))
            row = (await conn.execute(statement)).mappings().one()
            merchant = _merchant(row)
            await publish(merchant)
        return merchant, bool(row["inserted"])

    async def verify(
        self,
        verification: MerchantVerification,
        signed: Mapping[str, Any],
        publish: Callable[[Merchant], Awaitable[None]],
    ) -> Merchant:
        """Record the city's verification of a merchant, `publish` the result, and commit only if it returned.

        Raises `UnknownMerchantError`, or `StaleVerificationError` if it checked another registration than the
        one held or is not newer than the verification held.
        """
        async with self.engine.begin() as conn:
            current = await self._locked(conn, verification.merchant)
            if current is None:
                raise UnknownMerchantError(verification.merchant)
            if registration_hash(current.registration) != verification.registration:
                raise StaleVerificationError(
                    "it verifies another registration than the merchant's current one"
                )
            if current.verification is not None:
                held = MerchantVerification.model_validate(current.verification).verified_at
                if verification.verified_at <= held:
                    raise StaleVerificationError(
                        f"the merchant holds a verification as recent ({held.isoformat()})"
                    )
            statement = (
                merchants.update()
                .where(merchants.c.wallet == verification.merchant)
                .values(
                    category=verification.category,
                    locally_owned=verification.locally_owned,
                    verified=True,
                    verification=dict(signed),
                    updated_at=func.now(),
                )
                .returning(*_COLUMNS)
            )
            merchant = _merchant((await conn.execute(statement)).mappings().one())
            await publish(merchant)
        return merchant

    async def get(self, wallet: str) -> Merchant | None:
        """The merchant of `wallet`, or None."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(*_COLUMNS).where(merchants.c.wallet == wallet))).mappings().first()
            )
        return None if row is None else _merchant(row)

    async def page(self, limit: int, offset: int, category: str | None = None) -> tuple[list[Merchant], int]:
        """A page of merchants ordered by name (then wallet, so pages are stable), and how many match."""
        query = select(*_COLUMNS)
        count = select(func.count()).select_from(merchants)
        if category is not None:
            query = query.where(merchants.c.category == category)
            count = count.where(merchants.c.category == category)
        query = query.order_by(merchants.c.name, merchants.c.wallet).limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = (await conn.execute(count)).scalar_one()
        return [_merchant(row) for row in rows], total

    async def tidy(self) -> None:
        """Vacuum and analyse the tables after a bulk load, so the planner knows the data and index-only
        visibility is set (as autovacuum would, later)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM (ANALYZE) merchants, merchant_search"))

    async def chain_categories(self, chain: str) -> list[str]:
        """The categories of the merchants of a chain (by brand, case-insensitively), most common first."""
        query = text(
            """SELECT category FROM merchants WHERE lower(chain) = lower(:chain)
               GROUP BY category ORDER BY count(*) DESC, category"""
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query, {"chain": chain})).scalars())

    async def search(self, query: SearchQuery, weights: RankingWeights) -> tuple[list[SearchHit], int]:
        """A page of active merchants matching `query`, best first by the local-first ranking, and how many
        match in all."""
        sql, params = search_sql(query, weights)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(sql), params)).mappings().all()
        hits = [
            SearchHit(
                facts={c: row[c] for c in RESULT_COLUMNS},
                distance_km=row["distance_km"],
                parts=ScoreParts(
                    text=row["text_part"], distance=row["distance_part"], local=row["local_part"]
                ),
            )
            for row in rows
        ]
        if not rows and query.offset > 0:
            # Past the last page the window has no row to carry the count: ask for the first page's.
            return hits, (await self.search(replace(query, limit=1, offset=0), weights))[1]
        return hits, (rows[0]["total"] if rows else 0)

    async def load(
        self,
        batch: list[LoadItem],
        publish: Callable[[list[Merchant]], Awaitable[None]],
    ) -> list[Merchant]:
        """Insert or replace many merchants at once (seed data), `publish` them, and commit only if `publish`
        returned. The city's verification of an item, if any, applies to that very registration.
        """
        rows = []
        for registration, signed, verification, signed_verification in batch:
            facts = registration_columns(registration, signed)
            if verification is not None:
                facts.update(category=verification.category, locally_owned=verification.locally_owned)
            rows.append(
                {
                    "wallet": registration.wallet,
                    **facts,
                    "verified": verification is not None,
                    "verification": None if signed_verification is None else dict(signed_verification),
                }
            )
        statement = insert(merchants)
        statement = statement.on_conflict_do_update(
            index_elements=[merchants.c.wallet],
            set_={
                **{c.name: statement.excluded[c.name] for c in _COLUMNS if c.name not in _KEPT_ON_UPDATE},
                "updated_at": func.now(),
            },
        ).returning(*_COLUMNS)
        async with self.engine.begin() as conn:
            result = await conn.execute(statement, rows)
            stored = [_merchant(row) for row in result.mappings()]
            await publish(stored)
        return stored


def search_sql(query: SearchQuery, weights: RankingWeights) -> tuple[str, dict[str, Any]]:
    """The SQL of a search and its parameters: filters that indexes answer (full-text or trigram match,
    bounding box, category), then the exact distance and the ranking of `services.directory.ranking`.

    Only the filters the query uses are in the SQL, so the planner sees a plain query for each shape. The
    ranking runs over narrow rows (wallet and score parts), and only the page's merchants are read in full.
    """
    params: dict[str, Any] = {
        "w_text": weights.text,
        "w_distance": weights.distance,
        "w_local": weights.local,
        "half_km": weights.half_distance_km,
        "unverified_local": weights.unverified_local,
        "limit": query.limit,
        "offset": query.offset,
    }
    where = ["s.active"]
    text_score = "0"
    words = query_words(query.text or "")
    if query.text and not words:
        where.append("false")  # nothing but punctuation: nothing to look for
    elif words:
        params.update(q=query.text, tsq=prefix_tsquery(query.text or ""))
        params.update(tsq_name=prefix_tsquery(query.text or "", weights="A"))
        params.update({f"w{i}": word for i, word in enumerate(words)})
        # Typos: every word of the query is like a word of the name (pg_trgm word similarity, indexed).
        typos = " AND ".join(f"CAST(:w{i} AS text) <% s.name" for i in range(len(words)))
        where.append(f"(s.document @@ to_tsquery('simple', :tsq) OR ({typos}))")
        # Every word found in the name scores 1 without ranking it (most hits of a common word: cheap).
        text_score = (
            "CASE WHEN s.document @@ to_tsquery('simple', :tsq_name) THEN 1 ELSE "
            f"greatest(word_similarity(:q, s.name), least(1, ts_rank('{TS_WEIGHTS}'::float4[], s.document,"
            f" to_tsquery('simple', :tsq)) / {TS_RANK_OF_NAME_MATCH})) END"
        )
    distance = "NULL"
    outer_where = ""
    if query.location is not None:
        location = query.location
        params.update(lat=location.lat, lon=location.lon, radius_km=location.radius_km)
        params.update(zip(("min_lon", "min_lat", "max_lon", "max_lat"), bounding_box(location), strict=True))
        if words:
            # The text indexes find few rows: check the box on them. (The planner cannot estimate how many
            # rows a box holds, so given the choice it would scan the box and test the text on each row.)
            where.append(
                "s.lat BETWEEN CAST(:min_lat AS float8) AND CAST(:max_lat AS float8)"
                " AND s.lon BETWEEN CAST(:min_lon AS float8) AND CAST(:max_lon AS float8)"
            )
        else:
            where.append(
                "point(s.lon, s.lat) <@ box(point(CAST(:min_lon AS float8), CAST(:min_lat AS float8)),"
                " point(CAST(:max_lon AS float8), CAST(:max_lat AS float8)))"
            )
        distance = (
            f"2 * {EARTH_RADIUS_KM} * asin(least(1, sqrt("
            "power(sin(radians(s.lat - CAST(:lat AS float8)) / 2), 2)"
            " + cos(radians(CAST(:lat AS float8))) * cos(radians(s.lat))"
            " * power(sin(radians(s.lon - CAST(:lon AS float8)) / 2), 2))))"
        )
        outer_where = "WHERE r.distance_km <= CAST(:radius_km AS float8)"
    if query.categories:
        params["categories"] = list(query.categories)
        where.append("s.category = ANY(CAST(:categories AS varchar[]))")
    if query.accepts:
        params["accepts"] = list(query.accepts)
        where.append("s.accepts @> CAST(:accepts AS varchar[])")
    if query.at_minute is not None:
        params["minute"] = query.at_minute
        where.append("s.open_minutes @> CAST(:minute AS int4)")
    if query.local_only:
        where.append("s.locally_owned")
    columns = ", ".join(f"m.{c}" for c in RESULT_COLUMNS)
    sql = f"""
        WITH ranked AS (
            SELECT s.wallet, CAST({distance} AS float8) AS distance_km,
                   CAST(:w_text AS float8) * ({text_score}) AS text_part,
                   s.locally_owned, s.verified
            FROM merchant_search s
            WHERE {" AND ".join(where)}
        ), page AS (
            SELECT r.wallet, r.distance_km, r.text_part, p.distance_part, p.local_part,
                   r.text_part + p.distance_part + p.local_part AS score, count(*) OVER () AS total
            FROM ranked r CROSS JOIN LATERAL (
                SELECT
                    CASE WHEN r.distance_km IS NULL THEN 0
                         ELSE CAST(:w_distance AS float8) / (1 + r.distance_km / CAST(:half_km AS float8))
                    END AS distance_part,
                    CAST(:w_local AS float8) * CASE WHEN NOT r.locally_owned THEN 0
                                                    WHEN r.verified THEN 1
                                                    ELSE CAST(:unverified_local AS float8) END AS local_part
            ) p
            {outer_where}
            ORDER BY score DESC, r.distance_km NULLS LAST, r.wallet
            LIMIT :limit OFFSET :offset
        )
        SELECT {columns}, page.distance_km, page.text_part, page.distance_part, page.local_part, page.total
        FROM page JOIN merchants m ON m.wallet = page.wallet
        ORDER BY page.score DESC, page.distance_km NULLS LAST, page.wallet"""
    return sql, params
