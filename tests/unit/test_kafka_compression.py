"""The compression of produced batches: lz4 unless KAFKA_COMPRESSION names another codec librdkafka has."""

from __future__ import annotations

import pytest

from services.common.kafka import KafkaProducer
from services.common.settings import PlatformSettings


def test_lz4_by_default_and_the_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_COMPRESSION", raising=False)
    assert PlatformSettings().kafka_compression == "lz4"
    monkeypatch.setenv("KAFKA_COMPRESSION", "zstd")
    assert PlatformSettings().kafka_compression == "zstd"


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="kafka_compression"):
        PlatformSettings(kafka_compression="brotli")


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_codec_allowed_is_one_librdkafka_takes(monkeypatch: pytest.MonkeyPatch, codec: str) -> None:
    monkeypatch.setenv("KAFKA_COMPRESSION", codec)
    producer = KafkaProducer("127.0.0.1:1", "compression-test", send_timeout_s=0.1)  # no broker needed
    producer.close(timeout_s=0.1)
