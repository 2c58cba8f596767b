"""`run_with_faust`: the rewards worker's lag is sampled from the worker's start until just before it shuts down,
and building an app that never runs starts nothing."""

from __future__ import annotations

import threading

import faust

from services.common.lag import LagMonitor, run_with_faust


def _samplers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "lag-monitor"]


async def test_the_monitor_runs_from_the_workers_start_until_before_its_shutdown():
    before = _samplers()
    app = faust.App("lag-faust-test", broker="kafka://127.0.0.1:9")
    run_with_faust(app, LagMonitor("127.0.0.1:9", interval_s=3600))
    assert _samplers() == before  # built, not started

    (start,) = app._app_tasks  # what the worker runs once it has started
    await start()
    (started,) = set(_samplers()) - set(before)

    await app.on_before_shutdown.send()
    started.join(5)
    assert not started.is_alive()
