"""The ledger's signing key: from LEDGER_SIGNING_KEY, else (development) a key file under the data dir."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from services.common.signing import Keypair, b64url_decode, b64url_encode
from services.ledger.settings import SERVICE, LedgerSettings

log = logging.getLogger(__name__)

KEY_FILE = "signing.key"
SEED_SIZE = 32


class SigningKeyError(ValueError):
    """The configured or stored key is not a base64url 32-byte Ed25519 seed."""


def parse_seed(text: str) -> Keypair:
    """The keypair of a base64url (padding optional) 32-byte Ed25519 seed."""
    try:
        seed = b64url_decode(text.strip())
    except ValueError as exc:
        raise SigningKeyError("the ledger signing key is not base64url") from exc
    if len(seed) != SEED_SIZE:
        raise SigningKeyError(
            f"the ledger signing key must be a {SEED_SIZE}-byte seed, got {len(seed)} bytes"
        )
    return Keypair.from_seed(seed)


def key_path(data_dir: Path) -> Path:
    return data_dir / SERVICE / KEY_FILE


def load_signing_key(settings: LedgerSettings, data_dir: Path) -> Keypair:
    """The ledger key: LEDGER_SIGNING_KEY if set, else the key file under `data_dir`, created on first use.

    The file holds the base64url seed and is readable by its owner only (0600). It is written aside and
    linked into place, so two processes starting at once end up with the same, complete key.
    """
    if settings.signing_key is not None:
        return parse_seed(settings.signing_key.get_secret_value())
    path = key_path(data_dir)
    if path.exists():
        return parse_seed(path.read_text())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    keypair = Keypair.generate()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(b64url_encode(keypair.seed) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return parse_seed(path.read_text())
    finally:
        os.unlink(tmp)
    log.warning("LEDGER_SIGNING_KEY is unset: generated the ledger key %s into %s", keypair.did, path)
    return keypair
