"""From one ``city.readings.v1`` record to the records it produces, independent of Faust.

A verified reading not decided before is decided under the current policy (`engine.decide`), the decision is
folded into the state, and it becomes one line of the ``city.reward-decisions.v1`` record of its readings record
(`decisions_record`: same key and partition, attested by the rewards oracle) and one ``city.rewards.v1`` record
per payment (keyed by wallet, CloudEvents headers, JCS-encoded value). A reading decided before (a redelivery) yields the rewards of its earlier decision again, identical,
and no new decision. A record that cannot be verified becomes one ``city.readings.dlq.v1`` record naming
the reason. Apart from the DLQ record's ``failed_at``, the output depends on nothing but the input, the
policy and the decisions before it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.common import attestation, evidence, kinds, signing
from services.common.consents import InForce, parse_time
from services.common.dead_letters import dlq_record
from services.common.events import CONTENT_TYPE, NDJSON, cloudevent_headers
from services.common.ids import reward_id
from services.common.kafka import OutgoingRecord, attested, batch_record, partition_of
from services.common.policy import CURRENCY, Policy
from services.common.signing import Keypair
from services.common.topics import READINGS, REWARD_DECISIONS, REWARDS
from services.rewards.engine import Decision, State, decide
from services.rewards.readings import AcceptedReading, InvalidReading, parse

log = logging.getLogger(__name__)

REWARD_EVENT_TYPE = "city.reward.v1"
REWARDS_BATCH_EVENT_TYPE = "city.rewards-batch.v1"
DECISION_EVENT_TYPE = "city.reward-decision.v1"
DECISIONS_BATCH_EVENT_TYPE = "city.reward-decisions-batch.v1"
EVENT_SOURCE = "smartcity/rewards"
INTERNAL_ERROR = "internal-error"

Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


@dataclass(frozen=True)
class Outcome:
    """What one readings record turned into.

    `records` go out first (the DLQ record, if any) with the decisions record of the readings record (a line
    of `decision`, unless `replayed`), `rewards` only once the broker acknowledged them, so that no reward
    exists whose decision a restarted worker could not read back.
    """

    records: tuple[OutgoingRecord, ...]
    rewards: tuple[dict[str, Any], ...] = ()
    decision: Decision | None = None
    replayed: bool = False
    rejection: str | None = None
    received_at: str | None = None


def handle_reading(
    raw: bytes | None,
    *,
    key: bytes | None,
    partition: int,
    offset: int,
    headers: Headers,
    policy: Policy,
    state: State,
    consumer: str,
    attestors: Collection[str],
    evidence_key: bytes,
    now: float = 0.0,
    parsed: AcceptedReading | InvalidReading | None = None,
    consents: ConsentLookup | None = None,
) -> Outcome:
    """Decide one readings record (changing `state`), or dead-letter it with the reason.

    `consents` answers the owner's consent in force at the reading's time (`ConsentView.at`; None: none asked,
    as in a pipeline without consents); the decision records the answer, so a replay gives the same decision.
    `parsed` is what `readings.parse` made of `raw`, when that was done already (in a worker process);
    `attestors` are the keys holding the ingest-attestor role; `evidence_key` salts the rewards' commitments.
    """
    try:
        if isinstance(parsed, InvalidReading):
            raise parsed
        reading = (
            parsed if parsed is not None else parse(raw, header_value(headers, attestation.HEADER), attestors)
        )
        earlier = state.recent.get(reading.reading_id)
        if earlier is not None:
            rewards = tuple(
                reward(reading, rule, amount, earlier.policy_version, earlier.policy_hash, evidence_key)
                for rule, amount in earlier.payments
            )
            return Outcome(records=(), rewards=rewards, decision=earlier, replayed=True)
        decision = decide(reading, policy, state, consent_of(reading, consents))
    except InvalidReading as exc:
        reason, detail = exc.reason, str(exc)
    except Exception as exc:
        # A bug must not stall the partition: the record goes to the DLQ (to be replayed once fixed).
        log.exception("unexpected error on %s[%d]@%d", READINGS.name, partition, offset)
        reason, detail = INTERNAL_ERROR, f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"
    else:
        state.apply(decision, now)
        rewards = tuple(
            reward(reading, rule, amount, decision.policy_version, decision.policy_hash, evidence_key)
            for rule, amount in decision.payments
        )
        return Outcome(
            records=(),
            rewards=rewards,
            decision=decision,
            received_at=reading.received_at,
        )
    dead = dlq_record(
        READINGS,
        key=key,
        raw=raw,
        partition=partition,
        offset=offset,
        reason=detail,
        consumer=consumer,
        headers=_header_pairs(headers),
    )
    return Outcome(records=(dead,), rejection=reason)


ConsentLookup = Callable[[str, str, datetime], InForce]
"""(subject, category, time) -> the consent the subject gave the city for the category in force then."""


def consent_of(reading: AcceptedReading, consents: ConsentLookup | None) -> tuple[str, InForce] | None:
    """The consent category of the reading's kind (the registry's, as ingest maps it) and its owner's consent
    to it in force at the reading's time; None without `consents`."""
    if consents is None:
        return None
    try:
        category = kinds.category(reading.reading["kind"])
    except kinds.UnknownKindError:
        return "unknown-kind", InForce("none")  # no category to consent to: not consented
    return category, consents(reading.owner, category, parse_time(reading.ts))


def reward(
    reading: AcceptedReading,
    rule: str,
    amount: int,
    policy_version: str,
    policy_hash: str,
    evidence_key: bytes,
) -> dict[str, Any]:
    """The ``city.rewards.v1`` value (schemas/rewards.v1.json) of `rule` paying `amount` for `reading` to its
    owner, under the policy of `policy_version` and `policy_hash`: the public reward, committing to the
    readings envelope under a salt keyed by `evidence_key` (`services.common.evidence`), and the disclosure
    that opens the commitment."""
    rid = reward_id(reading.reading_id, rule)
    salt = evidence.salt_for(evidence_key, rid)
    public: dict[str, Any] = {
        "reward_id": rid,
        "amount": amount,
        "currency": CURRENCY,
        "rule": rule,
        "policy_version": policy_version,
        "policy_hash": policy_hash,
        "reading_attestor": reading.attestation["signer"],
        "evidence": evidence.commitment(salt, reading.envelope),
        **evidence.public_facts(
            {
                "reading_id": reading.reading_id,
                "owner": reading.owner,
                "reading": reading.reading,
                **({"person": reading.person} if reading.person is not None else {}),
            }
        ),
    }
    disclosure = {
        "salt": signing.b64url_encode(salt),
        "envelope": reading.envelope.decode(),
        "attestation": dict(reading.attestation),
    }
    return {"reward": public, "disclosure": disclosure}


def decisions_record(
    decisions: Sequence[Decision],
    partition: int,
    offset: int,
    decided_by: str,
    key: bytes | None,
    oracle: Keypair,
) -> OutgoingRecord:
    """The ``city.reward-decisions.v1`` record of app `decided_by`'s decisions on the readings record at
    `offset` of readings partition `partition`: one decision's JCS bytes a line, in the readings' order,
    attested by `oracle` (`kafka.batch_record`); keyed as the readings record (`key`; the first decision's
    wallet without one) and on the same partition number (the changelog of that partition's state); a
    CloudEvent whose id and time are the first reading's. Raises ValueError for no decisions."""
    if not decisions:
        raise ValueError("a decisions record holds at least one decision")
    lines = [
        attestation.encode({**d.as_json(partition, offset), "decided_by": decided_by}) for d in decisions
    ]
    first = decisions[0]
    headers = cloudevent_headers(
        DECISION_EVENT_TYPE if len(lines) == 1 else DECISIONS_BATCH_EVENT_TYPE,
        EVENT_SOURCE,
        first.reading_id,
        first.ts,
        content_type=CONTENT_TYPE if len(lines) == 1 else NDJSON,
    )
    record_key = key.decode(errors="replace") if key else first.wallet
    return batch_record(oracle, REWARD_DECISIONS, record_key, partition, lines, headers)


def reward_record(reward: dict[str, Any]) -> OutgoingRecord:
    """The ``city.rewards.v1`` record of a reward alone (unattested): keyed by wallet, a CloudEvent whose id is
    the reward id.

    ``ce_time`` is when the reward was earned (not when it was sent), so a redelivery is identical.
    """
    public = reward["reward"]
    return OutgoingRecord(
        topic=REWARDS,
        key=public["wallet"],
        value=reward,
        headers=cloudevent_headers(REWARD_EVENT_TYPE, EVENT_SOURCE, public["reward_id"], public["earned_at"]),
    )


def reward_batch_records(
    oracle: Keypair, rewards: Sequence[dict[str, Any]], per_record: int
) -> list[OutgoingRecord]:
    """`rewards` (``city.rewards.v1`` values) as batch records attested by `oracle`: those whose wallets hash to
    one partition together, in order, at most `per_record` a record, a value's JCS bytes a line under one
    statement about their public parts (`attestation.attest_record`; the ledger checks each record's once,
    and each reward keeps its own attestation on the chain). A record of one reward is `reward_record`'s; a
    batch record is keyed by its first reward's wallet and its CloudEvent id is that reward's id."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for value in rewards:
        by_partition.setdefault(partition_of(value["reward"]["wallet"], REWARDS.partitions), []).append(value)
    singles: list[OutgoingRecord] = []
    batches: list[OutgoingRecord] = []
    for partition, values in sorted(by_partition.items()):
        for start in range(0, len(values), per_record):
            chunk = values[start : start + per_record]
            first = chunk[0]["reward"]
            if len(chunk) == 1:
                singles.append(replace(reward_record(chunk[0]), partition=partition))
                continue
            headers = cloudevent_headers(
                REWARDS_BATCH_EVENT_TYPE,
                EVENT_SOURCE,
                first["reward_id"],
                first["earned_at"],
                content_type=NDJSON,
            )
            covered = [attestation.encode(REWARDS.attested_part(value)) for value in chunk]
            lines = [
                attestation.encode_with(value, {"reward": part})
                for value, part in zip(chunk, covered, strict=True)
            ]
            batches.append(batch_record(oracle, REWARDS, first["wallet"], partition, lines, headers, covered))
    # The lone ones share one statement, each record with its own path (`kafka.attested`).
    return [*(attested(oracle, singles) if singles else []), *batches]


def header_value(headers: Headers, name: str) -> bytes | None:
    """The value of header `name` (the last one, as Kafka clients read headers), or None."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    found = None
    for key, value in pairs:
        if key == name:
            found = value
    return found


def _header_pairs(headers: Headers) -> list[tuple[str, bytes]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    return [(k, v or b"") for k, v in pairs]
