"""The identity service's tables."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

identities = Table(
    "identities",
    metadata,
    Column("did", String(64), primary_key=True),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # "self": the person holds the key; "custodial": the city holds it sealed (custodial_wallets).
    Column("custody", String(16), nullable=False, server_default="self"),
    Column("registration", JSONB, nullable=True),  # the signed registration, or the caseworker's enrolment
    Column(
        "zone", String(64), nullable=True
    ),  # where the person stays, as they or their caseworker signed it
)

custodial_wallets = Table(
    "custodial_wallets",
    metadata,
    Column("did", String(64), ForeignKey("identities.did"), primary_key=True),
    Column("sealed_seed", LargeBinary, nullable=False),
    Column("salt", LargeBinary, nullable=False),
    Column("enrolled_by", String(64), nullable=False),
    Column("enrolled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The caseworker's signed enrolment, by id: the same order again opens no second wallet.
    Column("enrolment_id", String(32), nullable=True, unique=True),
    # The seed sealed for a caseworker's PIN reset (`custody.seal_recovery`); None for wallets enrolled before.
    Column("recovery_sealed", LargeBinary, nullable=True),
    Column("photo_sha256", String(64), nullable=True),  # the photo on record, named by the enrolment order
)

# Each PIN reset a caseworker ordered, by the id of the signed order: the same order again resets nothing more.
pin_resets = Table(
    "pin_resets",
    metadata,
    Column("reset_id", String(32), primary_key=True),
    Column("did", String(64), ForeignKey("identities.did"), nullable=False, index=True),
    Column("caseworker", String(64), nullable=False),
    Column("proof", String(16), nullable=False),  # "photo" or "credential"
    Column("order", JSONB, nullable=False),
    Column("reset_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The wrong PINs given for a did (`custody.PinGuard`), whether or not it holds a custodial wallet: a did with
# none is counted and locked alike, so the answers do not say who holds one. A right PIN deletes the row.
pin_guards = Table(
    "pin_guards",
    metadata,
    Column("did", String(64), primary_key=True),
    Column("failed_attempts", Integer, nullable=False, server_default="0"),
    Column("lockouts", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True), nullable=True),
)

credentials = Table(
    "credentials",
    metadata,
    Column("credential_id", String(32), primary_key=True),
    Column("subject", String(64), ForeignKey("identities.did"), nullable=False, index=True),
    Column("status_index", BigInteger, Identity(start=0, minvalue=0), nullable=False, unique=True),
    Column("vct", String(200), nullable=False),
    Column("issued_by", String(64), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("sd_jwt", Text, nullable=True),  # kept only for custodial holders, who present through the service
)

consents = Table(
    "consents",
    metadata,
    Column("subject", String(64), nullable=False),
    Column("category", String(64), nullable=False),
    Column("grantee", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("until", DateTime(timezone=True), nullable=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("consent", JSONB, nullable=False),
    Column("receipt", JSONB, nullable=False),
    PrimaryKeyConstraint("subject", "category", "grantee"),
)

# A notice goes to one person (recipient) or to a group (group_kind, group_value): ("custody", "custodial"),
# ("credential", vct) or ("aid_zone", zone). A group notice is one row, matched against the reader's custody,
# credentials, zone and AID when they read their inbox. Inboxes skip notices past expires_at (NULL: no end).
notices = Table(
    "notices",
    metadata,
    Column("notice_id", String(32), primary_key=True),
    Column("recipient", String(64), nullable=True, index=True),
    Column("sender", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("notice", JSONB, nullable=False),
    Column("group_kind", String(16), nullable=True),
    Column("group_value", String(200), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(
        "(recipient IS NULL) <> (group_kind IS NULL) AND (group_kind IS NULL) = (group_value IS NULL)",
        name="notices_one_addressee",
    ),
    Index("ix_notices_group", "group_kind", "group_value"),
)

service_records = Table(
    "service_records",
    metadata,
    Column("record_id", String(32), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("subject", String(64), nullable=True),  # NULL once the person's erasure anonymised the record
    Column("service", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# What identity signed for a custodial wallet (`api/custodial_payments.py`), by the caller's request id: a
# retried request resubmits the very same signed transfer (or, settled, gets its stored receipt), so one
# request id moves money at most once. Keyed to identities, not to the wallet, so the history stays after an
# export deletes the city's copy of the key.
custodial_transfers = Table(
    "custodial_transfers",
    metadata,
    Column("did", String(64), ForeignKey("identities.did"), nullable=False),
    Column("request_id", String(100), nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("transfer", JSONB, nullable=False),  # the signed transfer, as the ledger gets it
    Column("receipt", JSONB, nullable=True),  # the ledger's receipt, once it accepted the transfer
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("did", "request_id"),
    UniqueConstraint("did", "nonce"),
)

# A wallet bound to a person (`api/bindings.py`): the wallet-signed request holding the presentation of a
# resident credential, as published to city.bindings.v1. A wallet is bound once; `person` is sha256 hex of
# the credential's issuer-signed JWT, so the wallets of one credential share it.
bindings = Table(
    "bindings",
    metadata,
    Column("wallet", String(64), primary_key=True),
    Column("person", String(64), nullable=False, index=True),
    Column("issuer", String(64), nullable=False),
    Column("status_index", Integer, nullable=True),  # the credential's entry in the status list
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("bound_at", DateTime(timezone=True), nullable=False),
    Column("binding", JSONB, nullable=False),
)

# People's erasure requests (`services.identity.erasures`), by the id of the signed request: the request as the
# person signed it (or, at a kiosk, as the city signed it with their key once their PIN opened it), when identity
# erased its own rows, and when ingest and the ledger answered that they erased theirs; completed_at once all
# three have. Kept after completion: the request and its completion are the city's record of the erasure.
erasures = Table(
    "erasures",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("did", String(64), nullable=False, index=True),
    Column("request", JSONB, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("identity_erased_at", DateTime(timezone=True), nullable=True),
    Column("ingest_erased_at", DateTime(timezone=True), nullable=True),
    Column("ledger_erased_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),  # why the last forwarding failed, for operators
    Index("ix_erasures_pending", "requested_at", postgresql_where=text("completed_at IS NULL")),
)

# Every signed consent receipt (the consents row keeps only the latest), in the order they were made, and once
# anchored (`services.identity.anchoring`): the anchor's chain transaction, the signed anchor, and the receipt's
# leaf index and RFC 9162 inclusion path (hex) in the anchored batch.
consent_receipts = Table(
    "consent_receipts",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("receipt_id", String(64), nullable=False, unique=True),
    Column("subject", String(64), nullable=False, index=True),
    Column("receipt", JSONB, nullable=False),
    Column("anchor_tx_id", String(64), nullable=True),
    Column("anchor", JSONB, nullable=True),
    Column("leaf_index", Integer, nullable=True),
    Column("path", JSONB, nullable=True),
    Index("ix_consent_receipts_unanchored", "seq", postgresql_where=text("anchor_tx_id IS NULL")),
)
