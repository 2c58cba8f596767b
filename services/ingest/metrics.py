"""The ingest service's Prometheus metrics."""

from prometheus_client import Counter, Histogram

from services.ingest.checks import Reason

READINGS_ACCEPTED = Counter(
    "smartcity_ingest_readings_accepted", "Readings accepted (published and acknowledged by the broker)."
)
READINGS_REJECTED = Counter("smartcity_ingest_readings_rejected", "Readings rejected, by reason.", ["reason"])
BATCH_SIZE = Histogram(
    "smartcity_ingest_batch_size",
    "Readings per batch received.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
PUBLISH_LATENCY = Histogram(
    "smartcity_ingest_publish_seconds",
    "Time from publishing a batch's accepted readings until the broker acknowledged all of them.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PUBLISH_FAILURES = Counter(
    "smartcity_ingest_publish_failures", "Batches answered 503 because the broker did not acknowledge."
)
DEVICE_REGISTRATIONS = Counter(
    "smartcity_ingest_device_registrations", "Device registration requests, by outcome.", ["outcome"]
)

# Every reason shows up (at 0) from the start, so dashboards and rate() see the series before the first one.
for _reason in Reason:
    READINGS_REJECTED.labels(_reason.value)
DEVICE_REVOCATIONS = Counter(
    "smartcity_ingest_device_revocations", "Device revocation requests, by outcome.", ["outcome"]
)
