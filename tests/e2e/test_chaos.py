"""The chaos run, short: load through the embedded platform while each service is SIGKILLed in turn, then
every accepted reading decided once, every reward settled once (counts and sums), the chain verified and no
consumer stuck. ``python -m bench chaos`` is the long run."""

from __future__ import annotations

import pytest

from bench import chaos

pytestmark = pytest.mark.e2e


async def test_every_service_killed_in_turn_loses_and_doubles_nothing():
    options = chaos.Options(minutes=0.75, kill_every_s=7, rate=60, settle_timeout_s=240)
    rows = {row.check: row for row in await chaos.run(options)}
    failed = [row for row in rows.values() if row.ok is False]
    assert failed == [], chaos.format_table(list(rows.values()))
    assert int(rows["kills (SIGKILL)"].observed) >= len(chaos.VICTIMS)  # each service killed at least once
    assert int(rows["restarts by smartcity up"].observed) >= len(chaos.VICTIMS)
    assert int(rows["readings accepted"].observed.replace(",", "")) > 0
    assert rows["rewards settled (count)"].expected != "0"
