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
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager

from sqlalchemy import BigInteger, String, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest.checks import DeviceState

_LOCK = text(
    """
    SELECT s.device_id, s.last_seq, d.revoked_at IS NOT NULL AS revoked
    FROM device_sequences AS s JOIN devices AS d ON d.device_id = s.device_id
    WHERE s.device_id = ANY(:ids)
    ORDER BY s.device_id
    FOR UPDATE OF s
    """
).bindparams(bindparam("ids", type_=ARRAY(String)))

_ADVANCE = text(
    """
    UPDATE device_sequences AS s SET last_seq = v.seq
    FROM unnest(:ids, :seqs) AS v(device_id, seq)
    WHERE s.device_id = v.device_id AND s.last_seq < v.seq
    """
).bindparams(bindparam("ids", type_=ARRAY(String)), bindparam("seqs", type_=ARRAY(BigInteger)))


class LockedSequences:
    """The batch's devices' states, locked until the `locked` block ends."""

    def __init__(self, conn: AsyncConnection, states: dict[str, DeviceState]) -> None:
        self._conn = conn
        self.states = states

    async def advance(self, highest: Mapping[str, int]) -> None:
        """Store each device's highest published sequence number (commits when the block ends)."""
        if highest:
            ids = sorted(highest)
            await self._conn.execute(_ADVANCE, {"ids": ids, "seqs": [highest[i] for i in ids]})


@asynccontextmanager
async def locked(engine: AsyncEngine, device_ids: Collection[str]) -> AsyncIterator[LockedSequences]:
    """Lock the devices' sequence rows for the block; it commits if the block ends normally, else rolls
    back (e.g. on `BrokerUnavailableError`)."""
    async with engine.begin() as conn:
        rows = await conn.execute(_LOCK, {"ids": sorted(device_ids)})
        states = {row.device_id: DeviceState(row.last_seq, row.revoked) for row in rows}
        yield LockedSequences(conn, states)
