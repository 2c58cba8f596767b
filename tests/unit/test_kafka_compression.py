"""The compression of produced batches: none to a broker on this host, lz4 across a network, or as set."""

from __future__ import annotations

import pytest

from services.common.settings import PlatformSettings


@pytest.mark.parametrize(
    "servers",
    [
        "127.0.0.1:9092",
        "localhost:9092",
        "[::1]:9092",
        "::1",
        "127.0.0.1:9092,127.0.0.2:9093",
        "127.0.0.1",
        "127.0.0.1:9092,",  # librdkafka skips an empty entry
        "PLAINTEXT://localhost:9092",
        "LOCALHOST.:9092",
        ":9092",  # no host: librdkafka's localhost
    ],
)
def test_a_broker_on_this_host_gets_uncompressed_batches(servers: str) -> None:
    assert PlatformSettings(kafka_compression=None).compression_for(servers) == "none"


@pytest.mark.parametrize(
    "servers",
    [
        "kafka:9092",
        "10.0.0.7:9092",
        "127.0.0.1:9092,kafka-1.kafka:9092",  # one broker elsewhere: batches cross a network
        "[2001:db8::1]:9092",
        "localhost.example.org:9092",
        "SASL_SSL://kafka-0.kafka:9093",
        "::1:9092",  # an IPv6 address without brackets takes no port: not ::1
        "",  # no servers at all
    ],
)
def test_a_broker_across_a_network_gets_lz4(servers: str) -> None:
    assert PlatformSettings(kafka_compression=None).compression_for(servers) == "lz4"


def test_the_setting_wins_wherever_the_broker_is() -> None:
    assert PlatformSettings(kafka_compression="zstd").compression_for("127.0.0.1:9092") == "zstd"
    assert PlatformSettings(kafka_compression="none").compression_for("kafka:9092") == "none"


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="kafka_compression"):
        PlatformSettings(kafka_compression="brotli")
