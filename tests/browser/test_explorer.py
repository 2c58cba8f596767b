"""The explorer verifies a real transaction's inclusion proof in the browser, against the signed checkpoint,
and names the failure when the proof, the record or the checkpoint was tampered with on the way."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from bench._running import RunningPlatform
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.e2e

WAIT_MS = 20_000


def sealed_reward(platform: RunningPlatform) -> str:
    """The id of a reward the simulator earned, once sealed into a block."""
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=platform.url("ledger"), timeout=10) as ledger:
        while time.monotonic() < deadline:
            checkpoint = ledger.get("/v1/checkpoint")
            if checkpoint.status_code == 200:
                for height in range(checkpoint.json()["height"], -1, -1):
                    for tx_id in ledger.get(f"/v1/blocks/{height}").json()["tx_ids"]:
                        if ledger.get(f"/v1/transactions/{tx_id}").json()["type"] == "reward":
                            return tx_id
            time.sleep(1)
    raise AssertionError("no reward was sealed")


def tamper(page: Page, pattern: str, change) -> None:
    """Serve the page the answers to `pattern` changed by `change` (as an attacker on the path could)."""

    def handle(route: Route) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, body=json.dumps(change(answer.json())))

    page.route(pattern, handle)


def test_a_real_transaction_verifies_and_a_tampered_proof_record_or_checkpoint_fails(
    platform: RunningPlatform, page: Page
) -> None:
    tx_id = sealed_reward(platform)
    page.goto(f"{platform.url('portal')}/explorer.html")
    expect(page.locator("#checkpoint-status")).to_contain_text("Signature verified", timeout=WAIT_MS)
    expect(page.locator("#blocks tbody tr").first).to_be_visible()

    page.get_by_label("Transaction id").fill(tx_id)
    page.get_by_role("button", name="Verify").click()
    status = page.locator("#tx-status")
    expect(status).to_contain_text("verified: transaction", timeout=WAIT_MS)
    expect(status).to_have_class("status good")
    screenshot(page, "explorer")

    def flip(hex_text: str) -> str:
        return ("0" if hex_text[0] != "0" else "1") + hex_text[1:]

    # A proof with one sibling changed leads to another root.
    tamper(
        page,
        "**/proof?*",
        lambda proof: {**proof, "audit_path": [flip(proof["audit_path"][0]), *proof["audit_path"][1:]]},
    )
    page.get_by_role("button", name="Verify").click()
    expect(status).to_contain_text("not verified: the proof leads to root", timeout=WAIT_MS)
    expect(status).to_have_class("status bad")
    page.unroute("**/proof?*")

    # A record changed in transit (the amount raised) no longer hashes to its leaf.
    tamper(
        page,
        f"**/v1/transactions/{tx_id}",
        lambda record: {**record, "reward": {**record["reward"], "amount": record["reward"]["amount"] + 1}},
    )
    page.get_by_role("button", name="Verify").click()
    expect(status).to_contain_text("not verified: the record hashes to leaf", timeout=WAIT_MS)
    page.unroute(f"**/v1/transactions/{tx_id}")

    # A checkpoint whose root was swapped no longer carries the ledger's signature.
    tamper(
        page,
        "**/v1/checkpoint",
        lambda checkpoint: {**checkpoint, "root_hash": flip(checkpoint["root_hash"])},
    )
    page.get_by_role("button", name="Verify").click()
    expect(status).to_contain_text(
        "not verified: the checkpoint's signature does not verify", timeout=WAIT_MS
    )
    page.unroute("**/v1/checkpoint")

    # And with nothing tampered, it verifies again; two checkpoints are consistent.
    page.get_by_role("button", name="Verify").click()
    expect(status).to_contain_text("verified: transaction", timeout=WAIT_MS)
    page.get_by_role("button", name="Check consistency").click()
    expect(page.locator("#consistency-status")).to_contain_text("consistent: the", timeout=WAIT_MS)
