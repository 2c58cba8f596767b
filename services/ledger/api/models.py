"""The ledger's answers as models (what its OpenAPI document shows, and what each route's answer is checked
against), with examples made of real keys, ids and signatures (`services.common.openapi`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.common.merkle import leaf_hash
from services.common.openapi import example_id, example_key, examples
from services.common.policy import parse_policy
from services.common.signing import canonical_bytes

ALICE, BOB, ISSUER, ROOT, LEDGER = (example_key(n) for n in ("alice", "bob", "issuer", "root", "ledger"))
TX_ID = example_id("transfer")
TIME = "2026-03-14T09:26:53Z"
TRANSFER = ALICE.sign({"from": ALICE.did, "to": BOB.did, "amount": 2_500_000, "currency": "CITY", "nonce": 7})
POLICY = parse_policy(
    {
        "version": "2026.12-3",
        "caps": {"device_per_hour": 200_000, "wallet_per_day": 2_000_000},
        "quality": {
            "late_s": 86_400,
            "stuck_repeats": 5,
            "burst": {"max_readings": 100, "per_seconds": 60},
            "outlier": {"enabled": True, "robust_z": 6, "min_samples": 20},
        },
        "behaviour": {"micro_city_per_kg_co2e": 100_000},
        "kinds": {"noise": {"data_reward": 300, "values": {"db_a": {"min": 0, "max": 194, "unit": "dB(A)"}}}},
    },
    "example",
)
RECORD = {
    "tx_id": TX_ID,
    "type": "transfer",
    "postings": [
        {"account": ALICE.did, "currency": "CITY", "amount": -2_500_000},
        {"account": BOB.did, "currency": "CITY", "amount": 2_500_000},
    ],
    "transfer": TRANSFER,
    "timestamp": TIME,
}


RECEIPT = {
    "tx_id": TX_ID,
    "status": "settled",
    "leaf_index": None,
    "block_height": None,
    "transaction": f"/v1/transactions/{TX_ID}",
    "proof": f"/v1/transactions/{TX_ID}/proof",
}


class Receipt(BaseModel):
    """A transaction the ledger settled: 201 when new, 200 with the same receipt for the same object again."""

    model_config = examples(RECEIPT)
    tx_id: str = Field(
        description="sha256 hex, derived from the signer and nonce: the same object, the same id."
    )
    status: str = Field(description="settled, or sealed once in a block.")
    leaf_index: int | None = Field(description="Its leaf in the Merkle tree, null until sealed.")
    block_height: int | None = Field(description="Its block, null until sealed.")
    transaction: str = Field(description="Where its record is.")
    proof: str = Field(description="Where its inclusion proof is.")


class PolicyReceipt(Receipt):
    """A policy publication's receipt, naming the policy it put on the chain."""

    model_config = examples(
        {
            **RECEIPT,
            "policy_hash": POLICY.hash,
            "version": POLICY.version,
        }
    )
    policy_hash: str = Field(description="sha256 hex of the document's JCS bytes: its name on the chain.")
    version: str


class Account(BaseModel):
    """A wallet's balances, micro-units per currency (1 CITY = 1,000,000)."""

    model_config = examples({"wallet": ALICE.did, "balances": {"CITY": 12_500_000, "AID": 0, "CREDIT": 0}})
    wallet: str
    balances: dict[str, int]


class TopAccount(BaseModel):
    wallet: str
    balance: int = Field(description="Micro-units of the currency asked for.")


class TopAccounts(BaseModel):
    """The wallets holding the most of a currency, the most first."""

    model_config = examples({"accounts": [{"wallet": ALICE.did, "balance": 12_500_000}]})
    accounts: list[TopAccount]


class AccountTransaction(BaseModel):
    tx_id: str
    leaf_index: int | None = Field(description="Null until sealed.")
    block_height: int | None
    type: str = Field(description="reward, transfer, command, genesis, ...")
    changes: dict[str, int] = Field(description="What it changed of the account's balances, per currency.")
    settled_at: str
    seq: int = Field(description="Its order of settlement: pass the last one as `before` for the next page.")


class AccountTransactions(BaseModel):
    """An account's transactions, newest first."""

    model_config = examples(
        {
            "transactions": [
                {
                    "tx_id": TX_ID,
                    "leaf_index": 41,
                    "block_height": 6,
                    "type": "transfer",
                    "changes": {"CITY": -2_500_000},
                    "settled_at": TIME,
                    "seq": 42,
                }
            ],
            "next_before": None,
        }
    )
    transactions: list[AccountTransaction]
    next_before: int | None = Field(description="`before` of the next page; null when there is no more.")


class Nonce(BaseModel):
    """The last nonce the ledger accepted from a signer, and the next one to sign with."""

    model_config = examples({"wallet": ALICE.did, "last_nonce": 7, "next_nonce": 8})
    wallet: str
    last_nonce: int
    next_nonce: int


CHECKPOINT = {
    "height": 6,
    "previous_hash": example_id("block 5"),
    "tree_size": 42,
    "root_hash": example_id("root 42"),
    "timestamp": TIME,
    "public_key": LEDGER.did,
}
CHECKPOINT = LEDGER.sign(CHECKPOINT, field="signature")


class Checkpoint(BaseModel):
    """A signed block header (signed tree head); `signature` is the ledger key's Ed25519 signature over the JCS
    bytes of the header without it."""

    model_config = examples(CHECKPOINT)
    height: int
    previous_hash: str = Field(description="sha256 hex of the previous header's JCS bytes.")
    tree_size: int
    root_hash: str = Field(description="RFC 9162 Merkle tree root of the first tree_size leaves, hex.")
    timestamp: str
    public_key: str = Field(description="The ledger's did:key.")
    signature: str


class Block(Checkpoint):
    """A block header and its transactions in leaf order."""

    model_config = examples({**CHECKPOINT, "tx_ids": [TX_ID]})
    tx_ids: list[str]


class Posting(BaseModel):
    account: str
    currency: str
    amount: int = Field(description="Micro-units: negative out of the account, positive into it.")


class TransactionRecord(BaseModel):
    """A transaction record, exactly the JSON whose JCS bytes (RFC 8785) are its Merkle leaf: its postings sum
    to zero per currency, and it holds what authorises it (a transfer: the signed transfer; an issuer command: the
    signed command; a reward: the public reward and its oracle's attestation; ...)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [RECORD]})
    tx_id: str
    type: str
    postings: list[Posting]
    timestamp: str


class InclusionProof(BaseModel):
    """RFC 9162 inclusion proof of a leaf in the tree of `tree_size` leaves."""

    model_config = examples(
        {
            "leaf_index": 41,
            "tree_size": 42,
            "leaf_hash": leaf_hash(canonical_bytes(RECORD)).hex(),
            "audit_path": [example_id("node 40"), example_id("node 32-39"), example_id("node 0-31")],
        }
    )
    leaf_index: int
    tree_size: int
    leaf_hash: str = Field(description="SHA-256(0x00 || the record's JCS bytes), hex.")
    audit_path: list[str]


class ConsistencyProof(BaseModel):
    """RFC 9162 consistency proof between two tree sizes."""

    model_config = examples(
        {"first": 40, "second": 42, "proof": [example_id("node 40-41"), example_id("0-39")]}
    )
    first: int
    second: int
    proof: list[str]


class Authority(BaseModel):
    """The root key and every role's holders in force: the fold of the chain's authority records."""

    model_config = examples({"root": ROOT.did, "roles": {"issuer": [ISSUER.did], "auditor": []}})
    root: str
    roles: dict[str, list[str]]


class AccountBalances(BaseModel):
    account: str
    balances: dict[str, int]


class Balances(BaseModel):
    """Every account's balances as of a tree size, a page of them."""

    model_config = examples(
        {
            "tree_size": 42,
            "accounts": [{"account": ALICE.did, "balances": {"CITY": 12_500_000}}],
            "next_after": None,
        }
    )
    tree_size: int
    accounts: list[AccountBalances]
    next_after: str | None = Field(description="`after` of the next page; null when there is no more.")


class CurrencyTotal(BaseModel):
    held: int = Field(description="What the accounts with a positive balance hold together, micro-units.")
    accounts: int = Field(description="How many they are.")


class Totals(BaseModel):
    """Per currency, as of a tree size, what the accounts holding it hold together (no account named)."""

    model_config = examples(
        {"tree_size": 42, "totals": {"CITY": {"held": 1_000_000_000_000, "accounts": 318}}}
    )
    tree_size: int
    totals: dict[str, CurrencyTotal]


DISCLOSURE = {
    "tx_id": example_id("reward"),
    "salt": "q83vEjRWeJq83vEjRWeJqw",
    "envelope": '{"readings":[...]}',
    "attestation": {"signer": example_key("ingest").did, "sig": "..."},
}


class Disclosure(BaseModel):
    """A reward's evidence, which its public record commits to; only `tx_id` and `erased_at` once erased."""

    model_config = examples(DISCLOSURE, {"tx_id": example_id("reward"), "erased_at": TIME})
    tx_id: str
    salt: str | None = Field(None, description="16 bytes, base64url.")
    envelope: str | None = Field(
        None, description="The readings envelope ingest attested, its exact JCS text."
    )
    attestation: dict[str, Any] | None = Field(
        None, description="Ingest's attestation of the envelope's bytes."
    )
    erased_at: str | None = Field(None, description="When the wallet's holder had it erased.")


class LeafDisclosure(Disclosure):
    model_config = examples({"leaf_index": 40, **DISCLOSURE})
    leaf_index: int


class Disclosures(BaseModel):
    """The evidence of the rewards among a range of leaves, in leaf order."""

    model_config = examples({"disclosures": [{"leaf_index": 40, **DISCLOSURE}], "next_start": None})
    disclosures: list[LeafDisclosure]
    next_start: int | None = Field(description="Where to ask again; null when the range is done.")


MEMO = {
    "tx_id": TX_ID,
    "memo_digest": "m2tPqXzs0Fq6bN7l9cQ4J6Zb0e0h0S5iXo3x1W8aV2c",
    "memo_disclosure": "WyJxODN2RWpSV2VKcTgzdkVqUldlSnF3IiwibWVtbyIsImx1bmNoIl0",
    "memo": "lunch",
}


class Memo(BaseModel):
    """A transfer's or command's memo: the disclosure opening its public memo_digest, and its text; only `tx_id`
    and `erased_at` once erased."""

    model_config = examples(MEMO, {"tx_id": TX_ID, "erased_at": TIME})
    tx_id: str
    memo_digest: str | None = None
    memo_disclosure: str | None = None
    memo: str | None = None
    erased_at: str | None = None


class LeafMemo(Memo):
    model_config = examples({"leaf_index": 41, **MEMO})
    leaf_index: int


class Memos(BaseModel):
    """The memos of the transactions among a range of leaves, in leaf order."""

    model_config = examples({"memos": [{"leaf_index": 41, **MEMO}], "next_start": None})
    memos: list[LeafMemo]
    next_start: int | None = Field(description="Where to ask again; null when the range is done.")


class Erasure(BaseModel):
    """What the ledger erased for a person's request."""

    model_config = examples(
        {
            "request_id": example_id("erasure")[:32],
            "did": ALICE.did,
            "disclosures": 12,
            "memos": 3,
            "erased_at": TIME,
        }
    )
    request_id: str
    did: str
    disclosures: int = Field(description="Rewards' evidence erased.")
    memos: int = Field(description="Memos erased.")
    erased_at: str
    aid_holder: str | None = Field(None, description="The person's AID holder key, whose memos went too.")


EXAMPLE_REQUESTS = {
    "transfer": TRANSFER,
    "command": ISSUER.sign(
        {
            "command": "mint",
            "issuer": ISSUER.did,
            "nonce": 3,
            "to": ALICE.did,
            "currency": "CREDIT",
            "amount": 10**7,
        }
    ),
    "authority": ROOT.sign(
        {"command": "grant-role", "root": ROOT.did, "nonce": 2, "role": "issuer", "key": ISSUER.did}
    ),
    "policy": example_key("publisher").sign(
        {"publisher": example_key("publisher").did, "document": POLICY.document}
    ),
    "anchor": example_key("identity").sign(
        {
            "anchorer": example_key("identity").did,
            "kind": "consent-receipts",
            "root": example_id("receipts root"),
            "size": 128,
            "issued_at": TIME,
        }
    ),
}
