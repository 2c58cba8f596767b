"""The identity service's secrets: the city's identity key (signs credentials, status lists and receipts) and
the key sealing custodial wallets. Each comes from settings, else (development) a file under the data dir,
created on first use, the way the ledger keeps its key (`services.ledger.keys`)."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from pydantic import SecretStr

from services.common.signing import Keypair, b64url_decode, b64url_encode
from services.identity.settings import SERVICE, IdentitySettings

log = logging.getLogger(__name__)

SECRET_SIZE = 32


class SecretKeyError(ValueError):
    """A configured or stored secret is not base64url of 32 bytes."""


def parse_secret(text: str, name: str) -> bytes:
    """The 32 bytes of a base64url (padding optional) secret."""
    try:
        secret = b64url_decode(text.strip())
    except ValueError as exc:
        raise SecretKeyError(f"{name} is not base64url") from exc
    if len(secret) != SECRET_SIZE:
        raise SecretKeyError(f"{name} must be {SECRET_SIZE} bytes, got {len(secret)}")
    return secret


def load_secret(configured: SecretStr | None, data_dir: Path, name: str) -> bytes:
    """`configured` if set, else the secret in ``<data_dir>/identity/<name>``, created (0600) on first use.

    Written aside and linked into place, so two processes starting at once end up with the same secret.
    """
    if configured is not None:
        return parse_secret(configured.get_secret_value(), name)
    path = data_dir / SERVICE / name
    if path.exists():
        return parse_secret(path.read_text(), name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_SIZE)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(b64url_encode(secret) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return parse_secret(path.read_text(), name)
    finally:
        os.unlink(tmp)
    log.warning("no configured %s: generated one into %s (development only)", name, path)
    return secret


def city_keypair(settings: IdentitySettings, data_dir: Path) -> Keypair:
    """The city's identity key (IDENTITY_CITY_KEY, else generated into the data dir)."""
    return Keypair.from_seed(load_secret(settings.city_key, data_dir, "city.key"))


def wallet_key(settings: IdentitySettings, data_dir: Path) -> bytes:
    """The SecretBox key sealing custodial wallets (IDENTITY_WALLET_KEY, else generated into the data dir)."""
    return load_secret(settings.wallet_key, data_dir, "wallet.key")
