"""Consumer lag, exported by every service for its own consumers: ``smartcity_consumer_lag{group,topic,partition}``.

Each process names what it consumes (`LagMonitor`): its consumer groups with their topics (a `BatchConsumer`'s
group, the rewards worker's Faust group) and its topic views (`TopicView`: assigned, no group). A background
thread samples them every `LAG_INTERVAL_S` with a bounded timeout and sets the gauge, so a scrape only reads
numbers and never waits on the broker (nor blocks an event loop).

- A group's lag on a partition is the partition's end minus the group's committed offset (or minus the
  partition's start while the group has committed nothing there: consumers start at the earliest record). It
  is the group's figure, not a member's: every replica of a service reports the same, so dashboards and alerts
  take the ``max`` over instances. It moves when the group commits (the `BatchConsumer` after each batch,
  Faust every few seconds), so a figure up to one batch above what is in hand is normal.
- A view's lag is the partition's end minus the view's position (the offset after the last record it folded).
  Views join no group, so ``group`` is the view's client id; each replica has its own figure (``instance``).

Where a sample fails (the broker does not answer in time), the series of what it could not measure are removed
until a later sample succeeds: no figure rather than a stale one.

The end is the partition's listed high watermark. On Apache Kafka that is the offset the next record gets, and
the figure is exact. The embedded broker (Tansu) lists the start of a partition's last batch plus one instead
(see `services.rewards.changelog._read_all`), so there the figure can be short by up to that batch's size minus
one, and a group that has read to the true end shows 0 (never a negative lag). Producers that send a record at a
time make every batch one record long, and then the figure is exact on Tansu too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from prometheus_client import Gauge

from services.common.follower import TopicView
from services.common.kafka import client_security
from services.common.topics import Topic

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 15.0
"""How often the lag is sampled: the scrape interval of the platform's Prometheus."""
LAG_TIMEOUT_S = 5.0
"""How long one broker request of a sample may take."""

CONSUMER_LAG = Gauge(
    "smartcity_consumer_lag",
    "Records between a consumer group's committed offset and the end of a partition (a topic view, which joins "
    "no group, is named by its client id and measured from its position), sampled every 15 s. On the embedded "
    "broker the end is the start of the partition's last batch plus one: short by up to that batch's size - 1.",
    ["group", "topic", "partition"],
)

Series = tuple[str, str, int]
"""(group or view client id, topic, partition)."""


class LagMonitor:
    """Samples the lag of `groups` (group id -> the topics it consumes) and `views` into `CONSUMER_LAG`.

    `start` samples on a daemon thread every `interval_s` until `close`; `sample` takes one round (blocking),
    which is what tests and tools call.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        groups: Mapping[str, Sequence[Topic]] | None = None,
        views: Sequence[TopicView] = (),
        interval_s: float = LAG_INTERVAL_S,
        timeout_s: float = LAG_TIMEOUT_S,
    ) -> None:
        self.groups = {group: tuple(topics) for group, topics in (groups or {}).items()}
        self.views = tuple(views)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._admin = AdminClient(
            {"bootstrap.servers": bootstrap_servers, **client_security(), "client.id": "lag-monitor"}
        )
        self._exported: set[Series] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-monitor", daemon=True)
        self._failing = False
        self._exporting = threading.Lock()  # `close` and the thread may both remove the series

    def start(self) -> None:
        """Sample now and then every `interval_s`, on a thread of its own; returns at once."""
        self._thread.start()

    def close(self) -> None:
        """Stop sampling and remove this monitor's series. Waits at most `timeout_s` for a sample in progress
        (a broker that does not answer must not hold a shutdown up); that sample's thread then removes them."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout_s)
        else:
            self._export({})

    def sample(self) -> dict[Series, int]:
        """Measure every group and started view now, set the gauge to it and return it. Raises
        `KafkaException` or `TimeoutError` when the topics' offsets cannot be had; a group whose committed
        offsets cannot be had is left out (logged)."""
        names = {topic.name for topics in self.groups.values() for topic in topics}
        names |= {view.topic.name for view in self.views if view.positions}  # a view not started has none
        partitions = self._partitions(sorted(names))
        bounds = self._bounds(partitions)
        figures: dict[Series, int] = {}
        for group, topics in self.groups.items():
            consumed = {topic.name for topic in topics}
            wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions if tp.topic in consumed]
            try:
                committed = self._committed(group, wanted)
            except (KafkaException, TimeoutError) as exc:
                log.warning("lag of group %s not measured: %s", group, exc)
                continue
            for (topic, partition), offset in committed.items():
                low, high = bounds[topic, partition]
                figures[group, topic, partition] = max(0, high - max(offset, low))
        for view in self.views:
            for partition, position in view.positions.items():
                if (view.topic.name, partition) in bounds:
                    low, high = bounds[view.topic.name, partition]
                    figures[view.client_id, view.topic.name, partition] = max(0, high - max(position, low))
        self._export(figures)
        return figures

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sample()
            except (KafkaException, TimeoutError) as exc:
                self._failed(f"the broker did not answer: {exc}")
            except Exception as exc:  # a bug must not end the sampling, nor leave figures that no longer move
                log.exception("lag sample failed")
                self._failed(f"{type(exc).__name__}: {exc}")
            else:
                if self._failing:
                    log.info("consumer lag measured again")
                self._failing = False
            self._stopping.wait(self.interval_s)
        self._export({})

    def _failed(self, reason: str) -> None:
        """No figures rather than stale ones; warn once per outage."""
        if not self._failing:
            log.warning("consumer lag not measured (%s); its series are removed until it is", reason)
        self._failing = True
        self._export({})

    def _partitions(self, names: Iterable[str]) -> list[TopicPartition]:
        """Every partition of the topics `names` (a topic the broker does not have is left out, logged)."""
        partitions: list[TopicPartition] = []
        for name in names:
            metadata = self._admin.list_topics(name, timeout=self.timeout_s).topics.get(name)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                log.warning("lag of topic %s not measured: %s", name, metadata and metadata.error)
                continue
            partitions += [TopicPartition(name, p) for p in sorted(metadata.partitions)]
        return partitions

    def _bounds(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], tuple[int, int]]:
        """Per (topic, partition), its start (earliest offset) and listed end (high watermark)."""
        if not partitions:
            return {}
        low = self._offsets(partitions, OffsetSpec.earliest())
        high = self._offsets(partitions, OffsetSpec.latest())
        return {key: (low[key], high[key]) for key in high}

    def _offsets(self, partitions: list[TopicPartition], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        futures = self._admin.list_offsets({tp: spec for tp in partitions}, request_timeout=self.timeout_s)
        return {
            (tp.topic, tp.partition): future.result(timeout=self.timeout_s).offset
            for tp, future in futures.items()
        }

    def _committed(self, group: str, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """Per (topic, partition), the offset `group` committed (negative where it committed nothing)."""
        if not partitions:
            return {}
        request = [ConsumerGroupTopicPartitions(group, partitions)]
        futures = self._admin.list_consumer_group_offsets(request, request_timeout=self.timeout_s)
        result = futures[group].result(timeout=self.timeout_s)
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}

    def _export(self, figures: Mapping[Series, int]) -> None:
        """Set the gauge to `figures`, removing this monitor's series that are not in them."""
        with self._exporting:
            for group, topic, partition in self._exported - figures.keys():
                # Another monitor of the same group in this process may have removed it first.
                with contextlib.suppress(KeyError):
                    CONSUMER_LAG.remove(group, topic, str(partition))
            for (group, topic, partition), lag in figures.items():
                CONSUMER_LAG.labels(group, topic, str(partition)).set(lag)
            self._exported = set(figures)


def run_with_faust(app: faust.App, monitor: LagMonitor) -> None:
    """Sample `monitor` while the Faust worker `app` runs: from the worker's start (a Faust task, so building an
    app that never runs starts nothing) until just before it shuts down."""

    async def start_lag_monitor() -> None:
        monitor.start()

    def stop_lag_monitor(sender: Any, **kwargs: Any) -> None:
        monitor.close()

    app.task(start_lag_monitor)
    app.on_before_shutdown.connect(stop_lag_monitor)
