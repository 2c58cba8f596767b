"""The ledger (port 8103): the chain, its proofs, payments, and a wallet's own books by signed read; and the
calls of keys holding a role on the chain: the root's authority commands, a policy publisher's policies, the
consent anchorer's anchors, an auditor's reads of every account, evidence and memo.

Idempotent, so retried when no answer came (`smartcity_sdk.http`): every GET, and every POST: a transfer, an
issuer command and an authority command are keyed by their signer and nonce (the same object again is the same
transaction, answered with its original receipt; a lost answer is recovered so, never paid twice), a policy by
its document's hash, an anchor by its signed bytes, an erasure by its request's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from smartcity_sdk.errors import ProblemError
from smartcity_sdk.http import ServiceClient, json_object, operation
from smartcity_sdk.memos import commit_memo, sign_with_memo
from smartcity_sdk.proofs import verify_checkpoint, verify_included
from smartcity_sdk.signed_reads import SignedReadAuth
from smartcity_sdk.signing import Keypair
from smartcity_sdk.timestamps import now_rfc3339
from smartcity_sdk.types import (
    Account,
    AccountTransactions,
    Authority,
    Balances,
    Block,
    Checkpoint,
    Circulation,
    ConsistencyProof,
    Disclosure,
    Disclosures,
    InclusionProof,
    LedgerErasure,
    Memo,
    Memos,
    Nonce,
    PolicyReceipt,
    Receipt,
    TopAccounts,
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


def sign_authority_command(
    root: Keypair,
    command: str,
    nonce: int,
    *,
    role: str | None = None,
    key: str | None = None,
    new_root: str | None = None,
    memo: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /v1/authority/commands``, signed by `root` (the root key in force): ``grant-role`` or
    ``revoke-role`` of `role` to or from `key`, or ``rotate-root`` to `new_root`
    (``schemas/authority-commands.v1.json``). Its `memo`, if any, is public: it goes on the chain as written."""
    body = json_object(
        command=command, root=root.did, nonce=nonce, role=role, key=key, new_root=new_root, memo=memo
    )
    return root.sign(body)


def sign_policy_publication(publisher: Keypair, document: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``POST /v1/policies``: a reward policy document (``schemas/policy.v1.json``) signed by
    `publisher`."""
    return publisher.sign({"publisher": publisher.did, "document": dict(document)})


def sign_anchor(
    anchorer: Keypair, *, kind: str, root: str, size: int, issued_at: str | None = None
) -> dict[str, Any]:
    """The body of ``POST /v1/anchors``: the Merkle `root` (hex) of a batch of `size` signed records of `kind`
    (``consent-receipts``), signed by `anchorer` (``schemas/anchors.v1.json``), at `issued_at` (RFC 3339 UTC,
    default now: the time of the batch's last record)."""
    anchor = {"anchorer": anchorer.did, "kind": kind, "root": root, "size": size}
    return anchorer.sign({**anchor, "issued_at": issued_at or now_rfc3339()})


def _wallet_path(wallet: str) -> str:
    return f"/v1/accounts/{quote(wallet, safe=':')}"


class LedgerClient(ServiceClient):
    """A client of the ledger (``LedgerClient("http://127.0.0.1:8103")``)."""

    # ---------------------------------------------------------------------------------------------------------
    # The public chain

    @operation("GET", "/v1/checkpoint")
    def checkpoint(self) -> Checkpoint:
        """The latest signed block header (`smartcity_sdk.proofs.verify_checkpoint`)."""
        return self.call("GET", "/v1/checkpoint", idempotent=True).json()

    @operation("GET", "/v1/blocks/{height}")
    def block(self, height: int) -> Block:
        """A block's signed header and its transactions' ids in leaf order."""
        return self.call("GET", f"/v1/blocks/{height}", idempotent=True).json()

    @operation("GET", "/v1/transactions/{tx_id}")
    def transaction_bytes(self, tx_id: str) -> bytes:
        """A transaction record's exact bytes: its Merkle leaf, what an inclusion proof is checked on."""
        return self.call("GET", f"/v1/transactions/{tx_id}", idempotent=True).content

    @operation("GET", "/v1/transactions/{tx_id}")
    def transaction(self, tx_id: str) -> dict[str, Any]:
        """A transaction record (the public chain's: a memo as its digest, a reward's evidence committed)."""
        return self.call("GET", f"/v1/transactions/{tx_id}", idempotent=True).json()

    @operation("GET", "/v1/transactions/{tx_id}/proof")
    def proof(self, tx_id: str, tree_size: int | None = None) -> InclusionProof:
        """The inclusion proof of a sealed transaction in the tree of `tree_size` leaves (default: the latest
        checkpoint's); a 404 `ProblemError` while it is not sealed yet."""
        params = {"tree_size": tree_size}
        return self.call("GET", f"/v1/transactions/{tx_id}/proof", idempotent=True, params=params).json()

    @operation("GET", "/v1/consistency")
    def consistency(self, first: int, second: int) -> ConsistencyProof:
        """The consistency proof between two tree sizes (`smartcity_sdk.proofs.verify_extends`)."""
        params = {"first": first, "second": second}
        return self.call("GET", "/v1/consistency", idempotent=True, params=params).json()

    @operation("GET", "/v1/totals")
    def totals(self, tree_size: int | None = None) -> Totals:
        """Per currency, what the accounts with a positive balance hold together and how many they are, as of
        the first `tree_size` leaves (default: the latest checkpoint's)."""
        if tree_size is None:
            tree_size = self.checkpoint()["tree_size"]
        return self.call("GET", "/v1/totals", idempotent=True, params={"tree_size": tree_size}).json()

    @operation("GET", "/v1/leaves")
    def leaves(self, start: int, end: int) -> list[bytes]:
        """The records of the leaves ``start <= i < end`` in order (at most 1,000 per call), each its exact JCS
        bytes: `smartcity_sdk.merkle.leaf_hash` of one is its leaf hash. For a replay of the chain (an
        auditor's, but the chain is public)."""
        answer = self.call("GET", "/v1/leaves", idempotent=True, params={"start": start, "end": end})
        return answer.content.splitlines()

    @operation("GET", "/v1/circulation")
    def circulation(self, months: int = 12) -> Circulation:
        """Per month, oldest first, the CITY rewards paid, the CITY transferred and the part of it spent at
        local merchants (public: aggregates of the sealed chain, no wallet named)."""
        return self.call("GET", "/v1/circulation", idempotent=True, params={"months": months}).json()

    @operation("GET", "/v1/policies/{policy_hash}")
    def policy(self, policy_hash: str) -> dict[str, Any]:
        """A reward policy on the chain, by its hash: the document (``schemas/policy.v1.json``)."""
        return self.call("GET", f"/v1/policies/{policy_hash}", idempotent=True).json()

    @operation("GET", "/v1/authority")
    def authority(self) -> Authority:
        """The root key and every role's holders in force (the fold of the chain's authority records)."""
        return self.call("GET", "/v1/authority", idempotent=True).json()

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

    @operation("POST", "/v1/transfers")
    def submit_transfer(self, body: Mapping[str, Any]) -> Receipt:
        """Send a signed transfer (`sign_transfer`): the receipt, 201 the first time and the same again after."""
        return self.call("POST", "/v1/transfers", idempotent=True, json=dict(body)).json()

    @operation("POST", "/v1/issuer/commands")
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

    @operation("GET", "/v1/accounts/{wallet}")
    def account(self, wallet: str, reader: Keypair) -> Account:
        """The wallet's balances, in micro-units per currency."""
        return self.call("GET", _wallet_path(wallet), idempotent=True, auth=SignedReadAuth(reader)).json()

    @operation("GET", "/v1/accounts/{wallet}/transactions")
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

    @operation("GET", "/v1/accounts/{wallet}/nonce")
    def next_nonce(self, wallet: str, reader: Keypair) -> Nonce:
        """The last nonce the ledger accepted from `wallet` and the next one to sign with (1 at first)."""
        path = f"{_wallet_path(wallet)}/nonce"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    @operation("GET", "/v1/transactions/{tx_id}/memo")
    def memo(self, tx_id: str, reader: Keypair) -> Memo:
        """The memo of a transfer or command, for a party to it (or an auditor); a 404 if it has none."""
        path = f"/v1/transactions/{tx_id}/memo"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    @operation("GET", "/v1/transactions/{tx_id}/disclosure")
    def disclosure(self, tx_id: str, reader: Keypair) -> Disclosure:
        """A reward's evidence (the reading it paid for), for the wallet it paid (or an auditor)."""
        path = f"/v1/transactions/{tx_id}/disclosure"
        return self.call("GET", path, idempotent=True, auth=SignedReadAuth(reader)).json()

    @operation("POST", "/v1/erasures")
    def erase(self, request: Mapping[str, Any]) -> LedgerErasure:
        """Erase at the ledger the evidence and memos of a person's payments, on their erasure request as they
        signed it (`IdentityClient.erase` answers it as ``request``): identity forwards it to the ledger itself
        and retries until done; sending it again here is harmless (the same request is answered the same)."""
        return self.call("POST", "/v1/erasures", idempotent=True, json=dict(request)).json()

    # ---------------------------------------------------------------------------------------------------------
    # An auditor's signed reads: `reader` must hold the auditor role on the chain (else a 403 read-forbidden)

    @operation("GET", "/v1/accounts")
    def top_accounts(self, reader: Keypair, *, currency: str = CITY, limit: int = 10) -> TopAccounts:
        """The wallets holding the most of `currency`, the most first. Auditor role only."""
        params = {"currency": currency, "limit": limit}
        return self.call(
            "GET", "/v1/accounts", idempotent=True, params=params, auth=SignedReadAuth(reader)
        ).json()

    @operation("GET", "/v1/balances")
    def balances(
        self, reader: Keypair, tree_size: int, *, after: str | None = None, limit: int | None = None
    ) -> Balances:
        """Every account's balances as of the first `tree_size` leaves, a page at a time (``after=next_after``
        for the next). Auditor role only."""
        params = {"tree_size": tree_size, "after": after, "limit": limit}
        return self.call(
            "GET", "/v1/balances", idempotent=True, params=params, auth=SignedReadAuth(reader)
        ).json()

    @operation("GET", "/v1/disclosures")
    def disclosures(self, reader: Keypair, start: int, end: int) -> Disclosures:
        """The evidence of the rewards among the leaves ``start <= i < end``, in leaf order; ask again from
        ``next_start`` until it is None. Auditor role only."""
        params = {"start": start, "end": end}
        return self.call(
            "GET", "/v1/disclosures", idempotent=True, params=params, auth=SignedReadAuth(reader)
        ).json()

    @operation("GET", "/v1/memos")
    def memos(self, reader: Keypair, start: int, end: int) -> Memos:
        """The memos of the transactions among the leaves ``start <= i < end``, in leaf order; ask again from
        ``next_start`` until it is None. Auditor role only."""
        params = {"start": start, "end": end}
        return self.call(
            "GET", "/v1/memos", idempotent=True, params=params, auth=SignedReadAuth(reader)
        ).json()

    # ---------------------------------------------------------------------------------------------------------
    # Keys holding a role on the chain

    @operation("POST", "/v1/authority/commands")
    def authority_command(
        self,
        root: Keypair,
        command: str,
        *,
        role: str | None = None,
        key: str | None = None,
        new_root: str | None = None,
        memo: str | None = None,
        nonce: int | None = None,
    ) -> Receipt:
        """A command of the city's root key (`sign_authority_command`): ``grant-role`` / ``revoke-role`` of
        `role` (``issuer``, ``auditor``, ``caseworker``, ...) for `key`, or ``rotate-root`` to `new_root`. Root
        key only (the one in force: ``authority()["root"]``). Without `nonce`, the root's next one is read
        from the ledger first."""
        if nonce is None:
            nonce = self.next_nonce(root.did, root)["next_nonce"]
        body = sign_authority_command(root, command, nonce, role=role, key=key, new_root=new_root, memo=memo)
        return self.call("POST", "/v1/authority/commands", idempotent=True, json=body).json()

    def grant_role(self, root: Keypair, role: str, key: str, **options: Any) -> Receipt:
        """Grant `role` to `key` (`authority_command`). Root key only."""
        return self.authority_command(root, "grant-role", role=role, key=key, **options)

    def revoke_role(self, root: Keypair, role: str, key: str, **options: Any) -> Receipt:
        """Revoke `role` from `key`: its signatures on records sealed after this one no longer count. Root key
        only."""
        return self.authority_command(root, "revoke-role", role=role, key=key, **options)

    @operation("POST", "/v1/policies")
    def publish_policy(self, publisher: Keypair, document: Mapping[str, Any]) -> PolicyReceipt:
        """Put a reward policy document on the chain, signed by `publisher`; the receipt names its hash and
        version (the same document again is answered with its original receipt). Policy-publisher role
        only."""
        body = sign_policy_publication(publisher, document)
        return self.call("POST", "/v1/policies", idempotent=True, json=body).json()

    @operation("POST", "/v1/anchors")
    def anchor(
        self, anchorer: Keypair, *, kind: str, root: str, size: int, issued_at: str | None = None
    ) -> Receipt:
        """Anchor the Merkle root of a batch of signed records on the chain (`sign_anchor`): for ``kind``
        ``consent-receipts``, identity's batches of consent receipts. Consent-anchor role only (identity's
        city key)."""
        body = sign_anchor(anchorer, kind=kind, root=root, size=size, issued_at=issued_at)
        return self.call("POST", "/v1/anchors", idempotent=True, json=body).json()
