"""The SDK's pure parts (`smartcity_sdk`): it signs exactly as the platform does, its did:keys, memos, AID holder
keys and proofs are the ones the services check, its retries follow ``Retry-After``, and it stands alone."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common import jcs as services_jcs
from services.common import signing as services_signing
from services.common.aid_holder import aid_holder as services_aid_holder
from services.common.bindings import AUDIENCE as BINDING_AUDIENCE
from services.common.merkle import consistency_proof, inclusion_proof, root_from_leaf_hashes
from services.common.signed_reads import verify_read
from services.directory.merchants import registration_hash as services_registration_hash
from services.identity.requests import SERVICE_RECORDS_CATEGORY
from services.ledger import chain
from smartcity_sdk import didkey, identity, jcs, merkle, proofs, signing
from smartcity_sdk.aid_holder import aid_holder
from smartcity_sdk.directory import registration_hash
from smartcity_sdk.errors import ProblemError
from smartcity_sdk.http import RetryPolicy, ServiceClient, retry_after_s
from smartcity_sdk.ingest import sign_registration
from smartcity_sdk.ledger import sign_issuer_command, sign_transfer
from smartcity_sdk.memos import commit_memo, open_memo, sign_with_memo
from smartcity_sdk.signed_reads import SignedReadAuth
from smartcity_sdk.types import Checkpoint
from tests.support.factories import reencoded

VECTORS = Path(__file__).parent / "vectors"
SEED = bytes(range(32))


def vector_values() -> list[Any]:
    """Every JSON value of the repo's test vectors: the objects, and each of their members on its own."""
    values: list[Any] = []
    for path in sorted(VECTORS.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        values += [document, *document.values()]
    values.append({"€": [1.0, 1e21, -0.0, 0.000001], "a": "\u2028 😀", "b": {"z": None, "y": True}})
    return values


@pytest.mark.parametrize("value", vector_values())
def test_the_sdk_canonicalises_and_signs_the_vectors_byte_for_byte_as_the_services(value: Any) -> None:
    # The services canonicalise with a faster encoder than the SDK's reference one: the same bytes, so the
    # same (deterministic) Ed25519 signatures, each verifying on the other side.
    assert jcs.canonical_bytes(value) == services_jcs.canonical_bytes(value)
    if not isinstance(value, dict):
        return
    sdk_key, services_key = signing.Keypair.from_seed(SEED), services_signing.Keypair.from_seed(SEED)
    signed = sdk_key.sign({**value, "signer": sdk_key.did})
    assert signed == services_key.sign({**value, "signer": services_key.did})
    services_signing.verify(signed, "signer")
    signing.verify(signed, "signer")


def test_a_signature_has_one_text_and_a_signed_object_checks_its_signer() -> None:
    key = signing.Keypair.generate()
    signed = key.sign({"from": key.did, "amount": 5})
    assert len(signed["sig"]) == 86 and "=" not in signed["sig"]
    with pytest.raises(signing.SignatureError, match="canonical"):
        signing.verify(reencoded(signed), "from")
    with pytest.raises(signing.SignatureError, match="does not verify"):
        signing.verify({**signed, "amount": 6}, "from")
    with pytest.raises(signing.SignatureError, match="did:key"):
        signing.verify({**signed, "from": "did:web:example.com"}, "from")


def test_a_did_key_round_trips_and_names_its_key() -> None:
    key = signing.Keypair.from_seed(SEED)
    public = bytes(key.signing_key.verify_key)
    assert didkey.decode(key.did) == public and didkey.encode(public) == key.did
    assert key.did.startswith("did:key:z6Mk") and didkey.is_did_key(key.did)
    assert key.did == services_signing.Keypair.from_seed(SEED).did


def test_a_key_file_holds_the_seed_as_the_development_stack_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "issuer.key"
    path.write_text(signing.b64url_encode(SEED) + "\n")
    assert signing.Keypair.from_file(path).seed == SEED
    path.write_text(signing.b64url_encode(SEED[:16]))
    with pytest.raises(ValueError, match="32 bytes"):
        signing.Keypair.from_file(path)


def test_a_memo_signed_beside_its_body_opens_to_its_text_and_matches_the_vectors() -> None:
    vectors = json.loads((VECTORS / "memos.json").read_text(encoding="utf-8"))
    for vector in vectors["memos"]:
        assert commit_memo(vector["text"], salt=vectors["salt"]) == (vector["disclosure"], vector["digest"])
    key = signing.Keypair.generate()
    memo = commit_memo("lunch")
    body = sign_with_memo(key, {"from": key.did, "nonce": 1}, memo)
    assert body["memo_disclosure"] == memo.disclosure and body["memo_digest"] == memo.digest
    signing.verify({k: v for k, v in body.items() if k != "memo_disclosure"}, "from")
    assert open_memo(body["memo_disclosure"], body["memo_digest"]) == "lunch"
    assert sign_with_memo(key, {"from": key.did}, None) == key.sign({"from": key.did})


def test_transfers_commands_and_registrations_are_signed_as_the_ledger_and_ingest_check_them() -> None:
    sender, device = signing.Keypair.generate(), signing.Keypair.generate()
    transfer = sign_transfer(sender, device.did, 250, "CITY", 7, memo="rent")
    assert {k: transfer[k] for k in ("from", "to", "amount", "currency", "nonce")} == {
        "from": sender.did,
        "to": device.did,
        "amount": 250,
        "currency": "CITY",
        "nonce": 7,
    }
    signing.verify({k: v for k, v in transfer.items() if k != "memo_disclosure"}, "from")
    command = sign_issuer_command(sender, "mint", 3, to=device.did, currency="CREDIT", amount=9)
    assert command["issuer"] == sender.did and "memo_digest" not in command
    signing.verify(command, "issuer")
    registration = sign_registration(sender, device, {"device_id": device.did, "owner": sender.did})
    services_signing.verify_detached(registration, "device_id", "device_sig", exclude=("sig",))
    services_signing.verify(registration, "owner")


def test_a_verification_names_the_registration_as_the_directory_hashes_it_and_constants_are_the_services() -> (
    None
):
    wallet = signing.Keypair.from_seed(SEED)
    registration = wallet.sign({"wallet": wallet.did, "name": "Café ☕", "accepts": ["CITY"], "lat": 52.37})
    assert registration_hash(registration) == services_registration_hash(registration)
    assert identity.BINDING_AUDIENCE == BINDING_AUDIENCE
    assert identity.SERVICE_RECORDS_CATEGORY == SERVICE_RECORDS_CATEGORY


def test_the_aid_holder_is_the_services_one_and_keeps_the_wallets_class() -> None:
    sdk_wallet, services_wallet = signing.Keypair.from_seed(SEED), services_signing.Keypair.from_seed(SEED)
    assert aid_holder(sdk_wallet).did == services_aid_holder(services_wallet).did != sdk_wallet.did
    assert type(services_aid_holder(services_wallet)) is services_signing.Keypair


def test_a_signed_read_by_the_sdk_verifies_at_the_services() -> None:
    reader = signing.Keypair.generate()
    url = f"http://ledger/v1/accounts/{reader.did}/nonce"
    request = next(SignedReadAuth(reader).auth_flow(httpx.Request("GET", url)))
    assert verify_read("GET", url, request.headers) == reader.did


def _checkpoint(hashes: list[bytes], size: int) -> dict[str, Any]:
    """The ledger's signed header of the tree of the first `size` of `hashes`."""
    return chain.sign_header(
        services_signing.Keypair.from_seed(SEED),
        height=size,
        previous_hash=chain.GENESIS_PREVIOUS_HASH,
        tree_size=size,
        root_hash=root_from_leaf_hashes(hashes[:size]),
        timestamp="2026-11-21T10:00:00.000Z",
    ).to_json()


def test_the_sdks_checkpoint_is_the_ledgers_block_header() -> None:
    header_fields = tuple(field.name for field in dataclasses.fields(chain.BlockHeader))
    assert tuple(Checkpoint.__annotations__) == proofs.HEADER_FIELDS == header_fields


def test_a_checkpoint_and_an_inclusion_and_consistency_proof_verify_and_tampering_does_not() -> None:
    vectors = json.loads((VECTORS / "merkle.json").read_text(encoding="utf-8"))
    leaves = [leaf.encode() for leaf in vectors["leaves"]]
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]

    def subtree(start: int, end: int) -> bytes:
        return root_from_leaf_hashes(hashes[start:end])

    checkpoint = _checkpoint(hashes, len(leaves))
    proofs.verify_checkpoint(checkpoint, signing.Keypair.from_seed(SEED).did)
    proofs.verify_checkpoint({**checkpoint, "tx_ids": ["a block's ids are not signed"]})
    with pytest.raises(proofs.VerificationError, match="not by the ledger's key"):
        proofs.verify_checkpoint(checkpoint, signing.Keypair.generate().did)
    with pytest.raises(proofs.VerificationError, match="does not verify"):
        proofs.verify_checkpoint({**checkpoint, "tree_size": 9})

    path = [h.hex() for h in inclusion_proof(5, len(leaves), subtree)]
    proof = {"leaf_index": 5, "tree_size": len(leaves), "audit_path": path}
    proofs.verify_included(leaves[5], proof, checkpoint)
    with pytest.raises(proofs.VerificationError, match="not in the checkpoint's tree"):
        proofs.verify_included(leaves[4], proof, checkpoint)
    with pytest.raises(proofs.VerificationError, match="tree_size"):
        proofs.verify_included(leaves[5], {**proof, "tree_size": 6}, checkpoint)

    extension = [h.hex() for h in consistency_proof(3, len(leaves), subtree)]
    proofs.verify_extends(_checkpoint(hashes, 3), checkpoint, extension)
    with pytest.raises(proofs.VerificationError, match="does not extend"):
        proofs.verify_extends(_checkpoint(hashes[1:], 3), checkpoint, extension)


class Script:
    """A service answering each request with the next of its answers (an exception: no answer at all)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(script: Script, slept: list[float], **policy: Any) -> ServiceClient:
    http = httpx.Client(transport=httpx.MockTransport(script), base_url="http://service")
    return ServiceClient(http=http, retry=RetryPolicy(**policy), sleep=slept.append)


def problem(status: int, kind: str, **headers: str) -> httpx.Response:
    body = {
        "type": f"https://smartcity.example/problems/{kind}",
        "title": kind,
        "status": status,
        "detail": kind,
    }
    return httpx.Response(status, json=body, headers=headers)


def test_a_429_or_503_is_retried_after_its_retry_after_for_every_call() -> None:
    script = Script(problem(503, "broker-unavailable", **{"Retry-After": "2"}), problem(429, "rate-limited"))
    script.answers.append(httpx.Response(200, json={"ok": True}))
    slept: list[float] = []
    answer = client(script, slept, backoff_s=0.5).call("POST", "/v1/consents", idempotent=False, json={})
    assert answer.json() == {"ok": True} and len(script.requests) == 3
    assert slept[0] == 2 and 0 <= slept[1] <= 1.0  # Retry-After, then a jittered backoff


def test_no_answer_is_retried_only_for_idempotent_calls() -> None:
    slept: list[float] = []
    lost = httpx.ConnectError("connection refused")
    script = Script(lost, problem(502, "bad-gateway"), httpx.Response(201, json={"tx_id": "t"}))
    assert client(script, slept).call("POST", "/v1/transfers", idempotent=True).json() == {"tx_id": "t"}
    assert len(slept) == 2 and all(0 <= s <= 0.5 for s in slept)
    with pytest.raises(httpx.ConnectError):
        client(Script(lost), slept).call("POST", "/v1/consents", idempotent=False)
    with pytest.raises(ProblemError) as refused:
        client(Script(problem(502, "bad-gateway")), slept).call("POST", "/v1/consents", idempotent=False)
    assert refused.value.status == 502


def test_retries_are_bounded_and_a_refusal_is_a_typed_problem() -> None:
    slept: list[float] = []
    busy = [problem(503, "database-unavailable", **{"Retry-After": "1"}) for _ in range(3)]
    with pytest.raises(ProblemError) as exhausted:
        client(Script(*busy), slept, attempts=3).call("GET", "/v1/checkpoint", idempotent=True)
    assert (
        slept == [1, 1]
        and exhausted.value.kind == "database-unavailable"
        and exhausted.value.retry_after_s == 1
    )
    with pytest.raises(ProblemError) as too_long:
        locked = problem(429, "rate-limited", **{"Retry-After": "3600"})
        client(Script(locked), slept).call("GET", "/v1/checkpoint", idempotent=True)
    assert too_long.value.retry_after_s == 3600 and slept == [1, 1]
    with pytest.raises(ProblemError) as refused:
        client(Script(problem(409, "insufficient-funds")), slept).call(
            "POST", "/v1/transfers", idempotent=True
        )
    assert (refused.value.status, refused.value.kind, refused.value.detail) == (
        409,
        "insufficient-funds",
        "insufficient-funds",
    )
    with pytest.raises(ProblemError) as not_json:
        client(Script(httpx.Response(404, text="<html>")), slept).call("GET", "/x", idempotent=True)
    assert not_json.value.type == "about:blank" and not_json.value.detail == "<html>"


def test_retry_after_is_delay_seconds_or_an_http_date() -> None:
    assert retry_after_s(httpx.Response(503, headers={"Retry-After": "7"})) == 7
    later = datetime.fromtimestamp(datetime.now(UTC).timestamp() + 60, UTC)
    dated = httpx.Response(503, headers={"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    assert 50 < (retry_after_s(dated) or 0) <= 60
    assert retry_after_s(httpx.Response(503)) is None


def test_the_sdk_imports_nothing_of_the_services() -> None:
    modules = (
        "smartcity_sdk",
        "smartcity_sdk.examples.common",
        "smartcity_sdk.examples.wallet_pays_a_merchant",
        "smartcity_sdk.examples.verify_a_transaction",
        "smartcity_sdk.examples.directory_search",
        "smartcity_sdk.examples.device_reports_readings",
    )
    check = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        "print(sorted(m for m in sys.modules if m == 'services' or m.startswith('services.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
