"""Deterministic ids shared by ingest, rewards and the ledger, so a redelivered reading never pays twice."""

from __future__ import annotations

from services.common.signing import sha256_hex


def reading_id(device_id: str, seq: int) -> str:
    """The id of a device's reading: sha256 hex of ``<device_id>/<seq>`` (one id per sequence number)."""
    return sha256_hex(f"{device_id}/{seq}".encode())


def reward_id(reading_id: str, rule: str) -> str:
    """The id of the reward a rule pays for a reading: sha256 hex of ``<reading_id>/<rule>``."""
    return sha256_hex(f"{reading_id}/{rule}".encode())
