"""``python -m services.ledger`` as a real process: starts with a generated development key, seals the
genesis, and shuts down cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import httpx
import pytest

from services.common.embedded import free_port
from services.common.settings import PlatformSettings
from services.ledger import chain
from services.ledger.keys import key_path, parse_seed
from tests.conftest import REPO_ROOT
from tests.support.topics import unique_group

pytestmark = pytest.mark.integration


def test_serves_with_a_generated_key_and_stops_cleanly(platform_settings: PlatformSettings) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": platform_settings.bootstrap_servers,
        "DATABASE_URL": platform_settings.database_url or "",
        "DATABASE_PREFIX": platform_settings.database_prefix,
        "SMARTCITY_DATA_DIR": str(platform_settings.data_dir),
        "LEDGER_PORT": str(port),
        "LEDGER_CONSUMER_GROUP": unique_group("ledger-process"),
    }
    env.pop("LEDGER_SIGNING_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.ledger"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        header = None
        deadline = time.monotonic() + 60
        while header is None and time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                checkpoint = httpx.get(f"http://127.0.0.1:{port}/v1/checkpoint", timeout=2)
                if ready.status_code == 200 and checkpoint.status_code == 200:
                    header = chain.BlockHeader.from_json(checkpoint.json())
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert header is not None, "the ledger did not become ready with a checkpoint"
        path = key_path(platform_settings.data_dir)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        chain.verify_header(header, parse_seed(path.read_text()).did)
        assert header.height == 0 and header.tree_size >= 1  # the genesis is sealed

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # uvicorn shuts down gracefully, then re-raises the signal it caught, so the status says SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output and "ERROR" not in output, output
