"""Fixtures for the real broker and database.

They choose, in order: the environment's KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL; testcontainers when a
Docker engine answers; otherwise the embedded Tansu broker and PostgreSQL. Nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from services.common import embedded
from services.common.kafka import ensure_topics
from services.common.settings import PlatformSettings
from services.common.topics import ALL_TOPICS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def test_data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="smartcity-test-"))
    yield path
    embedded.stop_postgres(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(test_data_dir: Path) -> Iterator[str]:
    """Bootstrap servers of a real Kafka-protocol broker, with every platform topic created."""
    if url := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        ensure_topics(url, ALL_TOPICS)
        yield url
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            url = container.get_bootstrap_server()
            ensure_topics(url, ALL_TOPICS)
            yield url
        return
    with embedded_broker(test_data_dir / "tansu.log") as url:
        yield url


@contextmanager
def embedded_broker(log_path: Path) -> Iterator[str]:
    """An embedded Tansu broker of its own, with every platform topic, stopped (by its PID) on leaving."""
    port = embedded.free_port()
    process = embedded.start_broker(port, log_path)
    url = f"127.0.0.1:{port}"
    try:
        ensure_topics(url, ALL_TOPICS)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def database_server_url(test_data_dir: Path) -> Iterator[str]:
    """URL of a real PostgreSQL server; services create their own databases on it."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17", driver=None) as container:
            yield container.get_connection_url()
        return
    yield embedded.postgres_url(test_data_dir)


@pytest.fixture
def platform_settings(kafka_bootstrap: str, database_server_url: str, tmp_path: Path) -> PlatformSettings:
    """Settings pointing at the test broker and database, with databases unique to this test."""
    return PlatformSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_server_url,
        database_prefix=f"t{uuid.uuid4().hex[:10]}_",
        smartcity_data_dir=tmp_path / "data",
    )
