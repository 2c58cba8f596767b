"""CloudEvents (binary mode) attributes carried as Kafka headers, and JSON encoding of values.

Times are written as the SDK writes them (`smartcity_sdk.timestamps`: RFC 3339 UTC, milliseconds, ``Z``),
imported here under the names services use."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from smartcity_sdk.timestamps import now_rfc3339, rfc3339

__all__ = [
    "CONTENT_TYPE",
    "NDJSON",
    "SPEC_VERSION",
    "cloudevent_headers",
    "decode_json",
    "encode_json",
    "headers_dict",
    "now_rfc3339",
    "rfc3339",
]

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
NDJSON = "application/x-ndjson"
"""The content type of a batch record (`services.common.kafka.batch_record`): newline-delimited JSON, a value a
line."""
_SPEC_VERSION_HEADER = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())


def cloudevent_headers(
    event_type: str,
    source: str,
    event_id: str | None = None,
    time: str | None = None,
    content_type: str = CONTENT_TYPE,
) -> list[tuple[str, bytes]]:
    """Kafka headers of a binary-mode CloudEvent."""
    return [
        _SPEC_VERSION_HEADER,
        ("ce_id", (event_id or str(uuid.uuid4())).encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("ce_time", (time or now_rfc3339()).encode()),
        _CONTENT_TYPE_HEADER if content_type == CONTENT_TYPE else ("content-type", content_type.encode()),
    ]


def headers_dict(headers: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as a str->str dict (the last value wins)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or []}


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value (orjson: a record's encoding is on every producer's hot path).

    Raises TypeError for a non-string key or a non-JSON type. NaN and infinities, which JSON cannot hold,
    are written as ``null`` (the consumers' schemas refuse a null where a number belongs).
    """
    return orjson.dumps(value, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)


def decode_json(raw: bytes | None) -> Any:
    """Parse a JSON value (orjson); raises ValueError on bad bytes.

    Stricter than the standard library where JSON is: NaN, infinities and lone surrogates are refused, and
    nesting beyond 1,024 levels is a ValueError rather than a RecursionError. An integer beyond 64 bits comes
    back as a float, which every integer field of the platform then refuses.
    """
    if raw is None:
        raise ValueError("empty value")
    return orjson.loads(raw)
