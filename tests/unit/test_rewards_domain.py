"""The rewards domain: reading acceptance, ids, rewards, decision and DLQ records (no broker)."""

from __future__ import annotations

import hashlib
import json
import pickle
import random
from typing import Any

import pytest

from services.common import attestation, evidence, schemas, signing
from services.common.events import encode_json, headers_dict
from services.common.kafka import partition_of
from services.common.policy import Policy, parse_policy
from services.common.signing import Keypair
from services.common.topics import READINGS, REWARD_DECISIONS, REWARDS
from services.rewards import readings
from services.rewards.app import broker_urls
from services.rewards.engine import State
from services.rewards.processor import (
    INTERNAL_ERROR,
    Outcome,
    decisions_record,
    handle_reading,
    reward_batch_records,
    reward_record,
)
from services.rewards.readings import UNTRUSTED_ATTESTOR, InvalidReading, parse
from tests.support.factories import INGEST, ORACLE
from tests.unit.test_rewards_samples import TS, Device, expected_reading_id, policy_document

POLICY = parse_policy(policy_document("v7"))
SOURCE_HEADERS = [("ce_id", b"abc"), ("ce_type", b"city.reading.v1")]


ATTESTORS = frozenset({INGEST.did})


def raw(value: Any) -> bytes:
    return json.dumps(value).encode()


def attested_by(value: bytes | None, attestor: Keypair = INGEST) -> list[tuple[str, bytes]]:
    """The headers of a readings record whose value `attestor` attested (as ingest does, one batch)."""
    [header] = attestation.attest(attestor, READINGS.name, [value or b""])
    return [*SOURCE_HEADERS, (attestation.HEADER, header.encode())]


def handle(
    value: bytes | None,
    policy: Policy = POLICY,
    key: bytes | None = b"device-key",
    state: State | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> Outcome:
    """Decide a record of `value`, attested by `INGEST` unless other `headers` are given."""
    return handle_reading(
        value,
        key=key,
        partition=3,
        offset=42,
        headers=attested_by(value) if headers is None else headers,
        policy=policy,
        state=state if state is not None else State(),
        consumer="rewards-test",
        attestors=ATTESTORS,
        evidence_key=ORACLE.seed,
    )


# --- ids ---------------------------------------------------------------------------------------------


def test_the_accepted_reading_carries_the_envelopes_reading_id_and_ingests_attestation():
    value = raw(Device().envelope(5))
    headers = attested_by(value)
    accepted = parse(value, headers[-1][1], ATTESTORS)
    assert accepted.reading_id == json.loads(value)["reading_id"]
    assert accepted.attestation == json.loads(headers[-1][1])


# --- rewards -----------------------------------------------------------------------------------------


def test_a_valid_reading_earns_one_schema_valid_reward_for_its_owner():
    device = Device()
    envelope = device.envelope(1)
    value = raw(envelope)
    outcome = handle(value)
    assert outcome.rejection is None
    (reward,) = outcome.rewards
    schemas.validate(REWARDS, reward)
    reward_id = hashlib.sha256(f"{envelope['reading_id']}/data.air_quality".encode()).hexdigest()
    salt = evidence.salt_for(ORACLE.seed, reward_id)
    assert reward == {
        "reward": {
            "reward_id": reward_id,
            "wallet": device.owner.did,
            "amount": 500,
            "currency": "CITY",
            "rule": "data.air_quality",
            "policy_version": "v7",
            "policy_hash": POLICY.hash,
            "reading_id": envelope["reading_id"],
            "earned_at": TS,
            "kind": "air_quality",
            "device": evidence.device_pseudonym(device.did),
            "reading_attestor": INGEST.did,
            "evidence": evidence.commitment(salt, value),
        },
        "disclosure": {
            "salt": signing.b64url_encode(salt),
            "envelope": value.decode(),
            "attestation": json.loads(attested_by(value)[-1][1]),
        },
    }
    # The public part names no value, place or registration; the disclosure still verifies: anyone it is
    # disclosed to can check who signed what.
    assert not {"values", "zone", "registration"} & set(json.dumps(reward["reward"]).split('"'))
    disclosed = json.loads(reward["disclosure"]["envelope"])
    signing.verify(disclosed["reading"], "device_id")
    signing.verify(disclosed["registration"], "owner")


def decided(outcome: Outcome, key: bytes | None = b"device-key") -> dict[str, Any]:
    """The decision line of `outcome` (the only decision of its readings record), checked as ingest and a
    recovering worker check it: attested by the oracle, schema-valid."""
    record = decisions_record([outcome.decision], 3, 42, "rewards-test", key, ORACLE)
    (line,) = attestation.lines_by(
        dict(record.headers)[attestation.HEADER], REWARD_DECISIONS.name, record.value, {ORACLE.did}
    )
    value = json.loads(line)
    schemas.validate(REWARD_DECISIONS, value)
    return value


def test_the_decision_record_is_keyed_and_partitioned_like_the_readings_record_and_attested():
    device = Device()
    envelope = device.envelope(1)
    outcome = handle(raw(envelope))
    assert outcome.records == ()  # no DLQ record
    record = decisions_record([outcome.decision], 3, 42, "rewards-test", b"device-key", ORACLE)
    assert record.topic == REWARD_DECISIONS
    # Keyed as its readings record and on its partition number: the changelog of that partition's state.
    assert (record.key, record.partition) == ("device-key", 3)
    value = decided(outcome)
    assert value["outcome"] == "rewarded"
    assert value["policy_version"] == "v7"
    assert value["rewards"] == [
        {"reward_id": outcome.rewards[0]["reward"]["reward_id"], "rule": "data.air_quality", "amount": 500}
    ]
    assert (value["partition"], value["offset"], value["decided_by"]) == (3, 42, "rewards-test")
    assert headers_dict(record.headers)["ce_id"] == envelope["reading_id"]


def test_a_readings_records_decisions_are_one_record_of_lines_in_order_refused_if_altered():
    device = Device()
    decisions = [handle(raw(device.envelope(seq))).decision for seq in (1, 2, 3)]
    record = decisions_record(decisions, 3, 42, "rewards-test", None, ORACLE)
    header = dict(record.headers)[attestation.HEADER]
    assert record.key == device.owner.did  # no key: the first decision's wallet
    assert headers_dict(record.headers)["content-type"] == "application/x-ndjson"
    lines = attestation.lines_by(header, REWARD_DECISIONS.name, record.value, {ORACLE.did})
    assert [json.loads(line)["reading_id"] for line in lines] == [d.reading_id for d in decisions]
    with pytest.raises(attestation.AttestationError, match="untrusted-attestor"):
        attestation.lines_by(header, REWARD_DECISIONS.name, record.value, {INGEST.did})
    altered = record.value.replace(b'"outcome":"rewarded"', b'"outcome":"unrewarded"', 1)
    with pytest.raises(attestation.AttestationError, match="not-attested"):
        attestation.lines_by(header, REWARD_DECISIONS.name, altered, {ORACLE.did})


def test_the_reward_record_is_keyed_by_wallet_with_cloudevent_headers():
    device = Device()
    (value,) = handle(raw(device.envelope(1))).rewards
    record = reward_record(value)
    reward = record.value["reward"]
    assert record.topic == REWARDS
    assert record.key == device.owner.did
    headers = headers_dict(record.headers)
    assert headers["ce_id"] == reward["reward_id"]
    assert headers["ce_type"] == "city.reward.v1"
    assert headers["ce_source"] == "smartcity/rewards"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_time"] == reward["earned_at"]
    assert headers["content-type"] == "application/json"


def test_rewards_go_out_as_batch_records_a_partition_each_every_line_checkable_alone():
    """Rewards whose wallets hash to one partition share a record (at most `per_record`), under one statement of
    the oracle about their public parts; each line's own attestation checks that line alone, as the ledger
    keeps it on the chain; a lone reward is a record of its own, as before batch records."""
    devices = [Device() for _ in range(12)]
    rewards = [value for d in devices for seq in (1, 2, 3) for value in handle(raw(d.envelope(seq))).rewards]
    records = reward_batch_records(ORACLE, rewards, per_record=4)
    seen = []
    for record in records:
        header = dict(record.headers)[attestation.HEADER]
        lines = attestation.record_lines(record.value)
        values = [json.loads(line) for line in lines]
        wallets = {v["reward"]["wallet"] for v in values}
        assert {partition_of(w, REWARDS.partitions) for w in wallets} == {record.partition}
        assert len(lines) <= 4 and record.key == values[0]["reward"]["wallet"]
        if len(lines) == 1:
            attested = json.loads(header)
            assert attestation.verify(attested, REWARDS.name, attestation.encode(values[0]["reward"]))
            assert headers_dict(record.headers)["content-type"] == "application/json"
        else:
            assert attestation.is_batch_record(header, record.value)
            covered = [attestation.encode(v["reward"]) for v in values]
            for part, own in zip(
                covered, attestation.verify_covered(header, REWARDS.name, covered), strict=True
            ):
                assert attestation.verify(own, REWARDS.name, part).signer == ORACLE.did
            assert headers_dict(record.headers)["content-type"] == "application/x-ndjson"
            assert headers_dict(record.headers)["ce_id"] == values[0]["reward"]["reward_id"]
            altered = [*covered[:-1], attestation.encode({**values[-1]["reward"], "amount": 10**9})]
            with pytest.raises(attestation.AttestationError, match="not-attested"):
                attestation.verify_covered(header, REWARDS.name, altered)
        seen += values
    assert sorted(v["reward"]["reward_id"] for v in seen) == sorted(r["reward"]["reward_id"] for r in rewards)
    assert any(len(attestation.record_lines(r.value)) > 1 for r in records)


def test_amounts_are_integers_of_micro_units_on_the_wire():
    device = Device()
    (value,) = handle(raw(device.envelope(1))).rewards
    record = reward_record(value)
    decoded = json.loads(encode_json(record.value))["reward"]
    assert decoded["amount"] == 500
    assert type(decoded["amount"]) is int
    assert b'"amount":500,' in encode_json(record.value)


def test_the_same_reading_gives_byte_identical_rewards():
    device = Device()
    envelope = device.envelope(9)
    value = raw(envelope)
    first, again = handle(value), handle(value)  # the same record, delivered twice
    assert decided(first) == decided(again)
    a, b = [reward_record(v) for v in first.rewards], [reward_record(v) for v in again.rewards]
    assert [encode_json(r.value) for r in a] == [encode_json(r.value) for r in b]
    assert [r.headers for r in a] == [r.headers for r in b]
    # Same JSON, other key order and spacing, attested again: the same decision and amounts; the evidence
    # commits to the very bytes ingest attested (ingest writes JCS, so a retry of it writes the same bytes).
    shuffled = dict(random.Random(1).sample(sorted(envelope.items()), len(envelope)))
    second = handle(json.dumps(shuffled, indent=2).encode())
    assert decided(first) == decided(second)
    ours, theirs = first.rewards[0]["reward"], second.rewards[0]["reward"]
    assert ours["evidence"] != theirs["evidence"]
    assert {**ours, "evidence": ""} == {**theirs, "evidence": ""}


def test_an_evidence_salt_is_libsodiums_keyed_blake2b_of_the_reward_id_as_before():
    # The salt was computed by PyNaCl (libsodium) before: a reward redelivered across that change must stay
    # byte for byte the reward already settled, so the salt must be the very bytes libsodium derives.
    from nacl.encoding import RawEncoder
    from nacl.hash import blake2b

    rng = random.Random(7)
    for _ in range(50):
        seed, rid = rng.randbytes(32), rng.randbytes(32).hex()
        libsodium = blake2b(
            rid.encode(), key=seed, person=b"evidence-salt", digest_size=16, encoder=RawEncoder
        )
        assert evidence.salt_for(seed, rid) == libsodium
    assert evidence.salt_for(bytes(32), "a" * 64).hex() == "c9303305556e6960e1e7f157fe283364"


def test_a_redelivered_reading_gets_the_same_rewards_and_no_second_decision():
    device = Device()
    state = State()
    value = raw(device.envelope(1))
    first = handle(value, state=state)
    again = handle(value, state=state, policy=parse_policy(policy_document("v8")))
    assert again.replayed and again.records == ()
    assert again.rewards == first.rewards  # the version of the first decision, not the policy now in force
    assert again.rewards[0]["reward"]["policy_version"] == "v7"


def test_a_reading_that_earns_nothing_has_a_decision_with_the_reason_and_is_not_dead_lettered():
    device = Device(kind="noise")
    outcome = handle(raw(device.envelope(1, values={"db_a": 50.0})))
    assert outcome.rewards == () and outcome.rejection is None and outcome.records == ()
    value = decided(outcome)
    assert value["outcome"] == "unrewarded"
    assert [r["code"] for r in value["reasons"]] == ["unknown-kind"]


# --- rejections ----------------------------------------------------------------------------------------


def test_malformed_json_is_rejected():
    for value in (b"{not json", b"\xff\xfe", None):
        assert handle(value).rejection == readings.MALFORMED_JSON


def test_an_envelope_that_does_not_fit_the_schema_is_rejected():
    device = Device()
    missing = device.envelope(1)
    del missing["registration"]
    extra = {**device.envelope(1), "bonus": 1}
    bad_seq = device.envelope(1)
    bad_seq["reading"] = {**bad_seq["reading"], "seq": -1}
    for envelope in (missing, extra, bad_seq, [], "reading"):
        outcome = handle(raw(envelope))
        assert outcome.rejection == readings.SCHEMA, envelope


def test_a_reading_id_other_than_the_schemas_is_rejected():
    device = Device()
    envelope = {**device.envelope(1), "reading_id": expected_reading_id(device.did, 2)}
    assert handle(raw(envelope)).rejection == readings.READING_ID


def test_a_record_changed_after_ingest_attested_it_is_rejected():
    device = Device()
    value = raw(device.envelope(1))
    tampered = device.envelope(1)
    tampered["reading"] = {**tampered["reading"], "values": {"pm25": 999.0}}
    outcome = handle(raw(tampered), headers=attested_by(value))
    assert outcome.rejection == "not-attested" and outcome.rewards == ()


def test_an_unattested_record_or_one_attested_by_a_key_without_the_role_is_rejected():
    device = Device()
    value = raw(device.envelope(1))
    assert handle(value, headers=SOURCE_HEADERS).rejection == "unattested"
    # A perfectly signed reading of a registered device, attested by the attacker's own key.
    mallory = Keypair.generate()
    assert handle(value, headers=attested_by(value, mallory)).rejection == UNTRUSTED_ATTESTOR
    forged_statement = json.loads(attested_by(value)[-1][1])
    forged_statement["sig"] = mallory.sign(attestation.statement_of(forged_statement))["sig"]
    headers = [*SOURCE_HEADERS, (attestation.HEADER, json.dumps(forged_statement).encode())]
    assert handle(value, headers=headers).rejection == "bad-attestation-signature"
    # The good reading beside them is still decided.
    assert handle(value).rejection is None


def test_a_registration_of_another_device_is_rejected():
    device = Device()
    other = Device(owner=device.owner)
    envelope = {**device.envelope(1), "registration": other.registration}
    assert handle(raw(envelope)).rejection == readings.DEVICE_MISMATCH


def test_an_envelope_owner_other_than_the_registrations_is_rejected():
    device = Device()
    envelope = {**device.envelope(1), "owner": Keypair.generate().did}
    assert handle(raw(envelope)).rejection == readings.OWNER_MISMATCH


def test_parse_raises_with_a_stable_reason_and_a_detail():
    value = raw({"reading_id": "x"})
    with pytest.raises(InvalidReading) as caught:
        parse(value, attested_by(value)[-1][1], ATTESTORS)
    assert caught.value.reason == readings.SCHEMA
    assert str(caught.value).startswith("schema: ")
    assert caught.value.detail


def test_a_rejected_reading_becomes_one_dlq_record_with_the_reason():
    device = Device()
    value = raw(device.envelope(1))
    outcome = handle(value, key=device.did.encode(), headers=attested_by(value, Keypair.generate()))
    assert outcome.rewards == ()
    (record,) = outcome.records
    assert record.topic == READINGS.dlq
    assert record.key == device.did
    schemas.validate(READINGS.dlq, record.value)
    assert record.value["reason"].startswith("untrusted-attestor: ")
    assert record.value["consumer"] == "rewards-test"
    assert record.value["source_topic"] == READINGS.name
    assert (record.value["partition"], record.value["offset"]) == (3, 42)
    assert record.value["value"] == value.decode()
    headers = dict(record.headers)
    assert headers["ce_id"] == b"abc"
    assert headers["dlq_reason"] == record.value["reason"].encode()


def test_an_unexpected_error_dead_letters_the_reading_instead_of_stopping():
    class BrokenKinds(dict):
        def get(self, *args: Any) -> Any:
            raise ZeroDivisionError("oops")

    broken = Policy(
        version="v1", device_per_hour=1, wallet_per_day=1, micro_city_per_kg_co2e=1, kinds=BrokenKinds()
    )
    outcome = handle(raw(Device().envelope(1)), broken)
    assert outcome.rejection == INTERNAL_ERROR
    assert outcome.records[0].value["reason"] == "internal-error: ZeroDivisionError: oops"


def test_broker_urls_are_faust_kafka_urls():
    assert broker_urls("127.0.0.1:9092") == ["kafka://127.0.0.1:9092"]
    assert broker_urls("a:1, b:2,") == ["kafka://a:1", "kafka://b:2"]


def test_a_rejection_survives_the_trip_back_from_a_worker_process() -> None:
    rejection = InvalidReading(UNTRUSTED_ATTESTOR, "did:key:z6Mk... does not hold the ingest-attestor role")
    again = pickle.loads(pickle.dumps(rejection))
    assert (again.reason, again.detail, str(again)) == (rejection.reason, rejection.detail, str(rejection))
