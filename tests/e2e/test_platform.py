"""End to end: `smartcity up` on the embedded stack, a device's signed readings settled into signed
blocks, verified with nothing but HTTP, the checkpoint's public key and RFC 9162; then Ctrl-C drains what
was accepted, stops every process it started, and the next `smartcity up` continues the same chain."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest

from bench._running import RunningPlatform
from services.common import merkle, signing
from services.common.bindings import development_order_key
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.ingest.devices import sign_registration
from services.ledger.rewards import verify_disclosure
from tests.support.bindings import bind_through_identity
from tests.support.ingest import air_quality_readings

pytestmark = pytest.mark.e2e

CONSENT_BOUND_S = 5.0  # a consent change reaches ingest within 5 s


def _start(data_dir: Path, *args: str, ports: dict[str, int] | None = None) -> RunningPlatform:
    """`smartcity up` in `data_dir` with a small simulated fleet, ready."""
    platform = RunningPlatform(
        data_dir, *args, ports=ports, env={"SIMULATOR_DEVICES": "60", "SIMULATOR_READINGS_PER_SECOND": "100"}
    )
    platform.wait_ready()
    return platform


@pytest.fixture(scope="module")
def platform() -> Iterator[RunningPlatform]:
    # Not under pytest's tmp dir: pytest resets it to 0700 when another session starts, and the embedded
    # PostgreSQL runs as its own user, which must still reach its data dir to stop.
    data_dir = Path(tempfile.mkdtemp(prefix="smartcity-e2e-"))
    try:
        platform = _start(data_dir)
        try:
            yield platform
        finally:
            platform.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _register(http: httpx.Client, platform: RunningPlatform, owner: Keypair, device: Keypair) -> None:
    """Register `owner`'s air quality `device` with ingest."""
    body = {"device_id": device.did, "owner": owner.did, "kind": "air_quality", "zone": "old-town"}
    response = http.post(f"{platform.url('ingest')}/v1/devices", json=sign_registration(owner, device, body))
    assert response.status_code == 201, response.text


def _consent(subject: Keypair, action: str, category: str = "environment") -> dict:
    """A consent change signed by `subject`, as their wallet posts it to identity."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {
        "subject": subject.did,
        "category": category,
        "grantee": "city",
        "action": action,
        "purpose": "rewards for air quality readings",
        "issued_at": now,
    }
    return subject.sign(body)


def _change_consent(http: httpx.Client, platform: RunningPlatform, subject: Keypair, action: str) -> None:
    """Grant or revoke the city `subject`'s environment data through identity's HTTP API."""
    response = http.post(f"{platform.url('identity')}/v1/consents", json=_consent(subject, action))
    assert response.status_code == 201, response.text
    assert response.json()["receipt"]["status"] == {"grant": "granted", "revoke": "revoked"}[action]


def _verdict(http: httpx.Client, platform: RunningPlatform, reading: dict) -> str:
    """Ingest's verdict on one reading: "accepted" or the reason it was rejected (without its detail)."""
    response = http.post(f"{platform.url('ingest')}/v1/readings", json={"readings": [reading]})
    assert response.status_code == 202, response.text
    [result] = response.json()["results"]
    return result["reason"].split(":")[0] if result["reason"] else result["status"]


def _accepted_within(bound_s: float, http: httpx.Client, platform: RunningPlatform, reading: dict) -> None:
    """Post `reading` (taken after the grant) until ingest accepts it (a refusal for want of consent spends no
    sequence number)."""
    deadline = time.monotonic() + bound_s
    while (verdict := _verdict(http, platform, reading)) != "accepted":
        assert verdict == "no_consent", verdict
        assert time.monotonic() < deadline, "the grant did not reach ingest in time"
        time.sleep(0.05)


def _bindings_applied(http: httpx.Client, platform: RunningPlatform) -> float:
    """How many binding records ingest's binding view has applied (its Prometheus counter)."""
    metrics = http.get(f"{platform.url('ingest')}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("smartcity_binding_records_total{") and 'outcome="applied"' in line
    )


def _bind(platform: RunningPlatform, owner: Keypair) -> None:
    """Bind `owner`'s wallet to a person on identity, with the credential-ordering key `smartcity up` lists,
    and wait until ingest applied it: a reading it accepts before would be attested with no person (and earn
    nothing, `unverified-person`). The simulator bound its wallets when it started, so the next binding ingest
    applies is this one."""
    with httpx.Client(timeout=10) as http:
        before = _bindings_applied(http, platform)

        async def bind() -> None:
            async with httpx.AsyncClient(base_url=platform.url("identity"), timeout=10) as identity:
                await bind_through_identity(identity, development_order_key(platform.data_dir), owner)

        asyncio.run(bind())
        deadline = time.monotonic() + CONSENT_BOUND_S
        while _bindings_applied(http, platform) <= before:
            assert time.monotonic() < deadline, "the binding did not reach ingest in time"
            time.sleep(0.05)


def _verify_checkpoint(checkpoint: dict) -> bytes:
    """Check the signed tree head with nothing but its public key; return its root hash."""
    body = {k: v for k, v in checkpoint.items() if k != "signature"}
    signing.verify_bytes(
        checkpoint["public_key"],
        signing.canonical_bytes(body),
        signing.b64url_decode(checkpoint["signature"]),
    )
    return bytes.fromhex(checkpoint["root_hash"])


def test_simulated_readings_are_settled_into_blocks_with_live_progress(platform: RunningPlatform):
    line = platform.wait_for_line(
        lambda line: line.startswith("up=") and " settled=0 " not in line and " blocks=- " not in line,
        timeout_s=60,
    )
    assert "readings/s=" in line and "tree_size=" in line


def test_a_citizens_readings_settle_and_verify_end_to_end(platform: RunningPlatform):
    owner, device = Keypair.generate(), Keypair.generate()
    ingest, ledger = platform.url("ingest"), platform.url("ledger")
    with httpx.Client(timeout=10) as http:
        # The city's policy pays only wallets bound to a person: the owner binds theirs first.
        _bind(platform, owner)
        _register(http, platform, owner, device)

        # Ingest takes the owner's air quality readings only once they granted the city that data, and only
        # those taken since: consent counts at a reading's own time.
        [before] = air_quality_readings(device, 1)
        assert _verdict(http, platform, before) == "no_consent"
        time.sleep(0.01)
        _change_consent(http, platform, owner, "grant")
        readings = air_quality_readings(device, 5, first_seq=2)
        _accepted_within(CONSENT_BOUND_S, http, platform, readings[0])
        assert _verdict(http, platform, before) == "no_consent"  # taken before the grant: never
        forged = {**readings[0], "seq": 99}  # signature no longer matches
        response = http.post(f"{ingest}/v1/readings", json={"readings": [*readings[1:], forged]})
        assert response.status_code == 202
        statuses = [r["status"] for r in response.json()["results"]]
        assert statuses == ["accepted"] * 4 + ["rejected"]

        deadline = time.monotonic() + 60
        while True:
            txs = http.get(
                f"{ledger}/v1/accounts/{owner.did}/transactions", auth=SignedReadAuth(owner)
            ).json()["transactions"]
            if len(txs) == 5 and all(tx["leaf_index"] is not None for tx in txs):
                break
            assert time.monotonic() < deadline, f"rewards not sealed in time: {txs}"
            time.sleep(0.5)

        checkpoint = http.get(f"{ledger}/v1/checkpoint").json()
        root = _verify_checkpoint(checkpoint)
        credited = 0
        reading_ids = {hashlib.sha256(f"{device.did}/{r['seq']}".encode()).hexdigest() for r in readings}
        for tx in txs:
            record = http.get(f"{ledger}/v1/transactions/{tx['tx_id']}").json()
            proof = http.get(
                f"{ledger}/v1/transactions/{tx['tx_id']}/proof", params={"tree_size": checkpoint["tree_size"]}
            ).json()
            leaf = merkle.leaf_hash(signing.canonical_bytes(record))
            assert proof["leaf_hash"] == leaf.hex()
            assert proof["leaf_index"] == tx["leaf_index"]
            merkle.verify_inclusion(
                leaf,
                proof["leaf_index"],
                checkpoint["tree_size"],
                [bytes.fromhex(h) for h in proof["audit_path"]],
                root,
            )
            reward = record["reward"]
            assert reward["reading_id"] in reading_ids
            # The public record holds no reading values or place: the owner reads the evidence, which opens
            # the record's commitment and carries the signatures ingest checked.
            assert "values" not in json.dumps(record) and "old-town" not in json.dumps(record)
            path = f"{ledger}/v1/transactions/{tx['tx_id']}/disclosure"
            assert http.get(path).status_code == 401
            envelope, _ = verify_disclosure(reward, http.get(path, auth=SignedReadAuth(owner)).json())
            signing.verify(envelope["reading"], "device_id")
            signing.verify(envelope["registration"], "owner")
            credited += sum(
                p["amount"]
                for p in record["postings"]
                if p["account"] == owner.did and p["currency"] == "CITY"
            )
        assert credited > 0
        assert http.get(f"{ledger}/v1/accounts/{owner.did}").status_code == 401  # a wallet is personal
        assert http.get(f"{ingest}/v1/devices", params={"owner": owner.did}).status_code == 401
        mine = http.get(f"{ingest}/v1/devices", auth=SignedReadAuth(owner)).json()["devices"]
        assert [d["device_id"] for d in mine] == [device.did]
        balance = http.get(f"{ledger}/v1/accounts/{owner.did}", auth=SignedReadAuth(owner)).json()
        assert balance["wallet"] == owner.did
        assert balance["balances"]["CITY"] == credited

        # A tampered record no longer hashes to a leaf the signed root commits to.
        tampered = {**record, "postings": [{**p, "amount": p["amount"] * 2} for p in record["postings"]]}
        with pytest.raises(merkle.RootMismatchError):
            merkle.verify_inclusion(
                merkle.leaf_hash(signing.canonical_bytes(tampered)),
                proof["leaf_index"],
                checkpoint["tree_size"],
                [bytes.fromhex(h) for h in proof["audit_path"]],
                root,
            )


def test_bad_requests_get_problem_json(platform: RunningPlatform):
    ingest = platform.url("ingest")
    with httpx.Client(timeout=10) as http:
        malformed = http.post(
            f"{ingest}/v1/readings", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        assert malformed.headers["content-type"].startswith("application/problem+json")
        wrong_types = http.post(f"{ingest}/v1/devices", json={"device_id": 5, "owner": [], "kind": 1})
        assert 400 <= wrong_types.status_code < 500
        assert wrong_types.json()["status"] == wrong_types.status_code
        owner, device = Keypair.generate(), Keypair.generate()
        bad_sig = owner.sign({"device_id": device.did, "owner": owner.did, "kind": "noise", "zone": "z"})
        bad_sig["zone"] = "elsewhere"
        assert 400 <= http.post(f"{ingest}/v1/devices", json=bad_sig).status_code < 500
        unknown = air_quality_readings(Keypair.generate(), 1)
        result = http.post(f"{ingest}/v1/readings", json={"readings": unknown}).json()["results"][0]
        assert result["status"] == "rejected" and result["reason"]


def test_consent_granted_and_revoked_through_identity_is_obeyed_by_ingest(platform: RunningPlatform):
    owner, device = Keypair.generate(), Keypair.generate()
    with httpx.Client(timeout=10) as http:
        _register(http, platform, owner, device)
        [first] = air_quality_readings(device, 1)
        assert _verdict(http, platform, first) == "no_consent"

        _change_consent(http, platform, owner, "grant")
        [granted] = air_quality_readings(device, 1)
        _accepted_within(CONSENT_BOUND_S, http, platform, granted)
        seq = iter(range(2, 10_000))

        _change_consent(http, platform, owner, "revoke")
        revoked_at = time.monotonic()
        while (
            verdict := _verdict(http, platform, air_quality_readings(device, 1, next(seq))[0])
        ) != "no_consent":
            assert verdict == "accepted", verdict
            assert time.monotonic() - revoked_at < CONSENT_BOUND_S, "the revocation did not reach ingest"
            time.sleep(0.05)
        assert _verdict(http, platform, air_quality_readings(device, 1, next(seq))[0]) == "no_consent"


def test_a_killed_ledger_is_restarted_and_settlement_goes_on_verifiably(platform: RunningPlatform):
    ledger_url = platform.url("ledger")
    parent = psutil.Process(platform.process.pid)
    [ledger] = [p for p in parent.children() if "services.ledger" in " ".join(p.cmdline())]
    with httpx.Client(timeout=10) as http:
        before = http.get(f"{ledger_url}/v1/checkpoint").json()["tree_size"]
        os.killpg(ledger.pid, signal.SIGKILL)  # the ledger and its verification workers, mid-stream
        platform.wait_for_line(lambda line: line.startswith("ledger exited with -9; restarting it"), 30)
        restarted = platform.wait_for_line(lambda line: line.startswith("ledger restarted"), 60)
        assert str(ledger.pid) not in restarted
        deadline = time.monotonic() + 120
        while True:  # the simulator's readings keep earning, and the restarted ledger settles them
            try:
                checkpoint = http.get(f"{ledger_url}/v1/checkpoint").json()
                if checkpoint["tree_size"] > before:
                    break
            except httpx.HTTPError:
                pass  # not listening yet
            assert time.monotonic() < deadline, "the restarted ledger settled nothing"
            time.sleep(1)
    _verify_replay(ledger_url, checkpoint["public_key"])
    assert platform.process.poll() is None  # the platform went on


def _verify_replay(ledger_url: str, public_key: str) -> None:
    command = ["verify", "--ledger", ledger_url, "--public-key", public_key, "--replay"]
    verified = subprocess.run(
        [sys.executable, "-m", "services", *command], capture_output=True, text=True, timeout=300
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK: ")


def test_ctrl_c_drains_what_was_accepted_and_the_next_run_continues_the_chain(platform: RunningPlatform):
    """Readings accepted just before Ctrl-C are all decided and settled before the platform stops: the next
    run (same data dir, a new memory-only broker) finds them sealed in the chain and in the balances."""
    owner, device = Keypair.generate(), Keypair.generate()
    ingest, ledger = platform.url("ingest"), platform.url("ledger")
    with httpx.Client(timeout=10) as http:
        _bind(platform, owner)
        _register(http, platform, owner, device)
        _change_consent(http, platform, owner, "grant")
        readings = air_quality_readings(device, 20)
        _accepted_within(CONSENT_BOUND_S, http, platform, readings[0])
        response = http.post(f"{ingest}/v1/readings", json={"readings": readings[1:]})
        assert [r["status"] for r in response.json()["results"]] == ["accepted"] * 19
        before = http.get(f"{ledger}/v1/checkpoint").json()

    children = psutil.Process(platform.process.pid).children(recursive=True)
    assert len(children) >= 7  # broker, five services, simulator
    platform.process.send_signal(signal.SIGINT)
    platform.wait_for_line(lambda line: line.startswith("drained: "), timeout_s=150)
    assert platform.process.wait(60) == 0
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    leftover = [
        p.info
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(platform.data_dir) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftover == []

    again = _start(platform.data_dir, "--no-simulate", ports=platform.ports)
    try:
        with httpx.Client(timeout=10) as http:
            txs = http.get(
                f"{ledger}/v1/accounts/{owner.did}/transactions", auth=SignedReadAuth(owner)
            ).json()["transactions"]
            assert len(txs) == 20 and all(
                tx["leaf_index"] is not None for tx in txs
            )  # sealed before the stop
            held = http.get(f"{ledger}/v1/accounts/{owner.did}", auth=SignedReadAuth(owner)).json()
            assert held["balances"]["CITY"] == 20 * 500
            after = http.get(f"{ledger}/v1/checkpoint").json()
        assert after["public_key"] == before["public_key"]
        assert (after["height"], after["tree_size"]) > (before["height"], before["tree_size"])
        _verify_replay(ledger, after["public_key"])
    finally:
        assert again.stop() == 0
