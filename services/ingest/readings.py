"""Accepted readings as ``city.readings.v1`` records (pure): the reading id, the envelope carrying the reading
with the registration that binds its device to a wallet, and the CloudEvents headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.events import cloudevent_headers
from services.common.ids import reading_id
from services.common.kafka import OutgoingRecord
from services.common.topics import READINGS
from services.ingest.devices import Device

EVENT_TYPE = "city.reading.v1"
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
