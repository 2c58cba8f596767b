"""Memos on the real broker and PostgreSQL (privacy issue 14): the chain holds only a memo's salted digest, the
disclosure beside the signed object is checked against it and kept off the chain for the parties and auditors,
every malformed pairing is refused without harming a good transfer beside it, and an erasure empties the memo
while the chain still verifies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.common import memos
from services.common.events import now_rfc3339
from services.common.http import PROBLEM_BASE
from services.common.sdjwt import digest, make_disclosure
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.ledger.replay import Discrepancy
from services.ledger.verifier import verify_ledger
from tests.integration.test_ledger_transfers import Issuer, balance, command, ledgers
from tests.support.asgi import assert_problem
from tests.support.factories import AS_AUDITOR, AUDITOR, signed_transfer, with_memo
from tests.support.waiting import until

pytestmark = pytest.mark.integration

RENT = "rent for March 🏠, thanks!"


def refused(response: httpx.Response, kind: str) -> None:
    assert assert_problem(response, 422)["type"] == PROBLEM_BASE + kind, response.text


async def memo_of(client: httpx.AsyncClient, tx_id: str, reader: Keypair | None) -> httpx.Response:
    auth = None if reader is None else SignedReadAuth(reader)
    return await client.get(f"/v1/transactions/{tx_id}/memo", auth=auth)


async def test_a_memo_is_a_digest_on_the_chain_read_by_its_parties_and_erased_with_them(
    platform_settings: PlatformSettings,
) -> None:
    issuer = Issuer()
    alice, bob, carol = (Keypair.generate() for _ in range(3))
    async with ledgers(platform_settings, issuer) as ([client], ledger_key):
        store = client._transport.app.state.store  # type: ignore[attr-defined]

        async def memo_rows(tx_id: str) -> list[Any]:
            async with store.connection() as conn:
                return await conn.fetch("SELECT * FROM memos WHERE tx_id = $1", tx_id)

        # An issuer command with a memo: the issuer and the wallet it names are its parties.
        issuer.nonce += 1
        mint = {"command": "mint", "issuer": issuer.key.did, "nonce": issuer.nonce, "to": alice.did}
        mint = with_memo(issuer.key, {**mint, "currency": "CITY", "amount": 1000}, "opening balance")
        minted = (await command(client, mint))["tx_id"]

        # A transfer with a memo settles; its retry gets the original receipt and keeps one memo.
        paid = signed_transfer(alice, bob.did, 100, 1, memo=RENT)
        created = await client.post("/v1/transfers", json=paid)
        assert created.status_code == 201, created.text
        tx_id = created.json()["tx_id"]
        again = await client.post("/v1/transfers", json=paid)
        assert again.status_code == 200 and again.json()["tx_id"] == tx_id
        assert len(await memo_rows(tx_id)) == 1
        assert await balance(client, bob.did) == 100

        # The public record: the signed transfer with memo_digest, no text, no disclosure.
        public = await client.get(f"/v1/transactions/{tx_id}")
        record = public.json()["transfer"]
        assert record["memo_digest"] == paid["memo_digest"]
        assert "memo" not in record and "memo_disclosure" not in record
        assert b"rent" not in public.content and paid["memo_disclosure"].encode() not in public.content
        assert "memo" not in (await client.get(f"/v1/transactions/{minted}")).json()["command"]

        # The memo by signed read: the sender, the recipient and an auditor; not a stranger, not anonymously.
        for reader in (bob, alice, AUDITOR):
            read = await memo_of(client, tx_id, reader)
            assert read.status_code == 200, read.text
            assert read.json() == {
                "tx_id": tx_id,
                "memo_digest": paid["memo_digest"],
                "memo_disclosure": paid["memo_disclosure"],
                "memo": RENT,
            }
        assert "read-forbidden" in assert_problem(await memo_of(client, tx_id, carol), 403)["type"]
        assert_problem(await memo_of(client, tx_id, None), 401)
        assert (await memo_of(client, minted, alice)).json()["memo"] == "opening balance"
        assert (await memo_of(client, minted, issuer.key)).status_code == 200
        assert_problem(await memo_of(client, minted, bob), 403)
        no_memo = await client.post("/v1/transfers", json=signed_transfer(alice, bob.did, 1, 2))
        assert no_memo.status_code == 201, no_memo.text
        assert_problem(await memo_of(client, no_memo.json()["tx_id"], alice), 404)

        # Refused, each with its reason, and nothing settled: a disclosure changed in one character, another
        # memo's disclosure, a disclosure that hashes but is no memo's, a plaintext memo, a digest without its
        # disclosure and a disclosure without a digest; for a command too.
        transfer = {"from": alice.did, "to": bob.did, "amount": 10, "currency": "CITY", "nonce": 3}
        good = with_memo(alice, transfer, "groceries")
        disclosure = good["memo_disclosure"]
        flipped = disclosure[:5] + ("A" if disclosure[5] != "A" else "B") + disclosure[6:]
        refused(
            await client.post("/v1/transfers", json={**good, "memo_disclosure": flipped}),
            memos.MISMATCH,
        )
        other = memos.commit_memo("groceries").disclosure
        refused(await client.post("/v1/transfers", json={**good, "memo_disclosure": other}), memos.MISMATCH)
        note = make_disclosure("note", "groceries")
        no_memo_claim = {**alice.sign({**transfer, "memo_digest": digest(note)}), "memo_disclosure": note}
        refused(await client.post("/v1/transfers", json=no_memo_claim), memos.MALFORMED)
        plaintext = alice.sign({**transfer, "memo": "groceries"})
        refused(await client.post("/v1/transfers", json=plaintext), memos.PLAINTEXT)
        refused(
            await client.post("/v1/transfers", json={**plaintext, "memo_disclosure": disclosure}),
            memos.PLAINTEXT,
        )
        without = {k: v for k, v in good.items() if k != "memo_disclosure"}
        refused(await client.post("/v1/transfers", json=without), memos.DISCLOSURE_MISSING)
        bare = alice.sign(transfer)
        refused(
            await client.post("/v1/transfers", json={**bare, "memo_disclosure": disclosure}),
            memos.DIGEST_MISSING,
        )
        issuer.nonce += 1
        freeze = {"command": "freeze", "issuer": issuer.key.did, "nonce": issuer.nonce, "account": carol.did}
        in_clear = issuer.key.sign({**freeze, "memo": "suspicious"})
        refused(await client.post("/v1/issuer/commands", json=in_clear), memos.PLAINTEXT)
        assert await balance(client, bob.did) == 101
        # ... and the good transfer beside them settles, its nonce unspent by the refusals.
        settled = await client.post("/v1/transfers", json=good)
        assert settled.status_code == 201, settled.text
        assert (await memo_of(client, settled.json()["tx_id"], bob)).json()["memo"] == "groceries"
        assert await balance(client, bob.did) == 111

        # A freeze with a memo: the account it names reads it.
        frozen = (await command(client, with_memo(issuer.key, freeze, "checking a report")))["tx_id"]
        assert (await memo_of(client, frozen, carol)).json()["memo"] == "checking a report"

        # Alice's erasure: the memos she is a party to are emptied, others' kept; the chain still verifies.
        erasure = alice.sign({"did": alice.did, "action": "erase", "issued_at": now_rfc3339()})
        answer = await client.post("/v1/erasures", json=erasure)
        assert answer.status_code == 201, answer.text
        assert answer.json()["memos"] == 3  # the mint to her and her two transfers with a memo
        for reader in (bob, alice, AUDITOR):
            gone = (await memo_of(client, tx_id, reader)).json()
            assert set(gone) == {"tx_id", "erased_at"}, gone
        assert [r["disclosure"] for r in await memo_rows(tx_id)] == [None]
        assert "memo" not in (await memo_of(client, minted, issuer.key)).json()
        assert (await memo_of(client, frozen, carol)).json()["memo"] == "checking a report"
        # A retry of the erased transfer gets its receipt and brings nothing back.
        assert (await client.post("/v1/transfers", json=paid)).status_code == 200
        assert "memo" not in (await memo_of(client, tx_id, bob)).json()
        # The erasure holds for what Alice is a party to afterwards: a memo to her is stored erased.
        later = await client.post("/v1/transfers", json=signed_transfer(bob, alice.did, 1, 1, memo="thanks"))
        assert later.status_code == 201, later.text
        assert set((await memo_of(client, later.json()["tx_id"], bob)).json()) == {"tx_id", "erased_at"}
        assert [r["disclosure"] for r in await memo_rows(later.json()["tx_id"])] == [None]

        async def all_sealed() -> bool:
            async with store.connection() as conn:
                return await conn.fetchval("SELECT count(*) FROM pending") == 0

        await until(all_sealed, "everything to be sealed")
        await verify_ledger(client, ledger_key, replay=True)
        report = await verify_ledger(client, ledger_key, replay=True, auditor=AUDITOR)
        assert report.transactions_checked == report.tree_size
        ranged = await client.get("/v1/memos", params={"start": 0, "end": report.tree_size}, auth=AS_AUDITOR)
        assert len(ranged.json()["memos"]) == 5  # the mint, three transfers and the freeze
        assert_problem(
            await client.get("/v1/memos", params={"start": 0, "end": 1}, auth=SignedReadAuth(bob)), 403
        )

        # A memo changed behind the ledger's back: the public replay cannot tell, an auditor's names it.
        async with store.connection() as conn:
            await conn.execute(
                "UPDATE memos SET disclosure = $2 WHERE tx_id = $1",
                frozen,
                memos.commit_memo("cash").disclosure,
            )
        await verify_ledger(client, ledger_key, replay=True)
        with pytest.raises(Discrepancy, match=f"transaction {frozen}.*memo_digest"):
            await verify_ledger(client, ledger_key, replay=True, auditor=AUDITOR)
