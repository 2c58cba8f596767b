"""The identity service's Prometheus metrics."""

from prometheus_client import Counter

PRESENTATIONS = Counter(
    "smartcity_identity_presentations_verified",
    "Presentations verified, by outcome (ok, or the reason they were refused).",
    ["outcome"],
)
PIN_CHECKS = Counter(
    "smartcity_identity_pin_checks",
    "Custodial wallet PIN checks, by outcome (ok, wrong, locked).",
    ["outcome"],
)
CONSENT_CHANGES = Counter(
    "smartcity_identity_consent_changes", "Consent changes stored and published, by status.", ["status"]
)
CREDENTIALS = Counter("smartcity_identity_credentials", "Credentials issued and revoked.", ["event"])
CUSTODIAL_TRANSFERS = Counter(
    "smartcity_identity_custodial_transfers",
    "Transfers signed for custodial wallets, by outcome (paid, repeated, refused, ledger-unavailable).",
    ["outcome"],
)
BINDING_CHANGES = Counter(
    "smartcity_identity_bindings",
    "Binding requests by outcome: bound, again (the wallet was bound already), limit, bound-elsewhere, or the "
    "reason a request was refused; and unbound: a binding removed by its person's erasure.",
    ["outcome"],
)
