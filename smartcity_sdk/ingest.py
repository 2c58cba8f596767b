"""Ingest (port 8101): devices registered to wallets, their signed readings, and what each reading earned.

A registration is signed by two keys in turn (`sign_registration`), so nobody can bind a key they do not hold,
nor to a wallet that is not theirs. A reading is signed by its device, with a sequence number that strictly
increases per device (`sign_reading`): that number makes a batch safe to send again, since a reading already
accepted is refused as a ``duplicate`` and earns nothing twice.

Idempotent, so retried when no answer came (`smartcity_sdk.http`): every call (a registration sent again is
answered 200 with the device; readings by their sequence numbers). A 429 (every reading over its device's rate)
and a 503 (nothing accepted) are retried after ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from smartcity_sdk.http import ServiceClient, json_object
from smartcity_sdk.signed_reads import SignedReadAuth
from smartcity_sdk.signing import SIG_FIELD, Keypair
from smartcity_sdk.timestamps import now_rfc3339
from smartcity_sdk.types import Decisions, Device, Devices, Kinds, ReadingsAnswer

DEVICE_SIG_FIELD = "device_sig"
"""Where the device's own signature of its registration goes: its proof that it holds the key."""


def sign_registration(owner: Keypair, device: Keypair, body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` signed as a registration: by `device` into ``device_sig`` (over the object without ``sig`` and
    ``device_sig``), then by `owner` into ``sig`` (over the whole, ``device_sig`` included)."""
    proven = device.sign(body, field=DEVICE_SIG_FIELD, exclude=(SIG_FIELD,))
    return owner.sign(proven)


def sign_reading(
    device: Keypair, *, seq: int, kind: str, zone: str, values: Mapping[str, float], ts: str | None = None
) -> dict[str, Any]:
    """A reading signed by `device`: `seq` above every one it sent before, taken at `ts` (RFC 3339 UTC,
    default now), of `kind` in `zone` (both as registered), `values` in the kind's units (``/v1/kinds``)."""
    reading = {
        "device_id": device.did,
        "seq": seq,
        "ts": ts or now_rfc3339(),
        "kind": kind,
        "zone": zone,
        "values": dict(values),
    }
    return device.sign(reading)


class IngestClient(ServiceClient):
    """A client of ingest (``IngestClient("http://127.0.0.1:8101")``)."""

    def kinds(self) -> Kinds:
        """Every reading kind with its units and the consent category its readings need."""
        return self.call("GET", "/v1/kinds", idempotent=True).json()

    def register_device(
        self,
        owner: Keypair,
        device: Keypair,
        *,
        kind: str,
        zone: str,
        location: Mapping[str, float] | None = None,
        replaces: str | None = None,
    ) -> Device:
        """Register `device` to `owner`'s wallet for readings of `kind` in `zone` (at `location`, ``{"lat",
        "lon"}``, if given); with `replaces`, rotate that device of the owner's to the new key."""
        location_object = None if location is None else dict(location)
        body = json_object(
            device_id=device.did,
            owner=owner.did,
            kind=kind,
            zone=zone,
            location=location_object,
            replaces=replaces,
        )
        signed = sign_registration(owner, device, body)
        return self.call("POST", "/v1/devices", idempotent=True, json=signed).json()

    def submit_readings(self, readings: Sequence[Mapping[str, Any]]) -> ReadingsAnswer:
        """Send signed readings (`sign_reading`); each is accepted or rejected on its own, with the reason."""
        body = {"readings": [dict(r) for r in readings]}
        return self.call("POST", "/v1/readings", idempotent=True, json=body).json()

    def my_devices(
        self, owner: Keypair, *, include_revoked: bool = False, limit: int = 100, offset: int = 0
    ) -> Devices:
        """`owner`'s devices (signed read)."""
        params = {"include_revoked": include_revoked or None, "limit": limit, "offset": offset}
        return self.call(
            "GET", "/v1/devices", idempotent=True, params=params, auth=SignedReadAuth(owner)
        ).json()

    def device(self, device_id: str, reader: Keypair) -> Device:
        """One device, read by its owner (to anyone else it is a 404, as if not registered)."""
        path = f"/v1/devices/{quote(device_id, safe=':')}"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    def my_decisions(self, wallet: Keypair, *, limit: int = 100, before: str | None = None) -> Decisions:
        """What each reading of `wallet`'s devices earned, by rule, or why it earned nothing or less; newest
        first, ``before=next_before`` for the next page (signed read)."""
        path = f"/v1/wallets/{quote(wallet.did, safe=':')}/decisions"
        params = {"limit": limit, "before": before}
        return self.call("GET", path, idempotent=True, params=params, auth=SignedReadAuth(wallet)).json()
