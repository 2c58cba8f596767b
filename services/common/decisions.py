"""A line of ``city.reward-decisions.v1``, as its consumers (ingest, a recovering rewards worker) read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.common import schemas
from services.common.consents import parse_time
from services.common.events import decode_json
from services.common.topics import REWARD_DECISIONS


class UnreadableDecisionError(ValueError):
    """A line that is not a decision: the message says why (the DLQ reason)."""


def read_decision(line: bytes) -> tuple[dict[str, Any], datetime]:
    """The decision a line holds and its reading's time; raises `UnreadableDecisionError` (malformed JSON, the
    wrong shape, or a time that does not exist: the schema's pattern lets ``2026-99-99...`` through)."""
    try:
        value = decode_json(line)
    except ValueError as exc:
        raise UnreadableDecisionError(f"malformed JSON: {exc}") from exc
    try:
        schemas.validate(REWARD_DECISIONS, value)
    except schemas.SchemaError as exc:
        raise UnreadableDecisionError(f"schema: {exc}") from exc
    try:
        return value, parse_time(value["ts"])
    except ValueError as exc:
        raise UnreadableDecisionError(f"impossible-date: ts {value['ts']!r}: {exc}") from exc
