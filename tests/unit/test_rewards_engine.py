"""The decision engine: each rule and cap, each quality check with its reason, state rebuilt from decisions,
and zone statistics (pure, no broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.common import schemas
from services.common.policy import Policy, parse_policy
from services.common.signing import Keypair
from services.common.topics import REWARD_DECISIONS, ZONE_STATS
from services.rewards import engine
from services.rewards.engine import Decision, State, decide
from services.rewards.readings import AcceptedReading, accept
from services.rewards.zones import zone_stats_record
from tests.unit.test_rewards_samples import Device, policy_document

POLICY = parse_policy(policy_document("t1"))
UNCAPPED = parse_policy(policy_document("t1", caps={"device_per_hour": 10**9, "wallet_per_day": 10**9}))
START = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reading(device: Device, seq: int, seconds: float, **values: float) -> AcceptedReading:
    defaults = {"pm2_5": 10.0 + seq % 7, "pm10": 20.0 + seq % 5} if device.kind == "air_quality" else {}
    return accept(device.envelope(seq, ts=at(seconds), values=values or defaults), {})


def run(state: State, reading: AcceptedReading, policy: Policy = POLICY) -> Decision:
    decision = decide(reading, policy, state)
    state.apply(decision)
    return decision


def codes(decision: Decision) -> list[str]:
    return [reason.code for reason in decision.reasons]


# --- rules ---------------------------------------------------------------------------------------------


def test_the_data_rule_pays_the_kinds_amount_under_the_policy_version():
    decision = run(State(), reading(Device(), 1, 0))
    assert decision.payments == (("data.air_quality", 500),)
    assert decision.policy_version == "t1" and decision.reasons == () and decision.counted


def test_the_behaviour_rule_pays_kg_co2e_avoided_at_the_policys_price_in_whole_micro_units():
    bike = Device(kind="bike_trip")
    # 5 km x 0.168 kg/km x 100000 micro-CITY/kg = 84000; 1.1 km -> 18480; 0.7 km -> 11760 (exact decimals).
    state = State()
    paid = [
        run(state, reading(bike, seq, seq * 120, km=km), UNCAPPED).payments
        for seq, km in ((1, 5.0), (2, 1.1), (3, 0.7))
    ]
    assert paid == [
        (("behaviour.bike_trip", 84000),),
        (("behaviour.bike_trip", 18480),),
        (("behaviour.bike_trip", 11760),),
    ]
    # Fractions of a micro-unit are never paid: 0.123 km -> 2066.4 -> 2066.
    assert run(state, reading(bike, 4, 480, km=0.123), UNCAPPED).payments == (("behaviour.bike_trip", 2066),)


def test_the_device_cap_per_hour_pays_what_is_left_then_nothing_until_the_next_hour():
    device = Device()
    state = State()
    decisions = [run(state, reading(device, seq, seq * 100)) for seq in range(1, 5)]  # all in hour 10
    assert [d.payments for d in decisions] == [
        (("data.air_quality", 500),),
        (("data.air_quality", 500),),
        (("data.air_quality", 200),),  # the cap is 1200
        (),
    ]
    assert codes(decisions[2]) == ["cap-device-hour"]
    assert decisions[2].reasons[0].rule == "data.air_quality"
    assert "paid 200 of 500" in decisions[2].reasons[0].detail
    assert codes(decisions[3]) == ["cap-device-hour"] and decisions[3].counted  # good data, still counted
    assert run(state, reading(device, 5, 3600)).payments == (("data.air_quality", 500),)


def test_the_wallet_cap_per_day_spans_the_wallets_devices():
    owner = Keypair.generate()
    policy = parse_policy(policy_document(caps={"device_per_hour": 1200, "wallet_per_day": 1700}))
    state = State()
    first, second = Device(owner=owner), Device(owner=owner)
    paid = [run(state, reading(first, 1, 0), policy), run(state, reading(first, 2, 10), policy)]
    paid += [run(state, reading(second, 1, 20), policy), run(state, reading(second, 2, 30), policy)]
    assert [sum(a for _, a in d.payments) for d in paid] == [500, 500, 500, 200]
    assert codes(paid[3]) == ["cap-wallet-day"]
    assert run(state, reading(Device(), 1, 40), policy).payments  # another wallet is not affected
    assert run(state, reading(second, 3, 86400), policy).payments == (("data.air_quality", 500),)  # next day


def test_a_new_policy_version_applies_to_the_next_decisions():
    device = Device()
    state = State()
    run(state, reading(device, 1, 0))
    richer = parse_policy(
        policy_document(
            "t2",
            kinds={
                **policy_document()["kinds"],
                "air_quality": {
                    "data_reward": 700,
                    "values": {"pm2_5": {"min": 0, "max": 1000}, "pm10": {"min": 0, "max": 2000}},
                },
            },
        )
    )
    decision = run(state, reading(device, 2, 100), richer)
    assert (decision.policy_version, decision.payments) == ("t2", (("data.air_quality", 700),))


# --- quality ---------------------------------------------------------------------------------------------


def test_impossible_values_earn_nothing_with_the_reason():
    device = Device()
    state = State()
    negative = run(state, reading(device, 1, 0, pm2_5=-1.0, pm10=20.0))
    missing = run(state, reading(device, 2, 10, pm10=20.0))
    for decision in (negative, missing):
        assert decision.payments == () and codes(decision) == ["impossible-value"] and not decision.counted
    assert "pm2_5=-1.0 is outside [0, 1000]" in negative.reasons[0].detail
    assert "pm2_5 is missing" in missing.reasons[0].detail


def test_a_stuck_sensor_is_not_paid_once_the_same_values_repeat_too_often():
    device = Device()
    state = State()
    same = [
        run(state, reading(device, seq, seq * 100, pm2_5=12.0, pm10=20.0), UNCAPPED) for seq in range(1, 7)
    ]
    assert [codes(d) for d in same] == [[], [], [], [], ["stuck-sensor"], ["stuck-sensor"]]
    assert same[4].reasons[0].detail == "the same values 5 times in a row"
    assert run(state, reading(device, 7, 700, pm2_5=12.5, pm10=20.0), UNCAPPED).payments  # it moved again


def test_a_burst_of_readings_from_one_device_is_not_paid():
    device = Device()
    policy = UNCAPPED
    state = State()
    decisions = [run(state, reading(device, seq, seq), policy) for seq in range(1, 33)]  # one a second
    assert all(d.payments for d in decisions[:30])
    assert codes(decisions[30]) == ["burst"] and codes(decisions[31]) == ["burst"]
    assert decisions[30].reasons[0].detail == "31 readings within 60s (at most 30)"
    assert run(state, reading(device, 33, 200), policy).payments  # the window has passed


def test_an_outlier_against_the_zones_median_and_mad_is_not_paid():
    state = State()
    for i in range(20):  # 20 devices of the zone around pm2_5 = 10
        run(state, reading(Device(), 1, i, pm2_5=8.0 + (i % 5), pm10=20.0 + (i % 3)))
    outlier = run(state, reading(Device(), 1, 30, pm2_5=95.0, pm10=21.0))
    assert codes(outlier) == ["outlier"] and not outlier.counted
    assert outlier.reasons[0].detail.startswith("pm2_5=95.0: robust z")
    assert run(state, reading(Device(), 1, 31, pm2_5=12.0, pm10=21.0)).payments
    # Another zone, another window: the same value is not judged against this zone.
    assert run(state, reading(Device(zone="harbour"), 1, 32, pm2_5=95.0, pm10=21.0)).payments


def test_unknown_kinds_stale_sequences_and_clock_skew_are_not_paid():
    state = State()
    assert codes(run(state, reading(Device(kind="noise"), 1, 0, db_a=50.0))) == ["unknown-kind"]
    device = Device()
    run(state, reading(device, 5, 0))
    stale = run(state, reading(device, 4, 10))
    assert codes(stale) == ["stale-sequence"] and stale.payments == ()
    ahead = accept({**device.envelope(6, ts=at(20 + 3600)), "received_at": at(20)}, {})
    assert codes(run(state, ahead)) == ["clock-skew"]


def test_a_reading_buffered_offline_is_paid_within_the_policys_late_window_and_not_after():
    state, device = State(), Device()
    late_s = POLICY.kinds["air_quality"].late_s
    buffered = accept({**device.envelope(1, ts=at(0)), "received_at": at(late_s)}, {})
    assert run(state, buffered).payments  # taken a day before ingest got it: paid
    too_late = run(state, accept({**device.envelope(2, ts=at(1)), "received_at": at(late_s + 2)}, {}))
    assert codes(too_late) == ["too-late"] and too_late.payments == ()
    assert f"pays readings at most {late_s}s late" in too_late.reasons[0].detail


# --- state from decisions --------------------------------------------------------------------------------


def test_a_state_rebuilt_from_the_decision_records_decides_the_same():
    owner = Keypair.generate()
    devices = [Device(owner=owner), Device(owner=owner), Device(kind="bike_trip", owner=owner)]
    inputs = []
    for seq in range(1, 13):
        for i, device in enumerate(devices):
            values = {"km": 2.0 + seq} if device.kind == "bike_trip" else {}
            inputs.append(reading(device, seq, seq * 40 + i, **values))
    live = State()
    records = []
    for r in inputs[:20]:
        decision = run(live, r)
        records.append(json.loads(json.dumps({**decision.as_json(0, len(records)), "decided_by": "t"})))
    for record in records:
        schemas.validate(REWARD_DECISIONS, record)
    rebuilt = State()
    for record in records:
        rebuilt.apply(Decision.from_json(record))
    assert [d.reading_id for d in rebuilt.recent.values()] == [d.reading_id for d in live.recent.values()]
    for r in inputs[20:]:
        assert run(rebuilt, r) == run(live, r)
    assert sum(p for d in live.recent.values() for _, p in d.payments) == 3 * 1200  # each device's hour cap


def test_a_decision_is_applied_once():
    state = State()
    decision = decide(reading(Device(), 1, 0), POLICY, state)
    state.apply(decision)
    state.apply(decision)
    assert sum(state.device_hour.values()) == 500 and sum(w.count for w in state.windows.values()) == 1


# --- zone statistics -----------------------------------------------------------------------------------


def test_zone_stats_of_a_known_minute():
    state = State()
    for i in range(1, 21):
        run(state, reading(Device(), 1, 60 + i, pm2_5=float(i), pm10=100.0))
    run(state, reading(Device(), 1, 59, pm2_5=1000.0, pm10=100.0))  # the minute before: another window
    (window,) = [w for w in state.windows.values() if w.start == START.timestamp() + 60]
    record = zone_stats_record(window)
    schemas.validate(ZONE_STATS, record.value)
    assert record.key == "old-town"
    assert record.value == {
        "zone": "old-town",
        "kind": "air_quality",
        "window_start": "2026-05-04T10:01:00.000Z",
        "window_end": "2026-05-04T10:02:00.000Z",
        "k": 5,
        "suppressed": False,
        "count": 20,
        "devices": 20,
        "values": {
            "pm10": {"count": 20, "mean": 100.0, "min": 100.0, "max": 100.0, "p50": 100.0, "p95": 100.0},
            "pm2_5": {"count": 20, "mean": 10.5, "min": 1.0, "max": 20.0, "p50": 10.0, "p95": 19.0},
        },
    }


def minute_of(devices: list[Device], policy: Policy = UNCAPPED, readings_each: int = 3) -> dict:
    """The zone-stats value of one minute in which each of `devices` sent `readings_each` readings."""
    state = State()
    for seq in range(1, readings_each + 1):
        for i, device in enumerate(devices):
            run(state, reading(device, seq, 60 + seq * 10 + i, pm2_5=float(i + seq), pm10=20.0), policy)
    (window,) = state.windows.values()
    value = zone_stats_record(window).value
    schemas.validate(ZONE_STATS, value)
    return value


def test_a_minute_of_fewer_than_k_devices_is_suppressed_and_of_k_shown():
    # Four devices, however many readings each: nothing but that the window was suppressed, and why.
    assert minute_of([Device() for _ in range(4)], readings_each=5) == {
        "zone": "old-town",
        "kind": "air_quality",
        "window_start": "2026-05-04T10:01:00.000Z",
        "window_end": "2026-05-04T10:02:00.000Z",
        "k": 5,
        "suppressed": True,
    }
    shown = minute_of([Device() for _ in range(5)])
    assert not shown["suppressed"] and (shown["count"], shown["devices"], shown["k"]) == (15, 5, 5)
    assert shown["values"]["pm2_5"]["min"] == 1.0 and shown["values"]["pm2_5"]["max"] == 7.0
    # A single bike trip in a zone's minute shows nothing of the trip.
    state = State()
    assert run(state, reading(Device(kind="bike_trip"), 1, 70, km=3.2), UNCAPPED).counted
    (trip,) = state.windows.values()
    assert "values" not in trip.summary() and trip.summary()["suppressed"] is True


def test_k_comes_from_the_policy_and_a_value_few_devices_measured_is_left_out():
    strict = parse_policy(
        {
            **policy_document("t2", caps={"device_per_hour": 10**9, "wallet_per_day": 10**9}),
            "privacy": {"k_anonymity": 6},
        }
    )
    assert strict.k_anonymity == 6 and UNCAPPED.k_anonymity == 5  # the default
    assert minute_of([Device() for _ in range(5)], strict)["suppressed"] is True
    assert minute_of([Device() for _ in range(6)], strict)["devices"] == 6
    # An optional value (no2) sent by two of six devices: its statistics would be theirs alone.
    state = State()
    for i, device in enumerate(Device() for _ in range(6)):
        values = {"pm2_5": 10.0, "pm10": 20.0, **({"no2": 90.0 + i} if i < 2 else {})}
        run(state, reading(device, 1, 60 + i, **values), UNCAPPED)
    (window,) = state.windows.values()
    value = zone_stats_record(window).value
    schemas.validate(ZONE_STATS, value)
    assert set(value["values"]) == {"pm2_5", "pm10"} and value["suppressed_values"] == ["no2"]


def test_a_window_is_published_once_over_and_again_only_with_news():
    state = State()
    run(state, reading(Device(), 1, 10))
    end = START.timestamp() + 60
    assert list(state.closable(now=end, grace_s=5, idle_s=2, caught_up=True)) == []  # not over yet
    (window,) = state.closable(now=end + 10, grace_s=5, idle_s=2, caught_up=True)
    window.dirty = False
    assert list(state.closable(now=end + 20, grace_s=5, idle_s=2, caught_up=True)) == []
    state.apply(decide(reading(Device(), 1, 20), POLICY, state), now=end + 20)  # a late reading
    assert list(state.closable(now=end + 21, grace_s=5, idle_s=2, caught_up=True)) == []  # idle for 2 s first
    assert (
        list(state.closable(now=end + 23, grace_s=5, idle_s=2, caught_up=True)) == [window]
        and window.count == 2
    )
    # Readings of a later minute move the watermark past the window: it is over whatever the clock says.
    fresh = State()
    run(fresh, reading(Device(), 1, 10))
    run(fresh, reading(Device(), 1, 130))
    assert [w.start for w in fresh.closable(now=0, grace_s=5, idle_s=2, caught_up=True)] == [
        START.timestamp()
    ]


def test_a_partition_with_a_backlog_closes_windows_by_its_readings_time_only():
    # Old readings read slowly: the clock says the minute is over and idle, but more of it may be unread.
    state = State()
    run(state, reading(Device(), 1, 10))
    end = START.timestamp() + 60
    assert list(state.closable(now=end + 3600, grace_s=5, idle_s=2, caught_up=False)) == []
    # Sent once closed, the window is kept (a backlog hours old is pruned by its readings' time, not the
    # clock's), so the rest of its minute joins it: its next share is the whole one.
    (window,) = state.closable(now=end + 3600, grace_s=5, idle_s=2, caught_up=True)
    window.dirty = False
    state.prune()
    run(state, reading(Device(), 1, 30))
    assert list(state.windows.values()) == [window] and window.count == 2


def test_prune_forgets_published_windows_and_past_caps():
    state = State()
    run(state, reading(Device(), 1, 10))
    for window in state.windows.values():
        window.dirty = False
    late = 3 * 86400
    run(state, reading(Device(), 1, 3 * 3600))  # kept: a backlog may still bring readings of this hour
    state.prune()
    assert len(state.device_hour) == 2 and len(state.wallet_day) == 2
    run(state, reading(Device(), 1, late))
    state.prune()
    assert [w.start for w in state.windows.values()] == [
        START.timestamp() + 3 * 3600,
        START.timestamp() + late,
    ]
    assert [hour for (_, hour) in state.device_hour] == [int((START.timestamp() + late) // 3600)]
    assert len(state.wallet_day) == 1


def test_reason_codes_are_the_schemas():
    schema = json.loads((schemas.SCHEMA_DIR / REWARD_DECISIONS.schema).read_text())
    assert tuple(schema["properties"]["reasons"]["items"]["properties"]["code"]["enum"]) == engine.REASONS
