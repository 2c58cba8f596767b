"""The shapes of the platform's answers (``docs/api.md``), as TypedDicts: what a JSON answer is, typed, with no
conversion cost. A key a service may leave out is ``NotRequired``; a key always sent, possibly null, is
``X | None``. Each mirrors a service's response model (``services/<service>/api/models.py``), key for key
(``tests/unit/test_sdk_types.py``).

No ``from __future__ import annotations`` here: with it, Python 3.11's TypedDict cannot see ``NotRequired``, and
``__required_keys__`` would name every key."""

from typing import Any, NotRequired, TypedDict

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
