"""Accepted readings as ``city.readings.v1`` records (pure): the reading id, the envelope carrying the reading
with the registration that binds its device to a wallet, and the CloudEvents headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.common import attestation
from services.common.events import CONTENT_TYPE, NDJSON, cloudevent_headers
from services.common.ids import reading_id
from services.common.kafka import OutgoingRecord, batch_record, partition_of
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.ingest.devices import Device

EVENT_TYPE = "city.reading.v1"
BATCH_EVENT_TYPE = "city.readings-batch.v1"
EVENT_SOURCE = "smartcity/ingest"


def envelope(
    reading: Mapping[str, Any], device: Device, received_at: str, person: str | None = None
) -> dict[str, Any]:
    """The ``city.readings.v1`` value of an accepted reading of `device` (schemas/readings.v1.json), naming
    `person` if the owner wallet is bound to one (``city.bindings.v1``)."""
    value = {
        "reading_id": reading_id(reading["device_id"], reading["seq"]),
        "owner": device.owner,
        "received_at": received_at,
        "reading": dict(reading),
        "registration": device.registration,
    }
    if person is not None:
        value["person"] = person
    return value


def partition_key(value: Mapping[str, Any]) -> str:
    """The key of an envelope's record: the person its owner wallet is bound to, else the wallet. Everything
    its decision depends on (its device's memory, the wallet's and the person's caps) is then in its
    partition, and a device's readings stay in order (a device has one owner)."""
    return value.get("person") or value["owner"]


def outgoing_record(value: Mapping[str, Any]) -> OutgoingRecord:
    """The record of an envelope: keyed by `partition_key`, CloudEvent id = reading id."""
    return OutgoingRecord(
        topic=READINGS,
        key=partition_key(value),
        value=value,
        headers=cloudevent_headers(EVENT_TYPE, EVENT_SOURCE, value["reading_id"], time=value["received_at"]),
    )


def batch_records(
    keypair: Keypair, envelopes: Sequence[Mapping[str, Any]], per_record: int
) -> list[OutgoingRecord]:
    """The envelopes as batch records (`services.common.attestation`: one envelope's JCS bytes a line, one
    statement a record, signed by `keypair`): those of one partition together, in order, at most `per_record`
    a record. A record is keyed by its first envelope's `partition_key` and sent to the partition they all
    hash to; its CloudEvent id is its first reading's id."""
    by_partition: dict[int, list[Mapping[str, Any]]] = {}
    for value in envelopes:
        # Where each of its readings would land, keyed alone: a batch record goes to that partition.
        by_partition.setdefault(partition_of(partition_key(value), READINGS.partitions), []).append(value)
    records = []
    for partition, values in sorted(by_partition.items()):
        for start in range(0, len(values), per_record):
            chunk = values[start : start + per_record]
            lines = [attestation.encode(value) for value in chunk]
            first = chunk[0]
            headers = cloudevent_headers(
                BATCH_EVENT_TYPE if len(lines) > 1 else EVENT_TYPE,
                EVENT_SOURCE,
                first["reading_id"],
                time=first["received_at"],
                content_type=NDJSON if len(lines) > 1 else CONTENT_TYPE,
            )
            records.append(batch_record(keypair, READINGS, partition_key(first), partition, lines, headers))
    return records
