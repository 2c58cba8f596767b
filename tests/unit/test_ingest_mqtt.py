"""The MQTT bridge's pure parts: which topics are readings topics, what a message holds, the acks."""

import pytest
from pydantic import ValidationError

from services.ingest.checks import Reason, Rejection
from services.ingest.mqtt import Received, ack, parse_message, readings_filter, topic_mismatch
from services.ingest.settings import IngestSettings


def test_readings_topics_and_payloads():
    assert parse_message("p/city/devices/d1/readings", b'{"seq": 1}', "p/", 100) == ("d1", [{"seq": 1}])
    batch = b'{"readings": [{"seq": 1}, {"seq": 2}]}'
    assert parse_message("city/devices/d1/readings", batch, "", 100) == ("d1", [{"seq": 1}, {"seq": 2}])
    for topic in ("city/devices/d1/acks", "q/city/devices/d1/readings", "city/devices//readings", "city/x"):
        assert parse_message(topic, b"{}", "", 100) is None, topic


def test_the_bridges_share_one_subscription_unless_no_group_is_set():
    assert readings_filter("p/", "ingest") == "$share/ingest/p/city/devices/+/readings"
    assert readings_filter("p/", "") == "p/city/devices/+/readings"
    assert IngestSettings().mqtt_share_group == "smartcity-ingest"
    for group in ("a/b", "a+", "#"):  # MQTT 5 forbids them in a share name
        with pytest.raises(ValidationError):
            IngestSettings(mqtt_share_group=group)
    # A shared subscription delivers a message on the topic it was published to, which parse_message reads
    # (tests/integration/test_ingest_mqtt.py shows it on Mosquitto).
    assert parse_message("p/city/devices/d1/readings", b"{}", "p/", 100) == ("d1", [{}])


def test_a_payload_that_is_not_json_or_too_large_becomes_one_malformed_reading():
    assert parse_message("city/devices/d1/readings", b"{nope", "", 100) == ("d1", [None])
    assert parse_message("city/devices/d1/readings", b"[NaN]", "", 100) == ("d1", [None])
    assert parse_message("city/devices/d1/readings", b'{"seq": 1}', "", 5) == ("d1", [None])


def test_acks():
    assert ack({"seq": 7}, None) == {"seq": 7, "status": "accepted", "reason": None}
    rejected = ack({"seq": "7"}, Rejection(Reason.DUPLICATE, "seq 7 <= 7"))
    assert rejected == {"seq": None, "status": "rejected", "reason": "duplicate: seq 7 <= 7"}
    assert ack(None, Rejection(Reason.INVALID_READING))["seq"] is None


def test_a_reading_must_come_on_its_devices_topic():
    assert topic_mismatch(Received("d1", {"device_id": "d1"})) is None
    assert topic_mismatch(Received("d1", {"device_id": "d2"})).reason is Reason.INVALID_READING
    assert topic_mismatch(Received("d1", None)) is None  # left to the reading checks to name
