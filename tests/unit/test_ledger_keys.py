"""The ledger signing key: configured, or generated once into the data dir and reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.common.keyfiles import SecretKeyError
from services.common.signing import Keypair, b64url_encode
from services.ledger.keys import key_path, load_signing_key
from services.ledger.settings import LedgerSettings


def test_configured_key_is_used(tmp_path: Path) -> None:
    seed = bytes(range(32))
    settings = LedgerSettings(signing_key=SecretStr(b64url_encode(seed)))
    assert load_signing_key(settings, tmp_path).did == Keypair.from_seed(seed).did
    assert not key_path(tmp_path).exists()


def test_key_is_generated_once_owner_only_and_reused(tmp_path: Path) -> None:
    first = load_signing_key(LedgerSettings(), tmp_path)
    path = key_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signing_key(LedgerSettings(), tmp_path).did == first.did
    assert [p.name for p in path.parent.iterdir()] == ["signing.key"]


def test_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = bytes(32)
    monkeypatch.setenv("LEDGER_SIGNING_KEY", b64url_encode(seed))
    monkeypatch.setenv("LEDGER_SEAL_INTERVAL_MS", "100")
    settings = LedgerSettings()
    assert settings.seal_interval_ms == 100
    assert load_signing_key(settings, tmp_path).did == Keypair.from_seed(seed).did


@pytest.mark.parametrize("bad", ["not base64!", b64url_encode(bytes(31)), b64url_encode(bytes(64))])
def test_malformed_keys_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SecretKeyError):
        load_signing_key(LedgerSettings(signing_key=SecretStr(bad)), tmp_path)
