"""The decision engine (pure): what a verified reading earns under a policy, given what came before it.

`decide` judges a reading against the policy and the `State` (caps, stuck sensors, impossible values,
outliers against the zone's median and MAD in the reading's minute, bursts, clock skew, lateness, behaviour no
city device attested). The worker keeps a state per readings partition, so the zone's minute is the
partition's share of it (`services.rewards.zones` sums the shares for publication) and returns a `Decision`: the payments per rule, and the reason for everything not paid.
`State.apply` folds a decision into the state. The state is a pure function of the sequence of decisions
applied, which is what makes it durable: the worker publishes every decision to ``city.reward-decisions.v1``
before any reward it implies, and a restarted worker rebuilds the state by applying the decisions read back
from that topic.

A reading decided once is never decided again: `State.recent` keeps the latest decisions by reading id,
so a redelivered reading (a replay after a crash, an ingest retry) gets the very same decision, hence the
same reward ids and amounts. A reading whose sequence number is not above its device's last is refused
(``stale-sequence``) unless it is such a recent duplicate.

Windows and caps use the reading's own time (UTC), never the clock, so a decision does not depend on when
it is made; the clock-skew check keeps a device from escaping its caps by signing a later time, and the
policy's ``late_s`` bounds how far back a reading buffered offline may reach (the wallet's day cap still holds).
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from services.common import receipts
from services.common.consents import InForce
from services.common.events import rfc3339
from services.common.ids import reward_id
from services.common.policy import DEFAULT_K_ANONYMITY, KindPolicy, Policy
from services.rewards.readings import AcceptedReading

STALE_SEQUENCE = "stale-sequence"
UNKNOWN_KIND = "unknown-kind"
CLOCK_SKEW = "clock-skew"
TOO_LATE = "too-late"
UNATTESTED = "unattested"
IMPOSSIBLE_VALUE = "impossible-value"
BURST = "burst"
STUCK_SENSOR = "stuck-sensor"
OUTLIER = "outlier"
NOTHING_TO_PAY = "nothing-to-pay"
CAP_DEVICE_HOUR = "cap-device-hour"
CAP_WALLET_DAY = "cap-wallet-day"
CAP_PERSON_DAY = "cap-person-day"
UNVERIFIED_PERSON = "unverified-person"
NO_CONSENT = "no-consent"
REASONS = (
    STALE_SEQUENCE,
    UNKNOWN_KIND,
    CLOCK_SKEW,
    TOO_LATE,
    UNATTESTED,
    IMPOSSIBLE_VALUE,
    BURST,
    STUCK_SENSOR,
    OUTLIER,
    NOTHING_TO_PAY,
    CAP_DEVICE_HOUR,
    CAP_WALLET_DAY,
    CAP_PERSON_DAY,
    UNVERIFIED_PERSON,
    NO_CONSENT,
)

WINDOW_S = 60  # zone statistics: one-minute tumbling windows
MAD_SCALE = 1.4826  # MAD x this estimates the standard deviation of normal data
OUTLIER_SAMPLE = 256  # median and MAD come from the first values of a window: bounded cost, deterministic
BURST_MEMORY = (
    128  # latest reading times remembered per device (schemas/policy.v1.json caps max_readings below)
)
MAX_CLOCK_SKEW_S = 900  # a reading's time may be this much ahead of when ingest received it
KEEP_HOURS = 48  # device caps kept this many hours behind the latest reading time
KEEP_DAYS = 2  # wallet caps kept this many days behind it
WINDOW_KEEP_S = 120.0
"""Windows sent to the zone stage are kept this long behind the latest reading time (or the clock): for the
outlier check of readings a little late. Later ones find no window (not judged), and the zone stage has
published theirs already. Short, since a partition's snapshot holds every window kept."""


@lru_cache(maxsize=65536)
def epoch(ts: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC time (memoised: a reading's times are read several times)."""
    return datetime.fromisoformat(ts).timestamp()


@dataclass(frozen=True)
class Reason:
    """Why a reading (or one rule of it) was not paid, or paid less: a stable code and a sentence."""

    code: str
    detail: str
    rule: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = {"code": self.code, "detail": self.detail}
        if self.rule is not None:
            out["rule"] = self.rule
        return out


@dataclass(frozen=True)
class Decision:
    """What one reading earned under one policy version, and why not more."""

    reading_id: str
    device_id: str
    seq: int
    wallet: str
    kind: str
    zone: str
    ts: str
    values: Mapping[str, float]
    policy_version: str
    policy_hash: str
    payments: tuple[tuple[str, int], ...]
    reasons: tuple[Reason, ...]
    counted: bool  # its values passed the quality checks and joined the zone's window
    person: str | None = None  # the person ingest attested the wallet bound to (None: not bound)
    consent: Mapping[str, Any] | None = None
    """The owner's consent it was decided on (`InForce.as_json`: category, status, the signed change's time and
    id); None: decided without asking (a pipeline without consents)."""
    k_anonymity: int = DEFAULT_K_ANONYMITY
    """Its policy's k: fewest distinct devices its zone's window is published over (not in the record)."""

    @property
    def at(self) -> float:
        return epoch(self.ts)

    def as_json(self, partition: int, offset: int) -> dict[str, Any]:
        """The ``city.reward-decisions.v1`` value, naming the readings record it decides."""
        return (
            {
                "reading_id": self.reading_id,
                "device_id": self.device_id,
                "seq": self.seq,
                "wallet": self.wallet,
                "kind": self.kind,
                "zone": self.zone,
                "ts": self.ts,
                "values": dict(self.values),
                "policy_version": self.policy_version,
                "policy_hash": self.policy_hash,
                "outcome": "rewarded" if self.payments else "unrewarded",
                "rewards": [
                    {"reward_id": reward_id(self.reading_id, rule), "rule": rule, "amount": amount}
                    for rule, amount in self.payments
                ],
                "reasons": [reason.as_json() for reason in self.reasons],
                "counted": self.counted,
                "partition": partition,
                "offset": offset,
            }
            | ({"person": self.person} if self.person is not None else {})
            | ({"consent": dict(self.consent)} if self.consent is not None else {})
        )

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Decision:
        """The decision of a (schema-valid) ``city.reward-decisions.v1`` value."""
        return cls(
            reading_id=value["reading_id"],
            device_id=value["device_id"],
            seq=value["seq"],
            wallet=value["wallet"],
            kind=value["kind"],
            zone=value["zone"],
            ts=value["ts"],
            values=value["values"],
            policy_version=value["policy_version"],
            policy_hash=value["policy_hash"],
            payments=tuple((r["rule"], r["amount"]) for r in value["rewards"]),
            reasons=tuple(Reason(r["code"], r["detail"], r.get("rule")) for r in value["reasons"]),
            counted=value["counted"],
            person=value.get("person"),
            consent=value.get("consent"),
        )


@dataclass
class Device:
    """What the engine remembers of a device."""

    max_seq: int
    last_values: tuple[tuple[str, float], ...] = ()
    repeats: int = 0
    times: list[float] = field(default_factory=list)  # the latest BURST_MEMORY reading times, sorted


@dataclass
class ZoneWindow:
    """One zone's readings of one kind in one minute: every value, and a sorted sample for median/MAD; the
    distinct devices that sent them, and the policy's k (see `summary`)."""

    zone: str
    kind: str
    start: int
    count: int = 0
    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sample: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    devices: set[str] = field(default_factory=set)
    value_devices: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    k: int = DEFAULT_K_ANONYMITY  # the k of the latest reading's policy
    dirty: bool = False  # changed since last published
    shown: bool = False
    """Published with its values (not suppressed): final from then on. A later publication would differ from it
    only by the late readings, and subtracting the two would show those readings, one person's even."""
    touched: float = 0.0  # wall clock of the last change (only decides when to publish)
    _robust: dict[str, tuple[int, float, float]] = field(default_factory=dict)

    def add(
        self, values: Mapping[str, float], now: float, device: str = "", k: int = DEFAULT_K_ANONYMITY
    ) -> None:
        self.count += 1
        self.devices.add(device)
        self.k = k
        for name, value in values.items():
            self.values[name].append(value)
            self.value_devices[name].add(device)
            sample = self.sample[name]
            if len(sample) < OUTLIER_SAMPLE:
                bisect.insort(sample, value)
        self.dirty = True
        self.touched = now

    def as_partial(self, partition: int) -> dict[str, Any]:
        """The ``city.zone-partials.v1`` value of this window as readings partition `partition` holds it: its
        whole content so far (a later partial of the same window replaces it at the zone stage)."""
        return {
            "zone": self.zone,
            "kind": self.kind,
            "window_start": self.start,
            "partition": partition,
            "k": self.k,
            "count": self.count,
            "values": {name: list(values) for name, values in self.values.items()},
            "devices": sorted(self.devices),
            "value_devices": {name: sorted(devices) for name, devices in self.value_devices.items()},
        }

    def merge(self, partial: Mapping[str, Any]) -> None:
        """Add a partition's partial (`as_partial`) to this window: what the zone stage publishes sums every
        readings partition's share of the zone's minute."""
        self.count += partial["count"]
        self.k = partial["k"]
        self.devices.update(partial["devices"])
        for name, values in partial["values"].items():
            self.values[name].extend(values)
        for name, devices in partial["value_devices"].items():
            self.value_devices[name].update(devices)

    def robust(self, name: str) -> tuple[int, float, float]:
        """(n, median, MAD) of the window's sample of value `name`."""
        sample = self.sample.get(name, [])
        cached = self._robust.get(name)
        if cached is None or cached[0] != len(sample):
            if not sample:
                return 0, 0.0, 0.0
            median = _median(sample)
            mad = _median(sorted(abs(v - median) for v in sample))
            cached = self._robust[name] = (len(sample), median, mad)
        return cached

    def summary(self) -> dict[str, Any]:
        """The ``city.zone-stats.v1`` value: count, mean, min, max, p50 and p95 of each value, over at least
        `k` distinct devices (k-anonymity).

        A window of fewer than `k` devices is published suppressed: ``"suppressed": true`` and `k`, with no
        count of readings or devices and no values, so that one person's trip or meter is never shown (nor
        how many readings they sent). In a window shown, a value fewer than `k` devices measured (an optional
        value) is left out, named in ``suppressed_values``: its min, max or p95 would be one device's."""
        window = {
            "zone": self.zone,
            "kind": self.kind,
            "window_start": rfc3339(datetime.fromtimestamp(self.start, UTC)),
            "window_end": rfc3339(datetime.fromtimestamp(self.start + WINDOW_S, UTC)),
            "k": self.k,
        }
        if len(self.devices) < self.k:
            return {**window, "suppressed": True}
        stats, hidden = {}, []
        for name, values in sorted(self.values.items()):
            if len(self.value_devices[name]) < self.k:
                hidden.append(name)
                continue
            ordered = sorted(values)
            stats[name] = {
                "count": len(ordered),
                "mean": math.fsum(ordered) / len(ordered),
                "min": ordered[0],
                "max": ordered[-1],
                "p50": _nearest_rank(ordered, 0.50),
                "p95": _nearest_rank(ordered, 0.95),
            }
        shown = {
            **window,
            "suppressed": False,
            "count": self.count,
            "devices": len(self.devices),
            "values": stats,
        }
        return {**shown, "suppressed_values": hidden} if hidden else shown


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _nearest_rank(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q of the values at or below it."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class State:
    """Everything decisions depend on; changed only by `apply` (and pruned of what no decision needs)."""

    def __init__(self, recent_limit: int = 20000) -> None:
        self.recent_limit = recent_limit
        self.recent: OrderedDict[str, Decision] = OrderedDict()
        self.devices: dict[str, Device] = {}
        self.device_hour: dict[tuple[str, int], int] = {}  # micro-CITY paid per (device, hour)
        self.wallet_day: dict[tuple[str, int], int] = {}  # micro-CITY paid per (wallet, day)
        self.person_day: dict[tuple[str, int], int] = {}  # micro-CITY paid per (person, day)
        # Per (person, day), the wallets that person earned (or tried to, within the limit) with, in order.
        self.person_wallets: dict[tuple[str, int], list[str]] = {}
        self.windows: dict[tuple[str, str, int], ZoneWindow] = {}
        self.watermark = 0.0  # the latest reading time applied
        self.touched = 0.0  # wall clock of the latest decision applied (only decides when windows close)

    def remember(self, decision: Decision) -> bool:
        """Know `decision` by its reading id (a redelivery gets it again); False if it was known already."""
        if decision.reading_id in self.recent:
            return False
        self.recent[decision.reading_id] = decision
        if len(self.recent) > self.recent_limit:
            self.recent.popitem(last=False)
        return True

    def apply(self, decision: Decision, now: float = 0.0) -> None:
        """Fold `decision` into the state; a decision already applied is ignored."""
        if not self.remember(decision):
            return
        if any(reason.code == STALE_SEQUENCE for reason in decision.reasons):
            return  # a replayed old reading: nothing about the device changes
        at = decision.at
        self.watermark = max(self.watermark, at)
        self.touched = max(self.touched, now)
        device = self.devices.get(decision.device_id)
        if device is None:
            device = self.devices[decision.device_id] = Device(max_seq=decision.seq)
        device.max_seq = max(device.max_seq, decision.seq)
        if any(reason.code == NO_CONSENT for reason in decision.reasons):
            return  # data its owner did not consent to: nothing of it is used, not even its device's memory
        values = tuple(sorted(decision.values.items()))
        device.repeats = device.repeats + 1 if values == device.last_values else 1
        device.last_values = values
        bisect.insort(device.times, at)
        if len(device.times) > BURST_MEMORY:
            del device.times[0]
        if decision.person is not None and not any(r.code == UNVERIFIED_PERSON for r in decision.reasons):
            wallets = self.person_wallets.setdefault((decision.person, int(at // 86400)), [])
            if decision.wallet not in wallets:
                wallets.append(decision.wallet)
        paid = sum(amount for _, amount in decision.payments)
        if paid:
            hour = (decision.device_id, int(at // 3600))
            self.device_hour[hour] = self.device_hour.get(hour, 0) + paid
            day = (decision.wallet, int(at // 86400))
            self.wallet_day[day] = self.wallet_day.get(day, 0) + paid
            if decision.person is not None:
                person_day = (decision.person, int(at // 86400))
                self.person_day[person_day] = self.person_day.get(person_day, 0) + paid
        if decision.counted:
            start = int(at // WINDOW_S) * WINDOW_S
            key = (decision.zone, decision.kind, start)
            window = self.windows.get(key)
            if window is None:
                window = self.windows[key] = ZoneWindow(decision.zone, decision.kind, start)
            window.add(decision.values, now, decision.device_id, decision.k_anonymity)

    def closable(self, now: float, grace_s: float, idle_s: float, caught_up: bool) -> Iterator[ZoneWindow]:
        """Windows with news to publish: over (their end plus `grace_s` passed in readings' time), or, once
        its partition has nothing more to read (`caught_up`), ended by the clock and idle for `idle_s` (the
        last readings of a quiet zone). A partition with a backlog closes windows by readings' time only, so
        a window's share is the same however fast or often its partition is read (one worker or several)."""
        for window in list(self.windows.values()):
            if not window.dirty or window.shown:
                continue
            due = window.start + WINDOW_S + grace_s
            if due <= self.watermark or (caught_up and due <= now and window.touched + idle_s <= now):
                yield window

    def closed_through(self, now: float, grace_s: float, idle_s: float, caught_up: bool) -> float:
        """The reading time before which every window of this state is closed (`closable` yielded it, or
        it will not get readings but late ones): the watermark less the grace, or, once no decision came
        for `idle_s` and its partition has nothing more to read (`caught_up`), the clock less the grace (a
        quiet partition holds no window open; one with a backlog does, as its backlog may be old readings).
        A window still open holds it back to its start."""
        closed = self.watermark - grace_s
        if caught_up and self.touched + idle_s <= now:
            closed = max(closed, now - grace_s)
        for window in self.windows.values():
            if window.dirty:
                closed = min(closed, float(window.start))
        return closed

    def prune(self, keep_s: float = WINDOW_KEEP_S) -> None:
        """Forget what no decision should need any more: published windows, hours and days long past.

        Everything is kept by readings' time, not the clock's: a window of a backlog hours old, once sent,
        may still get readings of its partition, and forgetting it would start it again from them alone
        (its next share would replace the whole one). Hours and days are kept well behind the latest reading
        time: readings of one partition may be hours behind another's (a backlog, a new consumer group), and
        a cap forgotten too early would pay its readings again.
        """
        horizon = self.watermark - keep_s
        for key, window in list(self.windows.items()):
            if (not window.dirty or window.shown) and window.start + WINDOW_S < horizon:
                del self.windows[key]
        hour = int(self.watermark // 3600) - KEEP_HOURS
        self.device_hour = {k: v for k, v in self.device_hour.items() if k[1] >= hour}
        day = int(self.watermark // 86400) - KEEP_DAYS
        self.wallet_day = {k: v for k, v in self.wallet_day.items() if k[1] >= day}
        self.person_day = {k: v for k, v in self.person_day.items() if k[1] >= day}
        self.person_wallets = {k: v for k, v in self.person_wallets.items() if k[1] >= day}


def decide(
    reading: AcceptedReading, policy: Policy, state: State, consent: tuple[str, InForce] | None = None
) -> Decision:
    """The decision on a reading not decided before (see `State.recent` for those that were).

    `consent` is the owner's consent in force at the reading's time, (category, answer), as the caller's
    consent view gave it (`ConsentView.at`); None decides without (a pipeline that has no consents). A
    reading its owner had not consented to at its time earns nothing (``no-consent``), and its values are
    neither kept in the decision nor used (windows, the device's memory)."""
    r = reading.reading
    values = r["values"]
    quality = _quality(reading, policy, state)
    refused = _no_consent(consent, quality)
    if refused is not None:
        quality, values = [refused], {}
    kind = policy.kinds.get(r["kind"])
    payments: list[tuple[str, int]] = []
    reasons = quality
    if not quality and kind is not None:
        unverified = _unverified_person(reading, policy, state)
        payments, reasons = ([], [unverified]) if unverified else _pay(reading, policy, kind, state)
    return Decision(
        reading_id=reading.reading_id,
        device_id=r["device_id"],
        seq=r["seq"],
        wallet=reading.owner,
        kind=r["kind"],
        zone=r["zone"],
        ts=r["ts"],
        values=values,
        policy_version=policy.version,
        policy_hash=policy.hash,
        payments=tuple(payments),
        reasons=tuple(reasons),
        counted=not quality,
        person=reading.person,
        consent=None if consent is None else consent[1].as_json(consent[0]),
        k_anonymity=policy.k_anonymity,
    )


def _no_consent(consent: tuple[str, InForce] | None, quality: list[Reason]) -> Reason | None:
    """Why the reading may not be used, its owner's consent at its time not allowing it; None if it may (or
    it is a replayed old reading, which changes nothing anyway)."""
    if consent is None or consent[1].allows or any(r.code == STALE_SEQUENCE for r in quality):
        return None
    category, answer = consent
    why = {
        "revoked": "revoked before it",
        "expired": "its grant had ended (until) before it",
        "none": "no grant signed before it",
        "unknown": "not known (older than the consent history kept)",
    }.get(answer.status, answer.status)
    return Reason(
        NO_CONSENT,
        f"the owner had not consented to share {category!r} data with the city at the reading's time: {why}",
    )


def _quality(reading: AcceptedReading, policy: Policy, state: State) -> list[Reason]:
    """Every reason the reading as a whole earns nothing (empty if it passes)."""
    r = reading.reading
    device = state.devices.get(r["device_id"])
    if device is not None and r["seq"] <= device.max_seq:
        return [Reason(STALE_SEQUENCE, f"seq {r['seq']} is not above {device.max_seq}, the device's last")]
    kind = policy.kinds.get(r["kind"])
    if kind is None:
        return [Reason(UNKNOWN_KIND, f"policy {policy.version} has no rewards for kind {r['kind']!r}")]
    at = epoch(r["ts"])
    skew = at - epoch(reading.received_at)
    if skew > MAX_CLOCK_SKEW_S:
        return [
            Reason(
                CLOCK_SKEW,
                f"the reading's time is {skew:.0f}s ahead of its receipt (at most {MAX_CLOCK_SKEW_S}s)",
            )
        ]
    if -skew > kind.late_s:
        # Buffered offline for longer than the policy pays for (it still counts as data).
        return [
            Reason(
                TOO_LATE,
                f"taken {-skew:.0f}s before its receipt; policy {policy.version} pays readings at most "
                f"{kind.late_s}s late",
            )
        ]
    if not kind.attested(r):
        # Behaviour the citizen alone claims: not paid, nor counted (a flood of such claims must not move the
        # zone's statistics the outlier check judges attested readings by).
        return [
            Reason(
                UNATTESTED,
                f"policy {policy.version} pays {r['kind']} only when a city device attests it (a receipt of a "
                f"{' or '.join(kind.attested_by)}); this reading carries "
                + ("none" if receipts.attester_class(r) is None else f"a {receipts.attester_class(r)}'s"),
            )
        ]
    values = r["values"]
    reasons = [Reason(IMPOSSIBLE_VALUE, detail) for detail in _impossible(kind, values)]
    if device is not None:
        recent = bisect.bisect_right(device.times, at) - bisect.bisect_right(
            device.times, at - kind.burst.per_seconds
        )
        if recent >= kind.burst.max_readings:
            reasons.append(
                Reason(
                    BURST,
                    f"{recent + 1} readings within {kind.burst.per_seconds}s"
                    f" (at most {kind.burst.max_readings})",
                )
            )
        if (
            kind.stuck_repeats is not None
            and device.last_values == tuple(sorted(values.items()))
            and device.repeats + 1 >= kind.stuck_repeats
        ):
            reasons.append(Reason(STUCK_SENSOR, f"the same values {device.repeats + 1} times in a row"))
    if kind.outlier.enabled and not reasons:
        reasons.extend(_outliers(kind, r, at, state))
    return reasons


def _impossible(kind: KindPolicy, values: Mapping[str, float]) -> Iterator[str]:
    for name, bounds in kind.bounds.items():
        value = values.get(name)
        if value is None:
            if bounds.required:
                yield f"{name} is missing"
        elif not bounds.low <= value <= bounds.high:  # NaN fails too
            yield f"{name}={value} is outside [{bounds.low:g}, {bounds.high:g}]"


def _outliers(kind: KindPolicy, r: Mapping[str, Any], at: float, state: State) -> Iterator[Reason]:
    window = state.windows.get((r["zone"], r["kind"], int(at // WINDOW_S) * WINDOW_S))
    if window is None:
        return
    for name, value in sorted(r["values"].items()):
        n, median, mad = window.robust(name)
        if n < kind.outlier.min_samples or mad == 0:
            continue  # too few readings to judge, or no spread to measure against
        z = abs(value - median) / (MAD_SCALE * mad)
        if z > kind.outlier.robust_z:
            yield Reason(
                OUTLIER,
                f"{name}={value}: robust z {z:.1f} above {kind.outlier.robust_z:g}"
                f" (zone median {median:g}, MAD {mad:g}, n={n})",
            )


def _unverified_person(reading: AcceptedReading, policy: Policy, state: State) -> Reason | None:
    """Why the reading's wallet earns nothing as no person's (the policy's ``people``), or None if it may."""
    if reading.person is None:
        if not policy.binding_required:
            return None
        return Reason(
            UNVERIFIED_PERSON,
            f"policy {policy.version} pays only wallets bound to a person (a resident credential, "
            "POST /v1/bindings on identity); this wallet was not bound when ingest accepted the reading",
        )
    if policy.wallets_per_person is None:
        return None
    wallets = state.person_wallets.get((reading.person, int(epoch(reading.ts) // 86400)), ())
    if reading.owner in wallets or len(wallets) < policy.wallets_per_person:
        return None
    return Reason(
        UNVERIFIED_PERSON,
        f"the wallet's person already earns with {len(wallets)} wallets today; policy {policy.version} "
        f"pays at most {policy.wallets_per_person} wallets per person per day",
    )


def _pay(
    reading: AcceptedReading, policy: Policy, kind: KindPolicy, state: State
) -> tuple[list[tuple[str, int]], list[Reason]]:
    """The payments of each rule, within what the caps leave, and the reason of each cut."""
    r = reading.reading
    earned = policy.amounts(kind, r["values"])
    if not earned:
        return [], [Reason(NOTHING_TO_PAY, f"no rule of policy {policy.version} pays for these values")]
    at = epoch(r["ts"])
    day = int(at // 86400)
    # Each cap: what it allows, what was paid against it already, and how a cut by it reads.
    caps = [
        [
            policy.device_per_hour,
            state.device_hour.get((r["device_id"], int(at // 3600)), 0),
            CAP_DEVICE_HOUR,
            f"the device's cap of {policy.device_per_hour} per hour",
        ],
        [
            policy.wallet_per_day,
            state.wallet_day.get((reading.owner, day), 0),
            CAP_WALLET_DAY,
            f"the wallet's cap of {policy.wallet_per_day} per day",
        ],
    ]
    if reading.person is not None and policy.person_per_day is not None:
        caps.append(
            [
                policy.person_per_day,
                state.person_day.get((reading.person, day), 0),
                CAP_PERSON_DAY,
                f"the person's cap of {policy.person_per_day} per day, across their wallets",
            ]
        )
    payments, reasons = [], []
    for rule, amount in earned:
        lefts = [max(0, cap[0] - cap[1]) for cap in caps]
        pay = min(amount, *lefts)
        if pay < amount:
            _, _, code, cap_text = caps[lefts.index(min(lefts))]  # the tightest cap (the first of a tie)
            reasons.append(Reason(code, f"paid {pay} of {amount}: {cap_text} is reached", rule))
        if pay:
            payments.append((rule, pay))
            for cap in caps:
                cap[1] += pay
    return payments, reasons
