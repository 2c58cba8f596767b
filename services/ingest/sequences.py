"""Per-device sequence numbers in PostgreSQL, the guard against replays across restarts and instances.

Why it is safe (the order of events matters):

1. one statement reads the batch's devices' last published sequence numbers and revocation, row-locking
   their ``device_sequences`` rows (in device order, so two batches never deadlock) in a transaction;
2. the readings above them are published, and the pipeline waits for the broker's acknowledgement;
3. only then one statement advances each device's last sequence number, and the transaction commits.

A concurrent batch for the same device (another request, another ingest instance) waits at step 1 until
this one commits or rolls back, then reads the advanced number: a retried batch gets "duplicate" for what
went through, never a second copy. If the broker does not acknowledge, or the process dies, the transaction
rolls back: nothing advanced, so the client's retry is accepted rather than called a duplicate of readings
that never reached the broker. The one window left, the broker acknowledged but the commit failed, can
only make a retry publish the same reading again, with the same reading id, which every consumer already
deduplicates (rewards and the ledger key their effects on it).

The same row holds the device's rate-limit bucket (`services.ingest.ratelimit`), read at step 1 and stored
by step 3's statement: every instance counts a device's readings in one bucket, a concurrent batch sees the
tokens this one spent, and a batch rolled back spends none.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager

from sqlalchemy import BigInteger, Double, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest.checks import DeviceState
from services.ingest.ratelimit import Bucket

_LOCK = text(
    """
    SELECT s.device_id, s.last_seq, s.tokens, s.tokens_at, d.revoked_at IS NOT NULL AS revoked
    FROM device_sequences AS s JOIN devices AS d ON d.device_id = s.device_id
    WHERE s.device_id = ANY(:ids)
    ORDER BY s.device_id
    FOR UPDATE OF s
    """
).bindparams(bindparam("ids", type_=ARRAY(String)))

_ADVANCE = text(
    """
    UPDATE device_sequences AS s SET last_seq = v.seq, tokens = v.tokens, tokens_at = v.tokens_at
    FROM unnest(:ids, :seqs, :tokens, :tokens_at) AS v(device_id, seq, tokens, tokens_at)
    WHERE s.device_id = v.device_id AND s.last_seq < v.seq
    """
).bindparams(
    bindparam("ids", type_=ARRAY(String)),
    bindparam("seqs", type_=ARRAY(BigInteger)),
    bindparam("tokens", type_=ARRAY(Double)),
    bindparam("tokens_at", type_=ARRAY(Double)),
)


class LockedSequences:
    """The batch's devices' states and rate-limit buckets (None: never counted), locked until the `locked`
    block ends."""

    def __init__(
        self, conn: AsyncConnection, states: dict[str, DeviceState], buckets: dict[str, Bucket | None]
    ) -> None:
        self._conn = conn
        self.states = states
        self.buckets = buckets

    async def advance(self, highest: Mapping[str, int], buckets: Mapping[str, Bucket]) -> None:
        """Store each published device's highest sequence number and its bucket after the tokens the batch
        spent (`buckets` holds every device of `highest`; commits when the block ends)."""
        if highest:
            ids = sorted(highest)
            await self._conn.execute(
                _ADVANCE,
                {
                    "ids": ids,
                    "seqs": [highest[i] for i in ids],
                    "tokens": [buckets[i].tokens for i in ids],
                    "tokens_at": [buckets[i].at for i in ids],
                },
            )


@asynccontextmanager
async def locked(engine: AsyncEngine, device_ids: Collection[str]) -> AsyncIterator[LockedSequences]:
    """Lock the devices' sequence rows for the block; it commits if the block ends normally, else rolls
    back (e.g. on `BrokerUnavailableError`)."""
    async with engine.begin() as conn:
        rows = await conn.execute(_LOCK, {"ids": sorted(device_ids)})
        states: dict[str, DeviceState] = {}
        buckets: dict[str, Bucket | None] = {}
        for row in rows:
            states[row.device_id] = DeviceState(row.last_seq, row.revoked)
            buckets[row.device_id] = None if row.tokens_at is None else Bucket(row.tokens, row.tokens_at)
        yield LockedSequences(conn, states, buckets)
