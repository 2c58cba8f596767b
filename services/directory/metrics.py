"""The directory service's Prometheus metrics."""

from prometheus_client import Counter

MERCHANT_REGISTRATIONS = Counter(
    "smartcity_directory_merchant_registrations", "Merchant registration requests, by outcome.", ["outcome"]
)
