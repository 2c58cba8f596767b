"""End to end on `smartcity up`: every example of the SDK (`smartcity_sdk/examples/`) runs as a city app would,
a process of its own given the services' URLs and the development keys, and says what it did.

The city's issuer key is a key file given the issuer role when the chain is bootstrapped
(``LEDGER_ISSUER_KEYS``); the ledger's key is the one ``smartcity up`` keeps in its data dir.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench._running import RunningPlatform, fresh_platform
from smartcity_sdk import Keypair
from smartcity_sdk.examples import common
from smartcity_sdk.signing import b64url_encode

pytestmark = pytest.mark.e2e

EXAMPLES = Path(common.__file__).parent


@dataclass(frozen=True)
class City:
    """The platform, and the file of the key it gave the issuer role."""

    platform: RunningPlatform
    issuer_key: Path


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    issuer = Keypair.generate()
    issuer_key = tmp_path_factory.mktemp("keys") / "issuer.key"
    issuer_key.write_text(b64url_encode(issuer.seed) + "\n")
    env = {"LEDGER_ISSUER_KEYS": issuer.did}
    with fresh_platform("--no-simulate", env=env, prefix="smartcity-sdk-") as running:
        yield City(running, issuer_key)


def example(platform: RunningPlatform, name: str, *args: str, status: int = 0) -> str:
    """What the example `name` printed, run with the platform's URLs and data dir; it must exit with `status`."""
    env = {
        **os.environ,
        "SMARTCITY_DATA_DIR": str(platform.data_dir),
        **{f"SMARTCITY_{service.upper()}_URL": platform.url(service) for service in common.SERVICES},
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == status, f"{name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_a_wallet_pays_a_merchant_the_payment_verifies_and_the_merchant_is_found(city: City) -> None:
    platform = city.platform
    paid = example(platform, "wallet_pays_a_merchant", "--issuer-key", str(city.issuer_key))
    assert "minted: 10.000000 CITY" in paid and "balance: 7.500000 CITY" in paid
    assert "memo read by the merchant: two coffees and a croissant" in paid
    assert "no memo text" in paid and "next nonce: 2" in paid
    tx_id = re.search(r"paid: 2\.500000 CITY to the merchant in ([0-9a-f]{64})", paid)
    shop = re.search(r"merchant: (Corner Café \w+) ", paid)
    assert tx_id and shop, paid

    verified = example(platform, "verify_a_transaction", "--tx", tx_id[1])
    assert f"transaction {tx_id[1]} (transfer) is leaf" in verified
    assert "signed by the ledger key: OK" in verified and "without rewriting any: OK" in verified
    # The latest transaction by default, and a key the ledger did not sign with is a failure.
    assert ": OK" in example(platform, "verify_a_transaction")
    stranger = Keypair.generate().did
    refused = example(platform, "verify_a_transaction", "--ledger-key", stranger, status=1)
    assert "FAILED: a check did not hold" in refused and "not by the ledger's key" in refused

    found = example(platform, "directory_search", "corner cafe", "--lat", "52.37", "--lon", "4.895")
    assert f"- {shop[1]} (food, locally owned, accepts CITY)" in found and "categories: food" in found


def test_a_device_reports_readings_and_its_owner_reads_what_they_earned(city: City) -> None:
    reported = example(city.platform, "device_reports_readings", "--readings", "3")
    assert "consent: environment granted to the city" in reported and "readings: 3 accepted" in reported
    # The development policy pays only wallets bound to a person: the decisions say so.
    assert reported.count("unrewarded, 0 micro-CITY (unverified-person)") == 3, reported
