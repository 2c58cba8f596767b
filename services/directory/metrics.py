"""The directory service's Prometheus metrics."""

from prometheus_client import Counter

MERCHANT_REGISTRATIONS = Counter(
    "smartcity_directory_merchant_registrations", "Merchant registration requests, by outcome.", ["outcome"]
)
MERCHANT_VERIFICATIONS = Counter(
    "smartcity_directory_merchant_verifications", "City verifications of merchants, by outcome.", ["outcome"]
)
SEARCHES = Counter(
    "smartcity_directory_searches", "Searches answered, by kind (search, alternatives).", ["kind"]
)
