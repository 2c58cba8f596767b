"""Ingest (port 8101): devices registered to wallets, their signed readings, and what each reading earned; and
what a city operator (a key of ``INGEST_OPERATORS``) does besides: register city devices, read and revoke any
device, read any wallet's decisions.

A registration is signed by two keys in turn (`sign_registration`), so nobody can bind a key they do not hold,
nor to a wallet that is not theirs. A reading is signed by its device, with a sequence number that strictly
increases per device (`sign_reading`): that number makes a batch safe to send again, since a reading already
accepted is refused as a ``duplicate`` and earns nothing twice.

Idempotent, so retried when no answer came (`smartcity_sdk.http`): every call (a registration sent again is
answered 200 with the device; readings by their sequence numbers; a revocation keeps the first; an erasure is
answered again by its request). A 429 (every reading over its device's rate)
and a 503 (nothing accepted) are retried after ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from smartcity_sdk.http import ServiceClient, json_object, operation
from smartcity_sdk.signed_reads import SignedReadAuth
from smartcity_sdk.signing import SIG_FIELD, Keypair
from smartcity_sdk.timestamps import now_rfc3339
from smartcity_sdk.types import Decision, Decisions, Device, Devices, IngestErasure, Kinds, ReadingsAnswer

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


def sign_revocation(signer: Keypair, device_id: str, *, revoked_at: str | None = None) -> dict[str, Any]:
    """The body of ``POST /v1/devices/{device_id}/revocation``, signed by `signer` (the device's owner or a city
    operator), at `revoked_at` (RFC 3339 UTC, default now)."""
    return signer.sign(
        {"device_id": device_id, "revoked_by": signer.did, "revoked_at": revoked_at or now_rfc3339()}
    )


def _device_path(device_id: str) -> str:
    return f"/v1/devices/{quote(device_id, safe=':')}"


class IngestClient(ServiceClient):
    """A client of ingest (``IngestClient("http://127.0.0.1:8101")``)."""

    @operation("GET", "/v1/kinds")
    def kinds(self) -> Kinds:
        """Every reading kind with its units and the consent category its readings need."""
        return self.call("GET", "/v1/kinds", idempotent=True).json()

    @operation("POST", "/v1/devices")
    def register_device(
        self,
        owner: Keypair,
        device: Keypair,
        *,
        kind: str,
        zone: str,
        location: Mapping[str, float] | None = None,
        replaces: str | None = None,
        device_class: str | None = None,
    ) -> Device:
        """Register `device` to `owner`'s wallet for readings of `kind` in `zone` (at `location`, ``{"lat",
        "lon"}``, if given); with `replaces`, rotate that device of the owner's to the new key. With
        `device_class`, a city device (`register_city_device`): city operator only."""
        location_object = None if location is None else dict(location)
        body = json_object(
            device_id=device.did,
            owner=owner.did,
            kind=kind,
            zone=zone,
            location=location_object,
            replaces=replaces,
            **{"class": device_class},
        )
        signed = sign_registration(owner, device, body)
        return self.call("POST", "/v1/devices", idempotent=True, json=signed).json()

    def register_city_device(
        self,
        operator: Keypair,
        device: Keypair,
        *,
        device_class: str,
        kind: str,
        zone: str,
        location: Mapping[str, float] | None = None,
    ) -> Device:
        """Register a city device (`device_class`: ``recycling_station``, ``transit_gate``, ``smart_meter``,
        ``bike_dock``, ``trip_beacon``), owned by the `operator` who registers it; it issues the receipts that
        attest citizens' readings of its `kind`. City operator only (``INGEST_OPERATORS``: else a 403
        ``operator-required``)."""
        return self.register_device(
            operator, device, kind=kind, zone=zone, location=location, device_class=device_class
        )

    @operation("POST", "/v1/readings")
    def submit_readings(self, readings: Sequence[Mapping[str, Any]]) -> ReadingsAnswer:
        """Send signed readings (`sign_reading`); each is accepted or rejected on its own, with the reason."""
        body = {"readings": [dict(r) for r in readings]}
        return self.call("POST", "/v1/readings", idempotent=True, json=body).json()

    @operation("GET", "/v1/devices")
    def devices(
        self,
        reader: Keypair,
        *,
        owner: str | None = None,
        include_revoked: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> Devices:
        """Registered devices (signed read): `reader`'s own, or for a city operator those of `owner`, or with
        no `owner` everyone's (another owner's devices are a 403 to anyone else)."""
        params = {
            "owner": owner,
            "include_revoked": include_revoked or None,
            "limit": limit,
            "offset": offset,
        }
        return self.call(
            "GET", "/v1/devices", idempotent=True, params=params, auth=SignedReadAuth(reader)
        ).json()

    def my_devices(
        self, owner: Keypair, *, include_revoked: bool = False, limit: int = 100, offset: int = 0
    ) -> Devices:
        """`owner`'s devices (signed read)."""
        return self.devices(owner, include_revoked=include_revoked, limit=limit, offset=offset)

    @operation("GET", "/v1/devices/{device_id}")
    def device(self, device_id: str, reader: Keypair) -> Device:
        """One device, read by its owner or a city operator (to anyone else it is a 404, as if not
        registered)."""
        return self.call("GET", _device_path(device_id), idempotent=True, auth=SignedReadAuth(reader)).json()

    @operation("GET", "/v1/devices/{device_id}/history")
    def device_history(self, device_id: str, reader: Keypair) -> Devices:
        """The device's chain of keys, oldest first: every device it replaced and that replaced it; read by its
        owner or a city operator."""
        path = f"{_device_path(device_id)}/history"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    @operation("POST", "/v1/devices/{device_id}/revocation")
    def revoke_device(self, signer: Keypair, device_id: str) -> Device:
        """Revoke a device, signed by its owner or a city operator (`sign_revocation`): its readings are
        refused from then on. Revoking it again keeps the first revocation."""
        body = sign_revocation(signer, device_id)
        return self.call("POST", f"{_device_path(device_id)}/revocation", idempotent=True, json=body).json()

    @operation("GET", "/v1/wallets/{wallet}/decisions")
    def decisions(
        self, wallet: str, reader: Keypair, *, limit: int = 100, before: str | None = None
    ) -> Decisions:
        """What each reading of `wallet`'s devices earned, by rule, or why it earned nothing or less; newest
        first, ``before=next_before`` for the next page. A signed read by the wallet or a city operator."""
        path = f"/v1/wallets/{quote(wallet, safe=':')}/decisions"
        params = {"limit": limit, "before": before}
        return self.call("GET", path, idempotent=True, params=params, auth=SignedReadAuth(reader)).json()

    def my_decisions(self, wallet: Keypair, *, limit: int = 100, before: str | None = None) -> Decisions:
        """What each reading of `wallet`'s devices earned (`decisions`, read by the wallet itself)."""
        return self.decisions(wallet.did, wallet, limit=limit, before=before)

    @operation("GET", "/v1/wallets/{wallet}/decisions/{reading_id}")
    def decision(self, wallet: str, reading_id: str, reader: Keypair) -> Decision:
        """The decision on one reading of `wallet` (a 404 `ProblemError` until the rewards worker decided it).
        A signed read by the wallet or a city operator."""
        path = f"/v1/wallets/{quote(wallet, safe=':')}/decisions/{quote(reading_id, safe='')}"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    @operation("POST", "/v1/erasures")
    def erase(self, request: Mapping[str, Any]) -> IngestErasure:
        """Erase at ingest a person's data (their devices revoked and stripped of personal details, their reward
        decisions dropped), on their erasure request as they signed it (`IdentityClient.erase` answers it as
        ``request``): identity forwards it to ingest itself and retries until done; sending it again here is
        harmless (the same request is answered the same)."""
        return self.call("POST", "/v1/erasures", idempotent=True, json=dict(request)).json()
