"""The wallet page on a real `smartcity up`: a key made and kept in the browser earns, pays and is restored.

The person creates a wallet in the browser; the city issues a resident credential to its did, which the page
presents to bind the wallet; the page switches the environment consent on and registers a device from the
device's own signed registration; the device's readings earn CITY, which the page shows with its decisions and
history; the page pays a local merchant with a memo and the balance drops by exactly the amount; the city grants
AID to the wallet's AID holder key (made with the wallet, apart from it), which the page shows and pays the
merchant from, signed by that key; the backup it downloads opens in Python as documented, and restores the same
did and the same AID holder key in a fresh browser, but not with a wrong passphrase; a backup of the version
before AID holder keys still restores, with a new AID holder key, as does a wallet kept from then.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from playwright.sync_api import Browser, Page, expect

from bench._running import RunningPlatform
from services.common import events, signing
from services.common.bindings import development_order_key
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.ingest.devices import DEVICE_SIG_FIELD
from tests.browser.conftest import CityKeys, screenshot
from tests.support.factories import merchant_registration, merchant_verification
from tests.support.ingest import air_quality_readings
from tests.support.issuer import issue

pytestmark = pytest.mark.e2e

WAIT_MS = 20_000
DEADLINE_S = 60.0
PASSPHRASE = "tram lantern copper meadow"
READINGS = 5
PAID = "0.0013"  # CITY, typed as a person would
PAID_MICRO = 1_300
MEMO = "Two croissants ☕"
AID_GRANTED = 5_000_000  # 5 AID, for groceries (the merchant's category)
AID_PAID = "1.25"
AID_PAID_MICRO = 1_250_000
V1_FIELDS = ("version", "did", "salt", "iterations", "iv", "ciphertext")
AID_AAD = b"smartcity-aid-holder"

# A wallet kept in a browser before wallets had an AID holder key: the page's own record, without its AID key
# and with its backup as version 1 (wallet-vault.js).
FROM_BEFORE_AID_KEYS = """async () => {
    const db = await new Promise((resolve, reject) => {
        const opening = indexedDB.open("smartcity-wallet", 1);
        opening.onsuccess = () => resolve(opening.result);
        opening.onerror = () => reject(opening.error);
    });
    const wallet = await new Promise((resolve) => {
        const reading = db.transaction("wallet").objectStore("wallet").get("current");
        reading.onsuccess = () => resolve(reading.result);
    });
    delete wallet.aid;
    const { aid_iv, aid_ciphertext, ...backup } = wallet.backup;
    wallet.backup = { ...backup, version: 1 };
    await new Promise((resolve, reject) => {
        const writing = db.transaction("wallet", "readwrite");
        writing.objectStore("wallet").put(wallet, "current");
        writing.oncomplete = resolve;
        writing.onerror = () => reject(writing.error);
    });
    db.close();
}"""

T = TypeVar("T")


def until(what: str, attempt: Callable[[], T | None], timeout_s: float = DEADLINE_S) -> T:
    """`attempt()` until it returns something truthy, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (result := attempt()):
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.3)
    return result


def ok(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or (200, 201)), response.text
    return response.json()


def bindings_applied(http: httpx.Client, platform: RunningPlatform) -> float:
    """How many binding records ingest's binding view has applied (its Prometheus counter)."""
    metrics = http.get(f"{platform.url('ingest')}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("smartcity_binding_records_total{") and 'outcome="applied"' in line
    )


def verdicts(http: httpx.Client, platform: RunningPlatform, readings: list[dict[str, Any]]) -> list[str]:
    """Ingest's verdict on each reading: "accepted" or the reason it was rejected (without its detail)."""
    answer = ok(http.post(f"{platform.url('ingest')}/v1/readings", json={"readings": readings}), 202)
    return [r["reason"].split(":")[0] if r["reason"] else r["status"] for r in answer["results"]]


def micro(page: Page, currency: str = "CITY") -> int:
    return int(page.locator(f"#balance-{currency}").get_attribute("data-micro") or "0")


def aid_micro(page: Page) -> int | None:
    """The AID the page shows on the wallet's AID holder key (None until it has read it)."""
    shown = page.locator("#aid-balance").get_attribute("data-micro")
    return None if shown is None else int(shown)


def refreshed(page: Page) -> Page:
    """The page after one click on Refresh, once its signed reads have answered."""
    button = page.get_by_role("button", name="Refresh")
    button.click()
    expect(button).to_be_enabled(timeout=WAIT_MS)
    return page


def open_backup(backup: dict[str, Any], passphrase: str) -> tuple[Keypair, Keypair]:
    """The wallet's key and its AID holder key of a wallet backup (version 2), opened exactly as
    wallet-vault.js documents the format."""
    assert set(backup) == {*V1_FIELDS, "aid_iv", "aid_ciphertext"}
    assert backup["version"] == 2 and backup["iterations"] >= 600_000
    salt = signing.b64url_decode(backup["salt"])
    key = AESGCM(PBKDF2HMAC(hashes.SHA256(), 32, salt, backup["iterations"]).derive(passphrase.encode()))

    def opened(iv: str, ciphertext: str, aad: bytes | None) -> Keypair:
        pkcs8 = key.decrypt(signing.b64url_decode(iv), signing.b64url_decode(ciphertext), aad)
        assert len(pkcs8) == 48  # RFC 8410 PKCS#8 of an Ed25519 key: the seed is its last 32 bytes
        return Keypair.from_seed(pkcs8[-32:])

    wallet = opened(backup["iv"], backup["ciphertext"], None)
    return wallet, opened(backup["aid_iv"], backup["aid_ciphertext"], AID_AAD)


def downloaded_backup(page: Page, directory: Path) -> Path:
    """The backup file the page downloads, saved in `directory`."""
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download backup").click()
    directory.mkdir(parents=True, exist_ok=True)
    saved = directory / downloading.value.suggested_filename
    downloading.value.save_as(saved)
    return saved


def test_a_browser_wallet_binds_consents_registers_a_device_earns_pays_and_is_restored(
    platform: RunningPlatform, city: CityKeys, browser: Browser, page: Page, tmp_path: Path
) -> None:
    identity, ledger, directory = (platform.url(name) for name in ("identity", "ledger", "directory"))
    page.goto(f"{platform.url('portal')}/wallet.html")
    expect(page.locator("#wallet-status")).to_contain_text("No wallet on this device", timeout=WAIT_MS)

    # 1. A wallet made in the browser: its key never leaves it, its backup is encrypted under the passphrase.
    page.get_by_label("Passphrase (at least 12 characters)").fill("too short")
    page.get_by_label("The same passphrase again").fill("too short")
    page.get_by_role("button", name="Create my wallet").click()
    expect(page.locator("#create-status")).to_contain_text("at least 12 characters")
    page.get_by_label("Passphrase (at least 12 characters)").fill(PASSPHRASE)
    page.get_by_label("The same passphrase again").fill(PASSPHRASE)
    page.get_by_role("button", name="Create my wallet").click()
    expect(page.locator("#identity-status")).to_contain_text("Registered with the city", timeout=WAIT_MS)
    did = page.locator("#did").inner_text()
    assert did.startswith("did:key:z6Mk")

    with httpx.Client(timeout=15) as http:
        # 2. The city issues the resident credential to that did; the page presents it, disclosing nothing.
        order_key = development_order_key(platform.data_dir)
        order = order_key.sign(
            {
                "issuer": order_key.did,
                "action": "issue-credential",
                "subject": did,
                "facts": {"given_name": "Ada", "family_name": "Lovelace", "birthdate": "1990-05-17"},
                "issued_at": events.now_rfc3339(),
            }
        )
        credential = ok(http.post(f"{identity}/v1/credentials", json=order), 201)["sd_jwt"]
        applied_before = bindings_applied(http, platform)
        page.get_by_label("Your resident credential").fill(credential)
        page.get_by_role("button", name="Bind this wallet to me").click()
        expect(page.locator("#bind-status")).to_contain_text("This wallet is bound to you", timeout=WAIT_MS)
        expect(page.locator("#binding-state")).to_contain_text("Bound to a person")
        # A reading ingest accepts before it applied the binding would earn nothing (unverified-person).
        until("the binding reached ingest", lambda: bindings_applied(http, platform) > applied_before)

        # 3. The consent the device's readings need, switched on from the keyboard: signed in the browser, with
        # the city's receipt.
        switch = page.get_by_role("switch", name="Environment data")
        expect(switch).not_to_be_checked(timeout=WAIT_MS)
        switch.focus()
        page.keyboard.press("Space")
        expect(switch).to_be_checked()
        expect(page.locator("#consents-status")).to_contain_text("Environment data: allowed", timeout=WAIT_MS)
        expect(
            switch
        ).to_be_focused()  # the keyboard user's place is kept while the change was signed and sent
        expect(page.locator("#consent-environment-receipt")).to_contain_text("signature checked")

        # 4. The device's software signs its part of the registration; the page signs it as owner and posts it.
        device = Keypair.generate()
        device_part = device.sign(
            {"device_id": device.did, "owner": did, "kind": "air_quality", "zone": "old-town"},
            field=DEVICE_SIG_FIELD,
            exclude=(signing.SIG_FIELD,),
        )
        page.get_by_label("The device's signed registration (JSON)").fill(json.dumps(device_part))
        page.get_by_role("button", name="Register this device").click()
        expect(page.locator("#device-status")).to_contain_text(
            "is registered to this wallet", timeout=WAIT_MS
        )
        expect(page.locator("#devices tbody tr")).to_have_count(1, timeout=WAIT_MS)

        # 5. The device's readings, accepted once the grant reached ingest (a refusal for want of consent spends
        # no sequence number), earn CITY: the page shows the balance, the decisions and the history.
        readings = air_quality_readings(device, READINGS)

        def consent_reached() -> bool:
            [verdict] = verdicts(http, platform, readings[:1])
            assert verdict in ("accepted", "no_consent"), verdict
            return verdict == "accepted"

        until("the consent reached ingest", consent_reached, timeout_s=10)
        assert verdicts(http, platform, readings[1:]) == ["accepted"] * (READINGS - 1)

        def settled() -> int | None:
            refreshed(page)
            decisions = page.locator("#decisions > li")
            earned = [
                int(e or 0) for e in decisions.evaluate_all("(items) => items.map((i) => i.dataset.earned)")
            ]
            balance = micro(page)
            return balance if len(earned) == READINGS and balance == sum(earned) > 0 else None

        balance = until("the readings' rewards settled and shown", settled)
        expect(page.locator("#decisions > li[data-outcome=rewarded]")).to_have_count(READINGS)
        expect(page.locator("#decisions").first).to_contain_text("data.air_quality")
        expect(page.locator("#history tbody tr", has_text="Reward")).to_have_count(READINGS)
        # The consent's receipt, anchored by identity on the chain, proven in the browser against the checkpoint.
        expect(page.locator("#consent-environment-receipt [data-anchor=proven]")).to_contain_text(
            "proven in your browser", timeout=45_000
        )
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
            "wider than a phone"
        )
        screenshot(page, "wallet")

        # Another category switched on and off again: each change has its own receipt.
        mobility = page.get_by_role("switch", name="Mobility data")
        mobility.check()
        expect(page.locator("#consents-status")).to_contain_text("Mobility data: allowed", timeout=WAIT_MS)
        mobility.uncheck()
        expect(page.locator("#consents-status")).to_contain_text(
            "Mobility data: no longer allowed", timeout=WAIT_MS
        )
        expect(page.locator("#consent-mobility-receipt")).to_contain_text("Not allowed since")

        # 6. A local merchant registers in the directory and the city verifies it; once the ledger knows it (AID to
        # it from an empty account is refused for want of AID, no longer for not being a verified merchant)...
        merchant = Keypair.generate()
        registration = merchant_registration(merchant, name="Old Town Bakery")
        ok(http.post(f"{directory}/v1/merchants", json=registration), 201)
        verification = merchant_verification(city.verifier, registration)
        ok(http.post(f"{directory}/v1/merchants/{merchant.did}/verification", json=verification))

        def ledger_knows_merchant() -> bool:
            probe = Keypair.generate()
            body = probe.sign(
                {"from": probe.did, "to": merchant.did, "amount": 1, "currency": "AID", "nonce": 1}
            )
            problem = http.post(f"{ledger}/v1/transfers", json=body).json()
            return not problem["type"].endswith(("aid-merchants-only", "merchant-not-verified"))

        until("the ledger knows the merchant", ledger_knows_merchant)

        # ... the page pays it, signed in the browser with a committed memo; a payment beyond the balance is
        # refused with the ledger's reason, and the balance drops by exactly what was paid.
        pay_status = page.locator("#pay-status")
        page.get_by_label("Their wallet id (did:key:…)").fill(merchant.did)
        page.get_by_label("Amount").fill("1000")
        page.get_by_role("button", name="Pay…").click()
        page.get_by_role("button", name="Confirm payment").click()
        expect(pay_status).to_contain_text("Not paid. Not enough in your wallet", timeout=WAIT_MS)
        page.get_by_label("Amount").fill("0.0000001")
        page.get_by_role("button", name="Pay…").click()
        expect(pay_status).to_contain_text("At most 6 decimals")

        page.get_by_label("Amount").fill(PAID)
        page.get_by_label("Memo (optional; only the two of you can read it)").fill(MEMO)
        page.get_by_role("button", name="Pay…").click()
        expect(page.locator("#pay-summary")).to_contain_text(f"Pay {PAID} CITY to {merchant.did}")
        page.get_by_role("button", name="Confirm payment").click()
        expect(pay_status).to_contain_text(f"Paid {PAID} CITY: transaction", timeout=WAIT_MS)
        tx_id = re.search(r"transaction ([0-9a-f]{64})", pay_status.inner_text()).group(1)
        expect(refreshed(page).locator("#balance-CITY")).to_have_attribute(
            "data-micro", str(balance - PAID_MICRO), timeout=WAIT_MS
        )
        expect(page.locator("#history tbody tr", has_text="Payment")).to_have_count(1)

        # The chain holds only the memo's digest; the merchant, a party to it, reads the memo.
        record = ok(http.get(f"{ledger}/v1/transactions/{tx_id}"))
        assert record["transfer"]["amount"] == PAID_MICRO and "memo_digest" in record["transfer"]
        assert MEMO not in json.dumps(record, ensure_ascii=False)
        memo = ok(http.get(f"{ledger}/v1/transactions/{tx_id}/memo", auth=SignedReadAuth(merchant)))
        assert memo["memo"] == MEMO
        merchant_account = http.get(f"{ledger}/v1/accounts/{merchant.did}", auth=SignedReadAuth(merchant))
        assert ok(merchant_account)["balances"]["CITY"] == PAID_MICRO

        # 7. AID: the page shows the wallet's AID holder key, a key apart from the wallet's, which the person gives
        # the city; the city grants AID to it (for groceries, the merchant's category), and the page shows it.
        aid_did = page.locator("#aid-holder").inner_text()
        assert aid_did.startswith("did:key:z6Mk") and aid_did != did
        expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        issue(
            platform,
            city.issuer,
            {"command": "fund", "pool": "aid", "currency": "AID", "amount": AID_GRANTED},
            {
                "command": "grant",
                "holder": aid_did,
                "amount": AID_GRANTED,
                "categories": ["grocery"],
                "expires_at": expires,
            },
        )
        until("the grant shown", lambda: aid_micro(refreshed(page)) == AID_GRANTED)
        expect(page.locator("#aid-balance")).to_have_text("5 AID")
        expect(page.locator("#balance-AID")).to_have_count(0)  # the wallet's own account holds no AID
        # The notices are read naming the AID holder key (notices to the zone's AID holders reach them).
        with page.expect_request(lambda request: request.url.endswith("/notices/inbox")) as reading:
            page.get_by_role("button", name="Check for notices").click()
        assert json.loads(reading.value.post_data or "{}")["aid_holder"] == aid_did

        # The page pays AID to the verified grocer from the AID holder key, signed by that key with its own
        # nonce: more than it holds is refused in plain words; then the AID balance drops by what was paid.
        page.get_by_label("Their wallet id (did:key:…)").fill(merchant.did)
        page.get_by_label("Amount").fill("6")
        page.get_by_label("Currency").select_option("AID")
        page.get_by_role("button", name="Pay…").click()
        page.get_by_role("button", name="Confirm payment").click()
        expect(pay_status).to_contain_text("Not paid. Your AID key does not hold enough AID", timeout=WAIT_MS)
        page.get_by_label("Amount").fill(AID_PAID)
        page.get_by_role("button", name="Pay…").click()
        expect(page.locator("#pay-summary")).to_contain_text(
            f"Pay {AID_PAID} AID from your AID key to {merchant.did}"
        )
        page.get_by_role("button", name="Confirm payment").click()
        expect(pay_status).to_contain_text(
            f"Paid {AID_PAID} AID from your AID key: transaction", timeout=WAIT_MS
        )
        aid_tx = re.search(r"transaction ([0-9a-f]{64})", pay_status.inner_text()).group(1)
        expect(refreshed(page).locator("#aid-balance")).to_have_attribute(
            "data-micro", str(AID_GRANTED - AID_PAID_MICRO), timeout=WAIT_MS
        )
        expect(page.locator("#aid-balance")).to_have_text("3.75 AID")
        assert micro(page) == balance - PAID_MICRO  # the wallet's CITY untouched
        # On the chain the AID holder key paid, never the wallet; the merchant holds the AID.
        spent = ok(http.get(f"{ledger}/v1/transactions/{aid_tx}"))["transfer"]
        assert (spent["from"], spent["currency"], spent["amount"]) == (aid_did, "AID", AID_PAID_MICRO)
        assert did not in json.dumps(ok(http.get(f"{ledger}/v1/transactions/{aid_tx}")))
        merchant_account = http.get(f"{ledger}/v1/accounts/{merchant.did}", auth=SignedReadAuth(merchant))
        assert ok(merchant_account)["balances"]["AID"] == AID_PAID_MICRO

    # 8. The backup: it opens as documented (Python, with nothing but the passphrase), with both keys (the AID
    # holder key's did is not in the file), and restores the same did and AID holder key in a fresh browser; a
    # wrong passphrase is refused.
    backup_path = downloaded_backup(page, tmp_path)
    backup = json.loads(backup_path.read_text())
    assert backup["did"] == did and aid_did not in json.dumps(backup)
    wallet_key, aid_key = open_backup(backup, PASSPHRASE)
    assert (wallet_key.did, aid_key.did) == (did, aid_did)
    with httpx.Client(timeout=15) as http:  # the backup's AID key is the one holding the AID
        aid_account = http.get(f"{ledger}/v1/accounts/{aid_did}", auth=SignedReadAuth(aid_key))
        assert ok(aid_account)["balances"]["AID"] == AID_GRANTED - AID_PAID_MICRO

    context = browser.new_context(viewport={"width": 412, "height": 915})
    errors: list[str] = []
    try:
        fresh = context.new_page()
        fresh.on("pageerror", lambda error: errors.append(str(error)))
        fresh.goto(f"{platform.url('portal')}/wallet.html")
        expect(fresh.locator("#wallet-status")).to_contain_text("No wallet on this device", timeout=WAIT_MS)
        fresh.get_by_label("Backup file").set_input_files(backup_path)
        fresh.get_by_label("Passphrase", exact=True).fill("tram lantern copper meadows")
        fresh.get_by_role("button", name="Restore my wallet").click()
        expect(fresh.locator("#restore-status")).to_contain_text("Wrong passphrase", timeout=WAIT_MS)
        expect(fresh.locator("#dashboard")).to_be_hidden()
        fresh.get_by_label("Passphrase", exact=True).fill(PASSPHRASE)
        fresh.get_by_role("button", name="Restore my wallet").click()
        expect(fresh.locator("#did")).to_have_text(did, timeout=WAIT_MS)
        expect(fresh.locator("#aid-holder")).to_have_text(aid_did)
        expect(fresh.locator("#identity-status")).to_contain_text("Registered with the city", timeout=WAIT_MS)
        # The restored keys sign: their signed reads of the balances are the same as the first browser's.
        expect(fresh.locator("#balance-CITY")).to_have_attribute(
            "data-micro", str(balance - PAID_MICRO), timeout=WAIT_MS
        )
        expect(fresh.locator("#aid-balance")).to_have_attribute(
            "data-micro", str(AID_GRANTED - AID_PAID_MICRO), timeout=WAIT_MS
        )

        # 9. A backup of version 1 (made before wallets had an AID holder key) still restores: the page makes
        # the wallet a new AID holder key, says so, and its backup keeps it from then on.
        fresh.get_by_role("button", name="Forget this wallet on this device").click()
        fresh.get_by_role("button", name="Yes, forget it").click()
        expect(fresh.locator("#wallet-status")).to_contain_text("This wallet is forgotten", timeout=WAIT_MS)
        old_path = tmp_path / "version-1.json"
        old_path.write_text(json.dumps({**{field: backup[field] for field in V1_FIELDS}, "version": 1}))
        fresh.get_by_label("Backup file").set_input_files(old_path)
        fresh.get_by_label("Passphrase", exact=True).fill(PASSPHRASE)
        fresh.get_by_role("button", name="Restore my wallet").click()
        expect(fresh.locator("#wallet-status")).to_contain_text("a new AID key was made", timeout=WAIT_MS)
        expect(fresh.locator("#did")).to_have_text(did)
        new_aid = fresh.locator("#aid-holder").inner_text()
        assert new_aid.startswith("did:key:z6Mk") and new_aid not in (did, aid_did)
        expect(fresh.locator("#aid-balance")).to_have_attribute("data-micro", "0", timeout=WAIT_MS)
        expect(fresh.locator("#identity-status")).to_contain_text("Registered with the city", timeout=WAIT_MS)
        renewed = json.loads(downloaded_backup(fresh, tmp_path / "renewed").read_text())
        assert [key.did for key in open_backup(renewed, PASSPHRASE)] == [did, new_aid]

        # A wallet kept in this browser from before AID holder keys gets one with its backup's passphrase.
        fresh.evaluate(FROM_BEFORE_AID_KEYS)
        fresh.reload()
        make = fresh.get_by_role("button", name="Make my AID key")
        expect(make).to_be_visible(timeout=WAIT_MS)
        expect(fresh.locator("#aid-key")).to_be_hidden()
        fresh.get_by_label("Your backup's passphrase").fill("tram lantern copper meadows")
        make.click()
        expect(fresh.locator("#aid-status")).to_contain_text("Wrong passphrase", timeout=WAIT_MS)
        fresh.get_by_label("Your backup's passphrase").fill(PASSPHRASE)
        make.click()
        expect(fresh.locator("#aid-status")).to_contain_text("Your AID key is made", timeout=WAIT_MS)
        made = fresh.locator("#aid-holder").inner_text()
        assert made.startswith("did:key:z6Mk") and made not in (did, aid_did, new_aid)
        expect(make).to_be_hidden()
        remade = json.loads(downloaded_backup(fresh, tmp_path / "remade").read_text())
        assert [key.did for key in open_backup(remade, PASSPHRASE)] == [did, made]
    finally:
        context.close()
    assert not errors, f"the restored page raised: {errors}"
