"""The shapes of the platform's answers (``docs/api.md``), as TypedDicts: what a JSON answer is, typed, with no
conversion cost. A key a service may leave out is ``NotRequired``; a key always sent, possibly null, is
``X | None``. Each mirrors a service's response model (``services/<service>/api/models.py``; the ledger's
circulation report ``services/ledger/api/circulation.py``, the portal's impact figures
``services/portal/impact.py``), key for key (``tests/unit/test_sdk_types.py``).

No ``from __future__ import annotations`` here: with it, Python 3.11's TypedDict cannot see ``NotRequired``, and
``__required_keys__`` would name every key."""

from typing import Any, Literal, NotRequired, TypedDict

# --------------------------------------------------------------------------------------------------------------
# Ledger


class Checkpoint(TypedDict):
    """A signed block header (signed tree head): `smartcity_sdk.proofs.verify_checkpoint` checks one."""

    height: int
    previous_hash: str
    tree_size: int
    root_hash: str
    timestamp: str
    public_key: str
    signature: str


class Block(Checkpoint):
    tx_ids: list[str]
    """The block's transactions in leaf order."""


class InclusionProof(TypedDict):
    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: list[str]


class ConsistencyProof(TypedDict):
    first: int
    second: int
    proof: list[str]


class CurrencyTotal(TypedDict):
    held: int
    accounts: int


class Totals(TypedDict):
    tree_size: int
    totals: dict[str, CurrencyTotal]


class Receipt(TypedDict):
    """The ledger's answer to a transfer or an issuer command (the same again on a retry)."""

    tx_id: str
    status: str
    """``settled``, or ``sealed`` once in a block."""
    leaf_index: int | None
    block_height: int | None
    transaction: str
    proof: str


class PolicyReceipt(Receipt):
    """The receipt of a policy publication, naming the policy it put on the chain."""

    policy_hash: str
    """sha256 hex of the document's JCS bytes: its name on the chain."""
    version: str


class Account(TypedDict):
    wallet: str
    balances: dict[str, int]
    """Micro-units per currency (1 CITY = 1,000,000)."""


class AccountTransaction(TypedDict):
    tx_id: str
    leaf_index: int | None
    block_height: int | None
    type: str
    changes: dict[str, int]
    settled_at: str
    seq: int


class AccountTransactions(TypedDict):
    transactions: list[AccountTransaction]
    next_before: int | None


class Nonce(TypedDict):
    wallet: str
    last_nonce: int
    next_nonce: int


class Memo(TypedDict):
    """A transfer's or command's memo, for its parties and auditors; only `tx_id` and `erased_at` once erased."""

    tx_id: str
    memo_digest: NotRequired[str]
    memo_disclosure: NotRequired[str]
    memo: NotRequired[str]
    erased_at: NotRequired[str]


class TopAccount(TypedDict):
    wallet: str
    balance: int
    """Micro-units of the currency asked for."""


class TopAccounts(TypedDict):
    """The wallets holding the most of a currency, the most first (an auditor's read)."""

    accounts: list[TopAccount]


class AccountBalances(TypedDict):
    account: str
    balances: dict[str, int]


class Balances(TypedDict):
    """Every account's balances as of a tree size, a page of them (an auditor's read)."""

    tree_size: int
    accounts: list[AccountBalances]
    next_after: str | None
    """``after`` of the next page; None when there is no more."""


class Authority(TypedDict):
    """The root key and every role's holders in force: the fold of the chain's authority records."""

    root: str
    roles: dict[str, list[str]]


class Disclosure(TypedDict):
    """A reward's evidence, which its public record commits to; only `tx_id` and `erased_at` once erased."""

    tx_id: str
    salt: NotRequired[str]
    envelope: NotRequired[str]
    """The readings envelope ingest attested, its exact JCS text."""
    attestation: NotRequired[dict[str, Any]]
    erased_at: NotRequired[str]


class LeafDisclosure(Disclosure):
    leaf_index: int


class Disclosures(TypedDict):
    """The evidence of the rewards among a range of leaves, in leaf order."""

    disclosures: list[LeafDisclosure]
    next_start: int | None
    """Where to ask again; None when the range is done."""


class LeafMemo(Memo):
    leaf_index: int


class Memos(TypedDict):
    """The memos of the transactions among a range of leaves, in leaf order."""

    memos: list[LeafMemo]
    next_start: int | None


class CirculationMonth(TypedDict):
    month: str
    """The UTC month of settlement, YYYY-MM."""
    rewards: int
    paid: int
    """micro-CITY the rewards paid into wallets."""
    transfers: int
    transferred: int
    merchant_payments: int
    to_local_merchants: int
    local_share: float | None
    """to_local_merchants / transferred (None: no transfer that month)."""


class Circulation(TypedDict):
    """Per month, the CITY rewards paid, the CITY transferred and the part spent at local merchants.

    ``currency`` and ``unit`` are constants (``CITY``, ``micro-CITY``): defaults of the ledger's model, typed
    as its other defaults are."""

    currency: NotRequired[Literal["CITY"]]
    unit: NotRequired[Literal["micro-CITY"]]
    tree_size: int
    computed_at: str
    months: list[CirculationMonth]
    """Oldest first, the current month last."""


class LedgerErasure(TypedDict):
    """What the ledger erased for a person's request."""

    request_id: str
    did: str
    disclosures: int
    memos: int
    erased_at: str
    aid_holder: NotRequired[str]
    """The person's AID holder key, whose memos went too."""


class VerifiedTransaction(TypedDict):
    """A transaction record checked to be in the tree of a checkpoint checked to be the ledger's."""

    record: dict[str, Any]
    checkpoint: Checkpoint
    proof: InclusionProof


# --------------------------------------------------------------------------------------------------------------
# Identity


class Identity(TypedDict):
    did: str
    custody: str
    """``self`` or ``custodial``."""


class Resolution(TypedDict):
    """A did:key's public key, in three forms, and its DID document."""

    did: str
    public_key_multibase: str
    public_key_hex: str
    public_key_jwk: dict[str, str]
    did_document: dict[str, Any]


class ExportedWallet(TypedDict):
    """A custodial key taken out to the person's own device (the city's copy is deleted)."""

    did: str
    seed: str
    """base64url of the 32-byte Ed25519 seed: ``Keypair.from_seed(b64url_decode(seed))``."""
    custody: str
    credentials: list[str]
    """The SD-JWT credentials the city kept for the person."""


class Presentation(TypedDict):
    presentation: str
    """An SD-JWT presentation with its key-binding JWT."""


class Credential(TypedDict):
    """A resident credential issued: an SD-JWT VC whose claims are each selectively disclosable."""

    credential_id: str
    subject: str
    vct: str
    status_index: int
    """Its bit in the status list."""
    expires_at: str
    sd_jwt: str


class CredentialRevocation(TypedDict):
    credential_id: str
    status_index: int
    revoked_at: str


class ReceiptProof(TypedDict):
    """Where a consent receipt is anchored on the ledger's chain."""

    receipt_id: str
    receipt: dict[str, Any]
    tx_id: str
    """The ledger transaction of the anchor."""
    anchor: dict[str, Any]
    leaf_index: int
    """The receipt's leaf in the anchored batch."""
    audit_path: list[str]
    """Its RFC 9162 inclusion path in the batch, hex."""


class Binding(TypedDict):
    wallet: str
    person: str
    """sha256 hex of the credential's issuer-signed JWT: the same for every wallet of the person."""
    issuer: str
    expires_at: str
    bound_at: str
    binding: dict[str, Any]
    """The wallet's signed binding request."""


class BindingAnswer(TypedDict):
    binding: Binding


class NoticePosted(TypedDict):
    notice_id: str
    """The signed notice's id: the same notice again is the same id."""


class ServiceRecorded(TypedDict):
    record_id: str


class ServiceCount(TypedDict):
    service: str
    day: str
    count: int


class ServiceCounts(TypedDict):
    """Services given per service and day: counts only, never who."""

    since: str
    until: str
    counts: list[ServiceCount]


class PinReset(TypedDict):
    did: str
    proof: str
    """The re-proof the caseworker gave: ``photo`` or ``credential``."""
    reset_at: str


class ConsentChange(TypedDict):
    record: dict[str, Any]
    receipt: dict[str, Any]
    """Signed by the city's identity key (``issuer``)."""
    receipt_id: str


class ConsentState(TypedDict):
    subject: str
    category: str
    grantee: str
    status: str
    purpose: str
    changed_at: str
    consent: dict[str, Any]
    receipt: dict[str, Any]
    until: NotRequired[str]


class Consents(TypedDict):
    consents: list[ConsentState]


class Notice(TypedDict):
    notice_id: str
    sender: str
    title: str
    body: str
    posted_at: str
    group: NotRequired[dict[str, str]]
    expires_at: NotRequired[str]
    notice: dict[str, Any]
    """The signed object the sender posted."""


class Inbox(TypedDict):
    notices: list[Notice]
    unresolved: NotRequired[list[str]]
    """Groups the inbox could not resolve now (the ledger did not answer), e.g. ``aid_zone``: their notices may
    be missing, so ask again later."""


class VerifiedPresentation(TypedDict):
    issuer: str
    vct: str
    issued_at: int
    expires_at: int
    disclosed: dict[str, Any]
    """Exactly the claims the holder disclosed."""


class Erasure(TypedDict):
    request_id: str
    did: str
    status: str
    """``in-progress`` or ``completed``."""
    requested_at: str
    completed: dict[str, str | None]
    completed_at: str | None
    close_wallet: bool
    attempts: int
    request: dict[str, Any]


class Statement(TypedDict):
    did: str
    aid_holder: str
    balances: dict[str, int]
    transactions: list[AccountTransaction]
    more: bool


class AidHolder(TypedDict):
    did: str
    aid_holder: str


# --------------------------------------------------------------------------------------------------------------
# Directory


class Facts(TypedDict):
    """A merchant's facts: ``category`` and ``locally_owned`` are the city's findings once verified, else its
    claims."""

    wallet: str
    name: str
    category: str
    locally_owned: bool
    verified: bool
    accepts: list[str]
    address: NotRequired[str]
    lat: NotRequired[float]
    lon: NotRequired[float]
    description: NotRequired[str]
    chain: NotRequired[str]
    hours: NotRequired[dict[str, list[str]]]


class Merchant(Facts):
    """A merchant, its signed registration and, once the city verified it, the signed verification."""

    active: bool
    updated_at: str
    registration: dict[str, Any]
    registered_at: str
    verification: NotRequired[dict[str, Any]]


class MerchantPage(TypedDict):
    merchants: list[Merchant]
    total: int
    limit: int
    offset: int


class Score(TypedDict):
    text: float
    distance: float
    local: float
    total: float


class SearchHit(Facts):
    """A search result: the merchant's facts (not its registration), how far, whether open, and why it ranks."""

    distance_km: float | None
    open_now: bool | None
    score: Score


class SearchResults(TypedDict):
    results: list[SearchHit]
    total: int
    limit: int
    offset: int
    ranking: dict[str, Any]


class Alternatives(TypedDict):
    """Locally owned merchants for what one would otherwise buy from a chain."""

    to: str
    categories: list[str]
    alternatives: list[SearchHit]
    total: int
    limit: int
    offset: int


class Categories(TypedDict):
    categories: dict[str, str]
    """Each category's name and what it covers."""


# --------------------------------------------------------------------------------------------------------------
# Ingest


class Device(TypedDict):
    device_id: str
    owner: str
    kind: str
    zone: str
    location: dict[str, float] | None
    status: str
    """``active`` or ``revoked``."""
    registration: dict[str, Any]
    registered_at: str
    replaces: str | None
    replaced_by: str | None
    revoked_at: str | None
    revocation: dict[str, Any] | None


class Devices(TypedDict):
    devices: list[Device]


class ReadingResult(TypedDict):
    index: int
    status: str
    """``accepted`` or ``rejected``."""
    reason: str | None


class ReadingsAnswer(TypedDict):
    accepted: int
    rejected: int
    results: list[ReadingResult]


class DecidedReward(TypedDict):
    rule: str
    amount: int


class DecisionReason(TypedDict):
    code: str
    detail: str
    rule: NotRequired[str]


class Decision(TypedDict):
    reading_id: str
    wallet: str
    device_id: str
    kind: str
    ts: str
    outcome: str
    """``rewarded`` or ``unrewarded``."""
    rewards: list[DecidedReward]
    reasons: list[DecisionReason]
    policy_version: str
    decided_at: str


class Decisions(TypedDict):
    wallet: str
    decisions: list[Decision]
    next_before: str | None


class Kind(TypedDict):
    kind: str
    title: str
    consent_category: str
    units: dict[str, str]


class Kinds(TypedDict):
    kinds: list[Kind]


class IngestErasure(TypedDict):
    """What ingest erased for a person's request."""

    request_id: str
    did: str
    devices: int
    """Devices revoked and stripped of their personal details."""
    decisions: int
    """Reward decisions deleted."""
    erased_at: str


# --------------------------------------------------------------------------------------------------------------
# Portal


class Figures(TypedDict):
    kg_co2e_avoided: float | None
    """None: no published policy known yet, so no emission factors."""
    kwh_saved: float
    kg_recycled: float
    km_cycled: float
    km_walked: float
    bike_trips: int
    walk_trips: int
    transit_trips: int
    readings: int


class MonthFigures(Figures):
    month: str
    """YYYY-MM (UTC)."""


class ZoneMonthFigures(MonthFigures):
    zone: str


class Factor(TypedDict):
    kind: str
    value: str
    unit: str | None
    kg_co2e_per_unit: float
    source: str


class PolicyUsed(TypedDict):
    """The reward policy whose emission factors the kg CO2e figures use."""

    version: str
    hash: str
    factors: list[Factor]


class WindowOutcomes(TypedDict):
    counted: int
    duplicate: int
    suppressed: int
    too_old: int


class ZoneImpact(TypedDict):
    """The impact figures per zone and month, per month and in all, from k-anonymous zone statistics."""

    months: list[str]
    zones: list[ZoneMonthFigures]
    by_month: list[MonthFigures]
    totals: Figures
    policy: PolicyUsed | None
    k_anonymity: int | None
    windows: WindowOutcomes
    caught_up: bool
    newest_window_end: str | None
