"""Prometheus metrics shared by every service, and the ``/metrics`` exposition."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "smartcity_http_requests_total", "HTTP requests served.", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "smartcity_http_request_duration_seconds",
    "HTTP request latency.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PRODUCED_RECORDS = Counter(
    "smartcity_kafka_produced_total", "Records produced, by delivery outcome.", ["topic", "outcome"]
)
CONSUMER_RECORDS = Counter("smartcity_kafka_consumed_total", "Records consumed.", ["topic", "group"])
CONSUMER_BATCHES = Counter(
    "smartcity_kafka_consumed_batches_total", "Batches consumed and committed.", ["topic", "group"]
)
DLQ_RECORDS = Counter("smartcity_kafka_dead_lettered_total", "Records sent to a DLQ.", ["topic", "group"])


def exposition() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
