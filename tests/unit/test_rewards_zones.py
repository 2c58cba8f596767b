"""The zone stage (pure): each readings partition's share of a zone's minute, summed once every partition has
closed the minute; a window shown is final; the longest wait; and the partition states' closing bounds."""

from __future__ import annotations

import itertools

from services.common import attestation, schemas
from services.common.kafka import attested
from services.common.signing import Keypair
from services.common.topics import ZONE_PARTIALS, ZONE_STATS
from services.rewards.engine import State, ZoneWindow
from services.rewards.zones import ZoneStage, marker_records, partial_record, zone_stats_record
from tests.unit.test_rewards_engine import START, UNCAPPED, reading, run
from tests.unit.test_rewards_samples import Device

MINUTE = int(START.timestamp())
END = MINUTE + 60
SENT = itertools.count(1_000_000)
"""Each record the helpers make is sent after the one before, as a worker's are."""


def shares(devices_per_partition: list[int]) -> tuple[list[State], ZoneWindow]:
    """A state per readings partition, each with its devices' readings of the minute, and the window one
    state holding them all has (what one worker deciding every partition in one state would publish)."""
    states, everything = [], State()
    for count in devices_per_partition:
        state = State()
        for i, device in enumerate(Device() for _ in range(count)):
            for target in (state, everything):
                run(target, reading(device, 1, 10 + i, pm2_5=float(i), pm10=20.0 + i), UNCAPPED)
        states.append(state)
    (whole,) = everything.windows.values()
    return states, whole


def partials_of(states: list[State]) -> list[dict]:
    out = []
    for partition, state in enumerate(states):
        for window in state.windows.values():
            value = partial_record(window, partition, "app", next(SENT)).value
            schemas.validate(ZONE_PARTIALS, value)
            out.append(value)
    return out


def marker(partition: int, closed_through: float) -> dict:
    value = marker_records(partition, closed_through, "app", next(SENT))[0].value
    schemas.validate(ZONE_PARTIALS, value)
    return value


def first_share_published(
    stage: ZoneStage, devices_per_partition: list[int], now: float
) -> tuple[dict, dict, dict]:
    """Partition 0's share of the minute published alone (both partitions said they closed it before partition
    1's share came); returns both shares and the statistics published."""
    states, _ = shares(devices_per_partition)
    first, second = partials_of(states)
    stage.take(first, "a", now=now)
    for partition in range(2):
        stage.take(marker(partition, END), f"m{partition}")
    ((window, pending),) = stage.due(now=now)
    summary = zone_stats_record(window).value
    assert stage.published(pending, summary, now=now) == ["a"]
    return first, second, summary


def test_the_shares_of_every_partition_sum_to_the_window_one_state_holds():
    states, whole = shares([3, 0, 4])
    stage = ZoneStage(sources=3)
    for value in partials_of(states):
        assert stage.take(value, event=f"share {value['partition']}", now=100.0) == []  # held until published
    assert stage.due(now=101.0) == []  # no partition has said it closed the minute
    for partition in range(3):
        assert stage.take(marker(partition, END + 1), event=f"marker {partition}") == [f"marker {partition}"]
    ((window, pending),) = stage.due(now=101.0)
    published = zone_stats_record(window).value
    schemas.validate(ZONE_STATS, published)
    assert published == zone_stats_record(whole).value and published["devices"] == 7
    assert sorted(stage.published(pending, published, now=101.0)) == ["share 0", "share 2"]


def test_a_window_waits_for_the_slowest_partition_and_a_later_share_replaces_the_earlier():
    states, _ = shares([3, 3])
    stage = ZoneStage(sources=2)
    first, second = partials_of(states)
    stage.take(first, "a", now=100.0)
    stage.take(marker(0, END + 30), "m0")
    stage.take(marker(1, END - 1), "m1")  # partition 1 still holds the minute open
    assert stage.due(now=101.0) == []
    stage.take(second, "b", now=101.0)
    later = {**second, "count": 1, "values": {"pm2_5": [1.0], "pm10": [2.0]}, "sent_at": next(SENT)}
    stage.take(later, "b2", now=101.5)
    stage.take(marker(1, END), "m1")
    ((window, _),) = stage.due(now=102.0)
    assert window.count == 3 + 1  # partition 1's latest share replaced its first


def test_a_window_shown_is_final_and_one_published_suppressed_is_shown_when_more_come():
    stage = ZoneStage(sources=2)
    _, second, summary = first_share_published(stage, [3, 2], now=100.0)
    assert summary["suppressed"] is True  # 3 devices, k = 5
    stage.take(second, "b", now=101.0)  # partition 1's share came late: now 5 devices
    ((window, pending),) = stage.due(now=101.0)
    summary = zone_stats_record(window).value
    assert summary["suppressed"] is False and summary["devices"] == 5
    assert stage.published(pending, summary, now=101.0) == ["b"]
    # Shown: a later share would tell the late readings apart by difference, so it is left out.
    assert stage.take({**second, "count": 9}, "late", now=102.0) == ["late"] and stage.late == 1
    assert stage.due(now=102.0) == []


def test_markers_count_only_after_the_windows_first_share_and_on_its_lane():
    # Quiet partitions said they were closed up to the clock; then a backlog of old readings came to both.
    states, whole = shares([3, 4])
    stage = ZoneStage(sources=2)
    first, second = partials_of(states)
    for partition in range(2):
        stage.take(marker(partition, END + 3600), f"early {partition}", lane=1)
    stage.take(first, "a", now=100.0, lane=1)
    assert stage.due(now=101.0) == []  # partition 1's readings may be waiting, unread
    stage.take(marker(0, END), "m0", lane=1)
    stage.take(marker(1, END), "m1 elsewhere", lane=0)  # on another lane: no order with the share
    assert stage.due(now=101.0) == []
    stage.take(second, "b", now=101.0, lane=1)
    stage.take(marker(1, END), "m1", lane=1)
    ((window, _),) = stage.due(now=102.0)
    assert zone_stats_record(window).value == zone_stats_record(whole).value


def test_a_backlogs_window_published_stays_final_until_long_after_by_the_clock():
    # Readings hours old: the window's own time is long past the keep horizon when it is published.
    stage = ZoneStage(sources=2, keep_s=600)
    now = MINUTE + 5 * 3600.0
    _, second, summary = first_share_published(stage, [5, 3], now=now)
    assert summary["suppressed"] is False  # partition 0's share alone is shown (k = 5)
    stage.prune(now=now + 1)
    # Partition 1's share comes after: it is late (left out), not a second, short publication of the window.
    assert stage.take(second, "b", now=now + 2) == ["b"] and stage.due(now=now + 2) == []
    stage.prune(now=now + 601)
    assert stage.pending == {}


def test_a_rebalance_forgets_the_windows_not_published_and_keeps_those_published():
    stage = ZoneStage(sources=2)
    first, second, _ = first_share_published(stage, [5, 3], now=100.0)
    stage.take({**first, "zone": "other"}, "c", now=100.0)  # another zone's share, not published yet
    stage.forget()
    assert list(stage.pending) == [(first["zone"], first["kind"], MINUTE)]  # its shares come again
    assert stage.take(second, "b", now=101.0) == ["b"]  # the published window stays final


def test_a_window_a_partition_never_closes_is_published_after_the_longest_wait_from_its_first_share():
    states, _ = shares([5])
    stage = ZoneStage(sources=2, max_wait_s=60)
    (value,) = partials_of(states)
    stage.take(value, "a", now=10_000.0)  # old readings: their end is long past by the clock
    stage.take(marker(0, END))
    assert stage.due(now=10_059.0) == []  # partition 1 has said nothing: the wait counts from the share
    ((window, _),) = stage.due(now=10_060.0)
    assert window.count == 5


def test_a_partition_closes_its_windows_by_its_readings_or_by_the_clock_once_quiet_and_caught_up():
    state = State()
    run(state, reading(Device(), 1, 10), UNCAPPED)
    state.touched = 1_000.0
    (window,) = state.windows.values()
    # Open: it holds the bound at its start, whatever the clock.
    assert state.closed_through(now=END + 100, grace_s=5, idle_s=2, caught_up=True) == MINUTE
    window.dirty = False  # sent
    assert state.closed_through(now=500.0, grace_s=5, idle_s=2, caught_up=True) == state.watermark - 5
    # Quiet and nothing more to read: the clock less the grace. With a backlog: the readings' time only.
    assert state.closed_through(now=END + 100, grace_s=5, idle_s=2, caught_up=True) == END + 95
    assert state.closed_through(now=END + 100, grace_s=5, idle_s=2, caught_up=False) == state.watermark - 5


def test_a_partitions_marker_goes_to_every_zone_stage_partition_attested():
    # After its shares on each partition, so that no zone stage hears a window closed before its share.
    records = attested(Keypair.generate(), marker_records(2, END, "app", next(SENT)))
    assert [record.partition for record in records] == list(range(ZONE_PARTIALS.partitions))
    for record in records:
        header = dict(record.headers)[attestation.HEADER]
        attestation.verify_header(header, ZONE_PARTIALS.name, record.value)


def test_a_replayed_share_older_than_the_partitions_held_one_is_left_out():
    states, whole = shares([3, 4])
    stage = ZoneStage(sources=2)
    first, second = partials_of(states)
    early = {**first, "count": 1, "values": {"pm2_5": [1.0], "pm10": [2.0]}, "sent_at": first["sent_at"] - 1}
    stage.take(first, "a", now=100.0)
    stage.take(second, "b", now=100.0)
    # Partition 0's earlier share, genuine, produced onto the topic again: it must not replace the newer one.
    assert stage.take(early, "replay", now=100.5) == ["replay"] and stage.stale == 1
    assert stage.take(first, "again", now=100.5) == ["again"] and stage.stale == 2  # the same, redelivered
    for partition in range(2):
        stage.take(marker(partition, END), f"m{partition}")
    ((window, pending),) = stage.due(now=101.0)
    assert zone_stats_record(window).value == zone_stats_record(whole).value
    assert sorted(stage.published(pending, zone_stats_record(window).value, now=101.0)) == ["a", "b"]


def test_a_replayed_marker_cannot_say_a_partition_is_closed_further_than_its_latest():
    # Partition 1 said it was closed far ahead while quiet; then a backlog reopened its past windows.
    states, whole = shares([3, 4])
    stage = ZoneStage(sources=2)
    first, second = partials_of(states)
    quiet = marker(1, END + 3600)
    stage.take(quiet, "quiet")
    stage.take(marker(1, END - 30), "backlog")
    stage.take(first, "a", now=100.0)
    stage.take(marker(0, END), "m0")
    # The quiet marker again, after the window's first share: the window must still wait for partition 1.
    assert stage.take(quiet, "replay") == ["replay"] and stage.stale == 1
    assert stage.due(now=101.0) == []
    stage.take(second, "b", now=101.0)
    stage.take(marker(1, END), "m1")
    ((window, _),) = stage.due(now=102.0)
    assert zone_stats_record(window).value == zone_stats_record(whole).value


def test_a_share_sent_long_before_its_lanes_latest_record_cannot_publish_a_forgotten_window_again():
    stage = ZoneStage(sources=2, keep_s=600)
    first, second, _ = first_share_published(stage, [5, 3], now=100.0)
    stage.prune(now=701.0)
    assert stage.pending == {}  # forgotten
    stage.take({**marker(0, END + 600), "sent_at": first["sent_at"] + 601_000}, "m0 later")
    # Partition 0's share, replayed after the window was forgotten: not a second publication of it.
    assert stage.take(first, "replay", now=702.0) == ["replay"] and stage.stale == 1
    assert stage.pending == {} and stage.due(now=800.0) == []
    # A share sent within the horizon (late readings of the window) is taken as before.
    assert stage.take({**second, "sent_at": first["sent_at"] + 2_000}, "b", now=702.0) == []


def test_a_worker_whose_clock_runs_ahead_does_not_make_the_stage_refuse_the_others_shares():
    states, whole = shares([3, 4])
    stage = ZoneStage(sources=2, keep_s=600)
    first, second = partials_of(states)
    ahead = second["sent_at"] + 11 * 60_000  # partition 1's worker: eleven minutes ahead
    stage.take({**marker(1, END - 30), "sent_at": ahead}, "m1")
    stage.take(first, "a", now=100.0)  # partition 0's share, by its own clock: taken
    stage.take({**second, "sent_at": ahead + 1}, "b", now=100.0)
    stage.take(marker(0, END), "m0")
    stage.take({**marker(1, END), "sent_at": ahead + 2}, "m1 again")
    ((window, _),) = stage.due(now=101.0)
    assert stage.stale == 0 and zone_stats_record(window).value == zone_stats_record(whole).value
