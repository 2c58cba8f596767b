"""The zone statistics' second stage (pure): every readings partition's share of a zone's minute, summed.

Readings are partitioned by person (or wallet), so a zone's readings of a minute are spread over every readings
partition, and each worker holds the windows of its partitions only. A worker therefore publishes no statistic
itself: for each window of readings partition p that closes (`State.closable`) it sends p's whole share so far
(`ZoneWindow.as_partial`) to ``city.zone-partials.v1``, keyed by zone, and every second a marker to each
partition of that topic saying how far p's windows are closed (`State.closed_through`). The zone stage, keyed by
zone, keeps the latest share of each readings partition per window and publishes the window's sum on
``city.zone-stats.v1`` once every readings partition's marker, sent after the window's first share, has passed
the window's end (`ZoneStage`): it is complete whatever the number of workers and however their partitions are
spread, so any number of workers publishes what one does. A window not complete `max_wait_s` after its first
share came (a partition no worker holds) is published with what came by then.

Every share and marker says when it was sent (``sent_at``, covered by the attestation), and the stage folds only
what is newer than what it holds from the same readings partition: a genuine record produced onto the topic again
later (a replay, or a redelivery after a rebalance) can neither replace a partition's newer share nor say a
partition is closed further than its latest marker does. A share sent `keep_s` before the latest record of its
readings partition on its lane is refused too: its window may be forgotten, and it would publish that window
again, short. (Per readings partition, so that one worker's clock running ahead cannot make the stage refuse
the others' shares; a new owner of a partition whose clock is behind its predecessor's by less than `keep_s`
loses nothing.)

As before, a window published with its values is final: a later share (late readings) is left out, since the
difference of two publications would show those readings. A window published suppressed (under k devices) is
published again when more come.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.events import cloudevent_headers
from services.common.kafka import OutgoingRecord
from services.common.topics import ZONE_PARTIALS, ZONE_STATS
from services.rewards.engine import WINDOW_S, ZoneWindow

EVENT_SOURCE = "smartcity/rewards"
PARTIAL_EVENT_TYPE = "city.zone-partial.v1"
ZONE_STATS_EVENT_TYPE = "city.zone-stats.v1"
MARKER_KEY = "closed-through"

WindowKey = tuple[str, str, int]


def partial_record(window: ZoneWindow, partition: int, app_id: str, sent_at: int) -> OutgoingRecord:
    """The ``city.zone-partials.v1`` record of app `app_id`'s readings partition `partition`'s share of
    `window`, sent at `sent_at` (epoch milliseconds)."""
    return OutgoingRecord(
        topic=ZONE_PARTIALS,
        key=window.zone,
        value={"app_id": app_id, **window.as_partial(partition), "sent_at": sent_at},
        headers=cloudevent_headers(
            PARTIAL_EVENT_TYPE, EVENT_SOURCE, f"{window.zone}/{window.kind}/{window.start}/{partition}"
        ),
    )


def marker_records(partition: int, closed_through: float, app_id: str, sent_at: int) -> list[OutgoingRecord]:
    """The marker of app `app_id`'s readings partition `partition`, sent at `sent_at` (epoch milliseconds), one
    to each partition of ``city.zone-partials.v1`` (every zone stage needs every readings partition's)."""
    value = {"app_id": app_id, "partition": partition, "closed_through": closed_through, "sent_at": sent_at}
    headers = cloudevent_headers(PARTIAL_EVENT_TYPE, EVENT_SOURCE, f"{partition}/{closed_through}")
    return [
        OutgoingRecord(topic=ZONE_PARTIALS, key=MARKER_KEY, value=value, headers=headers, partition=target)
        for target in range(ZONE_PARTIALS.partitions)
    ]


def zone_stats_record(window: ZoneWindow) -> OutgoingRecord:
    """The ``city.zone-stats.v1`` record of a window; the event id names the zone, kind and window."""
    summary = window.summary()
    event_id = f"{window.zone}/{window.kind}/{summary['window_start']}"
    return OutgoingRecord(
        topic=ZONE_STATS,
        key=window.zone,
        value=summary,
        headers=cloudevent_headers(ZONE_STATS_EVENT_TYPE, EVENT_SOURCE, event_id, summary["window_end"]),
    )


def is_marker(value: Mapping[str, Any]) -> bool:
    return "closed_through" in value


@dataclass
class Pending:
    """A window at the zone stage: the latest share of each readings partition, and the records that brought
    them (acknowledged once the window is published)."""

    first_seen: float  # wall clock of its first share (the longest wait counts from it)
    lane: int  # the zone-partials partition its shares come on
    first_taken: int  # the stage's count of records taken at its first share
    end: int  # the window's end (its markers must pass it)
    shares: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)
    dirty: bool = False
    shown: bool = False
    published_at: float | None = None  # wall clock of its latest publication

    def window(self, key: WindowKey) -> ZoneWindow:
        zone, kind, start = key
        window = ZoneWindow(zone, kind, start)
        for partition in sorted(self.shares):
            window.merge(self.shares[partition])
        return window


class ZoneStage:
    """Sums the readings partitions' shares of each zone window and says when a window is complete.

    Records come on lanes (the partitions of ``city.zone-partials.v1``): a window's shares all come on its
    zone's lane, and every readings partition's marker on every lane, in the order they were sent. A window is
    complete once every readings partition's marker that came on its lane after the window's first share says
    it closed the window. After, not before: a marker sent before a backlog reached its partition says its
    quiet partition is closed up to the clock, while readings of the window wait there unread.
    """

    def __init__(self, sources: int, max_wait_s: float = 60.0, keep_s: float = 600.0) -> None:
        self.sources = sources  # readings partitions
        self.max_wait_s = max_wait_s
        self.keep_s = keep_s
        self.taken = 0  # records taken so far: each marker and window is stamped with its place
        # Per lane, readings partition -> its latest marker there: (closed through, taken when, sent at).
        self.closed: dict[int, dict[int, tuple[float, int, int]]] = {}
        self.sent: dict[tuple[int, int], int] = {}  # per (lane, readings partition), the latest ``sent_at``
        self.pending: dict[WindowKey, Pending] = {}
        self.late = 0  # shares of windows already final, left out
        self.stale = 0  # records older than what the stage holds from their readings partition, left out

    def take(self, value: Mapping[str, Any], event: Any = None, now: float = 0.0, lane: int = 0) -> list[Any]:
        """Fold a partial or a marker that came on `lane`; returns the events done with at once (markers, late
        shares, stale records): the caller acknowledges them. A share's event is held until its window is
        published (`due`)."""
        self.taken += 1
        sent_at = value["sent_at"]
        source = (lane, value["partition"])
        latest = self.sent.get(source, 0)
        self.sent[source] = max(latest, sent_at)
        if is_marker(value):
            markers = self.closed.setdefault(lane, {})
            held = markers.get(value["partition"])
            if held is not None and sent_at <= held[2]:
                self.stale += 1  # sent before the one held (equal: the same marker again)
            else:
                # The latest holds, even lower: old readings of a backlog reopen a partition's past windows.
                markers[value["partition"]] = (value["closed_through"], self.taken, sent_at)
            return [event]
        if sent_at < latest - self.keep_s * 1000:
            self.stale += 1
            return [event]
        key = (value["zone"], value["kind"], value["window_start"])
        pending = self.pending.get(key)
        if pending is None:
            pending = self.pending[key] = Pending(now, lane, self.taken, key[2] + WINDOW_S)
        if pending.shown:
            self.late += 1
            return [event]
        held_share = pending.shares.get(value["partition"])
        if held_share is not None and sent_at <= held_share["sent_at"]:
            self.stale += 1  # sent before the one held (equal: the same share again)
            return [event]
        pending.shares[value["partition"]] = value
        pending.events.append(event)
        pending.dirty = True
        return []

    def due(self, now: float) -> list[tuple[ZoneWindow, Pending]]:
        """The windows to publish now (complete, or waited for long enough), in time order; the caller
        publishes each, then calls `published`."""
        out = []
        for key in sorted(self.pending, key=lambda k: (k[2], k[0], k[1])):
            pending = self.pending[key]
            if not pending.dirty:
                continue
            if self.complete(pending) or pending.first_seen + self.max_wait_s <= now:
                out.append((pending.window(key), pending))
        return out

    def complete(self, pending: Pending) -> bool:
        """Whether every readings partition has closed the window, in a marker that came after its first
        share."""
        markers = self.closed.get(pending.lane, {})
        return len(markers) >= self.sources and all(
            through >= pending.end and taken > pending.first_taken for through, taken, _ in markers.values()
        )

    @staticmethod
    def published(pending: Pending, summary: Mapping[str, Any], now: float) -> list[Any]:
        """Mark a window published with `summary` at `now`; returns the events now done with. A window shown
        is final: its shares are dropped, its key kept (`keep_s`) to leave its late shares out."""
        pending.dirty = False
        pending.shown = not summary["suppressed"]
        pending.published_at = now
        if pending.shown:
            pending.shares = {}
        events, pending.events = pending.events, []
        return events

    def prune(self, now: float) -> None:
        """Forget windows published over `keep_s` ago by the clock (their events are acknowledged). The
        clock's, not the window's time: a backlog's windows are hours old when published, and one forgotten
        at once would be published again from the shares that came after, short."""
        horizon = now - self.keep_s
        for key, pending in list(self.pending.items()):
            if not pending.dirty and pending.published_at is not None and pending.published_at < horizon:
                del self.pending[key]

    def forget(self) -> None:
        """After a rebalance: drop the windows never published (their unacknowledged shares are delivered
        again) and the records held by the others, keeping what was published (a shown window stays final);
        the markers stay (every readings partition's owner sends one every second)."""
        for key, pending in list(self.pending.items()):
            if pending.published_at is None:
                del self.pending[key]
            else:
                pending.events = []
