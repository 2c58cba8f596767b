import hashlib

import pytest

from services.common import schemas, topics
from services.common.dead_letters import dlq_record
from services.common.events import encode_json
from services.common.schemas import SchemaError
from services.common.signing import Keypair


def test_every_topic_has_a_valid_schema():
    for topic in topics.ALL_TOPICS:
        assert (schemas.SCHEMA_DIR / topic.schema).is_file(), topic.name
        schemas.validator(topic.schema)  # raises if the schema itself is invalid


def test_topic_names_are_unique_and_versioned():
    names = [t.name for t in topics.ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(name.startswith("city.") and name.endswith(".v1") for name in names)


def test_compacted_topics_are_the_ones_of_the_design():
    assert {t.name for t in topics.ALL_TOPICS if t.cleanup_policy == "compact"} == {
        "city.consents.v1",
        "city.bindings.v1",
        "city.merchants.v1",
        # The rewards worker's per-partition state snapshots, folded by key like every compacted topic.
        "city.rewards-snapshots.v1",
    }


def test_dlq_names():
    assert topics.READINGS.dlq.name == "city.readings.dlq.v1"
    assert topics.by_name("city.rewards.dlq.v1") == topics.REWARDS.dlq
    with pytest.raises(ValueError):
        _ = topics.ZONE_STATS.dlq


def test_dlq_record_fits_its_schema():
    record = dlq_record(
        topics.READINGS,
        key=b"k",
        raw=b"\xff\xfe",
        partition=1,
        offset=7,
        reason="malformed JSON",
        consumer="c",
    )
    schemas.validate(record.topic, record.value)
    assert record.value["value_encoding"] == "base64"
    assert ("dlq_reason", b"malformed JSON") in record.headers


def test_a_dlq_entry_of_a_huge_record_stays_small_and_names_what_it_was():
    raw = b'{"reward_id": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    record = dlq_record(
        topics.REWARDS,
        key=b"wallet",
        raw=raw,
        partition=2,
        offset=99,
        reason="too large: " + "why " * 5000,
        consumer="ledger",
        headers=[("ce_id", b"1"), ("huge", b"h" * 100_000)],
    )
    schemas.validate(record.topic, record.value)
    encoded = encode_json(record.value)
    assert len(encoded) < 8 * 1024 and sum(len(v) for _, v in record.headers) < 8 * 1024
    value = record.value
    assert (value["value_size"], value["value_truncated"]) == (len(raw), True)
    assert value["value_sha256"] == hashlib.sha256(raw).hexdigest()
    assert raw.startswith(value["value"].encode()) and len(value["value"]) == 1024
    assert len(value["reason"]) == 2000 and ("ce_id", b"1") in record.headers
    assert "huge" not in dict(record.headers)
    small = dlq_record(topics.REWARDS, key=None, raw=b"{}", partition=0, offset=0, reason="r", consumer="c")
    assert (small.value["value"], small.value["value_truncated"], small.value["value_size"]) == (
        "{}",
        False,
        2,
    )


def _reading(key: Keypair, **overrides):
    body = {"device_id": key.did, "seq": 1, "ts": "2026-11-21T10:00:00.000Z", "kind": "noise", "zone": "z1"}
    body["values"] = {"db_a": 55.5}
    body.update(overrides)
    return key.sign(body)


def test_reading_envelope_validates_and_names_the_bad_field():
    device, owner = Keypair.generate(), Keypair.generate()
    registration = owner.sign({"device_id": device.did, "owner": owner.did, "kind": "noise", "zone": "z1"})
    envelope = {
        "reading_id": "0" * 64,
        "owner": owner.did,
        "received_at": "2026-11-21T10:00:00.001Z",
        "reading": _reading(device),
        "registration": registration,
    }
    schemas.validate(topics.READINGS, envelope)
    envelope["reading"] = _reading(device, values={"db_a": "loud"})
    with pytest.raises(SchemaError, match="reading/values/db_a"):
        schemas.validate(topics.READINGS, envelope)
    envelope["reading"] = _reading(device, ts="yesterday")
    with pytest.raises(SchemaError, match="reading/ts"):
        schemas.validate(topics.READINGS, envelope)


def test_definition_validation_names_the_field():
    key = Keypair.generate()
    schemas.validate_definition("reading", _reading(key))
    with pytest.raises(SchemaError, match="seq"):
        schemas.validate_definition("reading", _reading(key, seq=-1))
    with pytest.raises(SchemaError, match="sig"):
        schemas.validate_definition("reading", {**_reading(key), "sig": "short"})


def test_an_integer_field_written_with_a_fraction_is_refused_everywhere():
    key = Keypair.generate()
    transfer = {"from": key.did, "to": Keypair.generate().did, "amount": 5, "currency": "CITY", "nonce": 200}
    schemas.validate_against("transfers.v1.json", key.sign(transfer))
    for field in ("nonce", "amount"):
        with pytest.raises(SchemaError, match=rf"{field}: 200\.0 must be written as an integer"):
            schemas.validate_against("transfers.v1.json", key.sign({**transfer, field: 200.0}))
    with pytest.raises(SchemaError, match=r"seq: 3\.0 must be written as an integer"):
        schemas.validate_definition("reading", _reading(key, seq=3.0))
    # A number field still takes a value written with a fraction.
    schemas.validate_definition("reading", _reading(key, values={"db_a": 55.0}))


def test_every_integer_type_of_every_schema_carries_the_strict_keyword():
    for path in sorted(schemas.SCHEMA_DIR.rglob("*.json")):
        loaded = schemas.load_schema(path)
        stack = [loaded]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                if node.get("type") == "integer":
                    assert node.get(schemas.JSON_INTEGER) is True, path
                stack.extend(node.values())
