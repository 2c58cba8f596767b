"""The ledger (port 8103): the chain, its proofs, payments, and a wallet's own books by signed read.

Idempotent, so retried when no answer came (`smartcity_sdk.http`): every GET, and `transfer` and
`issuer_command`, whose signed object the ledger keys by its signer and nonce (the same object again is the same
transaction, answered with its original receipt; a lost answer is recovered so, never paid twice).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from smartcity_sdk.errors import ProblemError
from smartcity_sdk.http import ServiceClient
from smartcity_sdk.memos import commit_memo, sign_with_memo
from smartcity_sdk.proofs import verify_checkpoint, verify_included
from smartcity_sdk.signed_reads import SignedReadAuth
from smartcity_sdk.signing import Keypair
from smartcity_sdk.types import (
    Account,
    AccountTransactions,
    Block,
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    Memo,
    Nonce,
    Receipt,
    Totals,
    VerifiedTransaction,
)

CITY, AID, CREDIT = "CITY", "AID", "CREDIT"
MICRO = 1_000_000
"""Micro-units of one token: amounts are integers of micro-units, never floats."""
SEALED_POLL_S = 0.25
"""How often `LedgerClient.verified_transaction` asks again while a transaction waits to be sealed."""
UNSEALED = frozenset({"not-found", "out-of-range"})
"""The proof's refusals while the transaction (known to exist) is not in the latest checkpoint's tree yet."""


def sign_transfer(
    sender: Keypair, to: str, amount: int, currency: str, nonce: int, memo: str | None = None
) -> dict[str, Any]:
    """The body of ``POST /v1/transfers``: a transfer signed by `sender`, its memo (if any) committed to by a
    signed digest with its disclosure beside it (`smartcity_sdk.memos`)."""
    transfer = {"from": sender.did, "to": to, "amount": amount, "currency": currency, "nonce": nonce}
    return sign_with_memo(sender, transfer, None if memo is None else commit_memo(memo))


def sign_issuer_command(
    issuer: Keypair, command: str, nonce: int, memo: str | None = None, **args: Any
) -> dict[str, Any]:
    """The body of ``POST /v1/issuer/commands``: `command` (``mint``, ``fund``, ``grant``, ``revoke``,
    ``freeze``, ``unfreeze``) with its `args` (``schemas/issuer-commands.v1.json``), signed by `issuer`."""
    body = {"command": command, "issuer": issuer.did, "nonce": nonce, **args}
    return sign_with_memo(issuer, body, None if memo is None else commit_memo(memo))


def _wallet_path(wallet: str) -> str:
    return f"/v1/accounts/{quote(wallet, safe=':')}"


class LedgerClient(ServiceClient):
    """A client of the ledger (``LedgerClient("http://127.0.0.1:8103")``)."""

    # ---------------------------------------------------------------------------------------------------------
    # The public chain

    def checkpoint(self) -> Checkpoint:
        """The latest signed block header (`smartcity_sdk.proofs.verify_checkpoint`)."""
        return self.call("GET", "/v1/checkpoint", idempotent=True).json()

    def block(self, height: int) -> Block:
        """A block's signed header and its transactions' ids in leaf order."""
        return self.call("GET", f"/v1/blocks/{height}", idempotent=True).json()

    def transaction_bytes(self, tx_id: str) -> bytes:
        """A transaction record's exact bytes: its Merkle leaf, what an inclusion proof is checked on."""
        return self.call("GET", f"/v1/transactions/{tx_id}", idempotent=True).content

    def transaction(self, tx_id: str) -> dict[str, Any]:
        """A transaction record (the public chain's: a memo as its digest, a reward's evidence committed)."""
        return self.call("GET", f"/v1/transactions/{tx_id}", idempotent=True).json()

    def proof(self, tx_id: str, tree_size: int | None = None) -> InclusionProof:
        """The inclusion proof of a sealed transaction in the tree of `tree_size` leaves (default: the latest
        checkpoint's); a 404 `ProblemError` while it is not sealed yet."""
        params = {"tree_size": tree_size}
        return self.call("GET", f"/v1/transactions/{tx_id}/proof", idempotent=True, params=params).json()

    def consistency(self, first: int, second: int) -> ConsistencyProof:
        """The consistency proof between two tree sizes (`smartcity_sdk.proofs.verify_extends`)."""
        params = {"first": first, "second": second}
        return self.call("GET", "/v1/consistency", idempotent=True, params=params).json()

    def totals(self, tree_size: int | None = None) -> Totals:
        """Per currency, what the accounts with a positive balance hold together and how many they are."""
        return self.call("GET", "/v1/totals", idempotent=True, params={"tree_size": tree_size}).json()

    def verified_transaction(
        self, tx_id: str, ledger_key: str, *, wait_s: float = 30.0
    ) -> VerifiedTransaction:
        """A transaction checked with nothing but `ledger_key` (the ledger's did:key, known apart from its
        answers): the latest checkpoint is signed by that key, and the record is in the tree it signs. A
        transaction settles at once and is sealed into a block soon after (``LEDGER_SEAL_INTERVAL_MS``): this
        waits up to `wait_s` for that. Raises `smartcity_sdk.proofs.VerificationError` if anything does not
        hold, `ProblemError` if the ledger refuses (a 404 for an unknown one, or one still not sealed then)."""
        record = self.transaction_bytes(tx_id)
        deadline = time.monotonic() + wait_s
        while True:
            checkpoint = self.checkpoint()
            try:
                proof = self.proof(tx_id, checkpoint["tree_size"])
                break
            except ProblemError as exc:
                # The record exists: "not-found" is a proof not sealed yet, "out-of-range" a block sealed
                # between the two reads. Both pass with time.
                if exc.kind not in UNSEALED or time.monotonic() >= deadline:
                    raise
            time.sleep(SEALED_POLL_S)
        verify_checkpoint(checkpoint, ledger_key)
        verify_included(record, proof, checkpoint)
        return {"record": json.loads(record), "checkpoint": checkpoint, "proof": proof}

    # ---------------------------------------------------------------------------------------------------------
    # Payments

    def transfer(
        self,
        sender: Keypair,
        to: str,
        amount: int,
        currency: str = CITY,
        *,
        memo: str | None = None,
        nonce: int | None = None,
    ) -> Receipt:
        """Pay `amount` micro-units of `currency` from `sender`'s wallet to `to`, with an optional `memo` (at
        most 280 characters, kept off the public chain for the two parties). Without `nonce`, the sender's next
        one is read from the ledger first (`next_nonce`): give it when payments of one wallet may run at once."""
        if nonce is None:
            nonce = self.next_nonce(sender.did, sender)["next_nonce"]
        return self.submit_transfer(sign_transfer(sender, to, amount, currency, nonce, memo))

    def submit_transfer(self, body: Mapping[str, Any]) -> Receipt:
        """Send a signed transfer (`sign_transfer`): the receipt, 201 the first time and the same again after."""
        return self.call("POST", "/v1/transfers", idempotent=True, json=dict(body)).json()

    def issuer_command(
        self, issuer: Keypair, command: str, *, memo: str | None = None, nonce: int | None = None, **args: Any
    ) -> Receipt:
        """An issuer command signed by `issuer` (a key holding the issuer role on the chain), e.g.
        ``issuer_command(key, "mint", to=wallet, currency="CITY", amount=5 * MICRO)``. Without `nonce`, the
        issuer's next one is read from the ledger first."""
        if nonce is None:
            nonce = self.next_nonce(issuer.did, issuer)["next_nonce"]
        body = sign_issuer_command(issuer, command, nonce, memo, **args)
        return self.call("POST", "/v1/issuer/commands", idempotent=True, json=body).json()

    # ---------------------------------------------------------------------------------------------------------
    # Personal reads: signed by `reader`, the holder (or a key holding a role for it, an auditor)

    def account(self, wallet: str, reader: Keypair) -> Account:
        """The wallet's balances, in micro-units per currency."""
        return self.call("GET", _wallet_path(wallet), idempotent=True, auth=SignedReadAuth(reader)).json()

    def account_transactions(
        self, wallet: str, reader: Keypair, *, limit: int = 100, before: int | None = None
    ) -> AccountTransactions:
        """The wallet's transactions, newest first; pass ``before=next_before`` for the next page."""
        return self.call(
            "GET",
            f"{_wallet_path(wallet)}/transactions",
            idempotent=True,
            params={"limit": limit, "before": before},
            auth=SignedReadAuth(reader),
        ).json()

    def next_nonce(self, wallet: str, reader: Keypair) -> Nonce:
        """The last nonce the ledger accepted from `wallet` and the next one to sign with (1 at first)."""
        path = f"{_wallet_path(wallet)}/nonce"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    def memo(self, tx_id: str, reader: Keypair) -> Memo:
        """The memo of a transfer or command, for a party to it (or an auditor); a 404 if it has none."""
        path = f"/v1/transactions/{tx_id}/memo"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    def disclosure(self, tx_id: str, reader: Keypair) -> dict[str, Any]:
        """A reward's evidence (the reading it paid for), for the wallet it paid (or an auditor)."""
        path = f"/v1/transactions/{tx_id}/disclosure"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()
