"""Snapshots of a readings partition's decision state: recovery in proportion to the state, not the history.

After a start or a rebalance a worker needs, for each readings partition it takes, the state its decisions
depend on. Replaying the partition's decisions of the rebuild horizon (25 h) reads a number of records that
grows with traffic: 1.5 billion at a million devices. Instead the worker writes the state of each partition
it decides to ``city.rewards-snapshots.v1`` every `interval` (`dump`, in parts: `records`), captured right after a batch is decided,
with the highest readings offset it covers and the capture time, and published only once that batch's
decisions are acknowledged. A restart reads the partition's latest snapshot (`latest`) and then only the
decisions stamped since its capture (less ``REWARDS_SNAPSHOT_RECENT_S``, 30 s): those above its offset are applied, those at or below
it only remembered by reading id, so a reading redelivered from before the last commit still gets its
earlier decision. What a restart reads is the snapshot plus what was decided in the last interval.

Why not Faust tables: see `services.rewards.app`. Why a snapshot rather than a compacted changelog per key:
the state's keys change with every reading (caps per hour and day, windows per minute), so a changelog of
them is as long as the history; one record per partition is as long as the state.

Every part is attested by the worker's rewards-oracle key, and a restart reads only the parts that key
attested: a snapshot someone else put on the topic would set caps and statistics at will.

The recent decisions by reading id are not in the snapshot: the decisions of the seconds before its
capture are read back instead. Its windows are those the state keeps (`engine.WINDOW_KEEP_S`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from services.common import attestation, schemas
from services.common.events import cloudevent_headers, decode_json, encode_json
from services.common.kafka import FETCH_WAIT_MAX_MS, OutgoingRecord, client_security
from services.common.topics import REWARDS_SNAPSHOTS
from services.rewards.engine import OUTLIER_SAMPLE, Device, State, ZoneWindow

log = logging.getLogger(__name__)

SNAPSHOT_EVENT_TYPE = "city.rewards-snapshot.v1"
EVENT_SOURCE = "smartcity/rewards"
LOOKBACK = 512
"""Records read back from a snapshots partition's end to find this app's latest (other apps share it): enough
for a snapshot of a few hundred parts (`PART_CHARS` each)."""
PART_CHARS = 256 * 1024
"""Most characters of a state's JSON text in one snapshot record: a record stays under the broker's 1 MB limit
even if every character were escaped again inside the record's JSON string."""
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Snapshot:
    """A partition's state after deciding its readings up to `offset`, captured at `captured_at`."""

    partition: int
    offset: int
    captured_at: float
    state: State


def dump(state: State) -> dict[str, Any]:
    """The JSON form of `state`, without its recent decisions (see the module)."""
    return {
        "watermark": state.watermark,
        "touched": state.touched,
        "devices": {
            device_id: [d.max_seq, [list(pair) for pair in d.last_values], d.repeats, d.times]
            for device_id, d in state.devices.items()
        },
        "device_hour": [[*key, paid] for key, paid in state.device_hour.items()],
        "wallet_day": [[*key, paid] for key, paid in state.wallet_day.items()],
        "person_day": [[*key, paid] for key, paid in state.person_day.items()],
        "person_wallets": [[*key, wallets] for key, wallets in state.person_wallets.items()],
        "windows": [
            {**window.as_partial(0), "dirty": window.dirty, "shown": window.shown, "touched": window.touched}
            for window in state.windows.values()
        ],
    }


def load(value: Mapping[str, Any], recent_limit: int) -> State:
    """The state `dump` gave `value` (its recent decisions empty)."""
    state = State(recent_limit=recent_limit)
    state.watermark = value["watermark"]
    state.touched = value["touched"]
    for device_id, (max_seq, last_values, repeats, times) in value["devices"].items():
        state.devices[device_id] = Device(
            max_seq, tuple((name, number) for name, number in last_values), repeats, list(times)
        )
    state.device_hour = {(device, hour): paid for device, hour, paid in value["device_hour"]}
    state.wallet_day = {(wallet, day): paid for wallet, day, paid in value["wallet_day"]}
    state.person_day = {(person, day): paid for person, day, paid in value["person_day"]}
    state.person_wallets = {(person, day): list(w) for person, day, w in value["person_wallets"]}
    for saved in value["windows"]:
        window = ZoneWindow(saved["zone"], saved["kind"], saved["window_start"])
        window.merge(saved)
        for name, values in window.values.items():  # the sample is the first values, as `add` keeps it
            window.sample[name] = sorted(values[:OUTLIER_SAMPLE])
        window.dirty, window.shown, window.touched = saved["dirty"], saved["shown"], saved["touched"]
        state.windows[(window.zone, window.kind, window.start)] = window
    return state


def records(
    app_id: str, partition: int, offset: int, captured_at: float, state: State, part_chars: int = PART_CHARS
) -> list[OutgoingRecord]:
    """The snapshot of readings partition `partition`'s state, to the same partition number: its JSON text in
    parts of at most `part_chars` characters, one record each, in order (a state grows with the devices and
    windows a partition holds, past what one record may carry); the caller attests them (`kafka.attested`)."""
    text = encode_json(dump(state)).decode()
    pieces = [text[i : i + part_chars] for i in range(0, len(text), part_chars)] or [""]
    return [
        OutgoingRecord(
            topic=REWARDS_SNAPSHOTS,
            key=f"{app_id}/{partition}/{index}",  # a key a part: compaction keeps every part of the latest
            value={
                "app_id": app_id,
                "partition": partition,
                "offset": offset,
                "captured_at": captured_at,
                "part": index,
                "parts": len(pieces),
                "state": piece,
            },
            headers=cloudevent_headers(
                SNAPSHOT_EVENT_TYPE, EVENT_SOURCE, f"{app_id}/{partition}/{offset}/{index}"
            ),
            partition=partition,
        )
        for index, piece in enumerate(pieces)
    ]


def assemble(values: list[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """The latest complete snapshot of each partition among `values` (one app's snapshot parts, in topic
    order), as ``{"offset", "captured_at", "state": <the state's JSON object>}``: every part of it there, each
    once. A snapshot missing a part (cut off by the read-back) is passed over for an earlier one."""
    parts: dict[tuple[int, int, float, int], dict[int, str]] = {}
    for value in values:
        key = (value["partition"], value["offset"], value["captured_at"], value["parts"])
        parts.setdefault(key, {})[value["part"]] = value["state"]
    out: dict[int, Mapping[str, Any]] = {}
    for (partition, offset, captured_at, count), found in parts.items():
        if set(found) != set(range(count)) or (
            partition in out and out[partition]["captured_at"] > captured_at
        ):
            continue
        text = "".join(found[index] for index in range(count))
        out[partition] = {"offset": offset, "captured_at": captured_at, "state": text}
    return out


def latest(
    bootstrap_servers: str, app_id: str, partitions: list[int], recent_limit: int, oracles: Collection[str]
) -> dict[int, Snapshot]:
    """The latest snapshot of app `app_id` of each of `partitions` that has one among the last `LOOKBACK`
    records of its snapshots partition, attested by one of the worker's keys `oracles` (blocking I/O). A record that does
    not read back, or that key did not attest, is skipped (logged): the one before it, or the rebuild horizon,
    stands in."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            **client_security(),
            "group.id": "smartcity-rewards-snapshots",  # never joined nor committed: partitions are assigned
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        }
    )
    ours: list[Mapping[str, Any]] = []
    try:
        name = REWARDS_SNAPSHOTS.name
        starts = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=TIMEOUT_S)
            starts.append(TopicPartition(name, partition, max(low, high - LOOKBACK)))
        consumer.assign(starts)
        pending = set(partitions)
        deadline = time.monotonic() + TIMEOUT_S
        while pending:
            messages = consumer.consume(LOOKBACK, 0.1)
            if not messages and time.monotonic() > deadline:
                raise TimeoutError(f"{name}: partitions {sorted(pending)} did not reach their end")
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    continue
                value = _snapshot_of(message, app_id, oracles)
                if value is not None:
                    ours.append(value)
    finally:
        consumer.close()
    out = {}
    for partition, value in assemble(ours).items():
        try:
            state = load(decode_json(value["state"].encode()), recent_limit)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "snapshot of partition %d does not load (%s): rebuilt from the horizon", partition, exc
            )
            continue
        out[partition] = Snapshot(partition, value["offset"], value["captured_at"], state)
    return out


def _snapshot_of(message: Message, app_id: str, oracles: Collection[str]) -> Mapping[str, Any] | None:
    """The snapshot value `message` holds if it is app `app_id`'s of its partition, attested by one of
    `oracles`, else None."""
    raw, partition = message.value() or b"", message.partition()
    header = next((v for k, v in message.headers() or [] if k == attestation.HEADER), None)
    try:
        lines = attestation.lines_by(header, REWARDS_SNAPSHOTS.name, raw, oracles)
        if len(lines) != 1:
            raise ValueError("a snapshot part is one value")
        value = decode_json(lines[0])
        schemas.validate(REWARDS_SNAPSHOTS, value)
    except (ValueError, schemas.SchemaError) as exc:  # AttestationError is a ValueError
        log.warning("skipping a snapshot of partition %d that does not read back: %s", partition, exc)
        return None
    if value["app_id"] != app_id or value["partition"] != partition:
        return None
    return value
