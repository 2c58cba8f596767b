"""Service secrets (32-byte keys and Ed25519 seeds): from settings in production, else (development) a file
under the data dir, created on first use, readable by its owner only."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from pydantic import SecretStr

from services.common.signing import Keypair, b64url_encode
from smartcity_sdk.signing import SEED_SIZE, parse_seed

log = logging.getLogger(__name__)

SECRET_SIZE = SEED_SIZE  # an Ed25519 seed and a SecretBox key alike: every secret here is 32 bytes


class SecretKeyError(ValueError):
    """A configured or stored secret is not base64url of 32 bytes."""


def parse_secret(text: str, name: str) -> bytes:
    """The 32 bytes of a base64url (padding optional) secret, read as the SDK reads a key file; `name` says
    which, in errors."""
    try:
        return parse_seed(text, name)
    except ValueError as exc:
        raise SecretKeyError(str(exc)) from exc


def load_secret(configured: SecretStr | None, path: Path) -> bytes:
    """`configured` if set, else the secret stored at `path`, created (0600) on first use.

    Written aside and linked into place, so two processes starting at once end up with the same secret.
    """
    if configured is not None:
        return parse_secret(configured.get_secret_value(), path.name)
    if path.exists():
        return parse_secret(path.read_text(), path.name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_bytes(SECRET_SIZE)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(b64url_encode(secret) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return parse_secret(path.read_text(), path.name)
    finally:
        os.unlink(tmp)
    log.warning("no configured %s: generated one into %s (development only)", path.name, path)
    return secret


def load_keypair(configured: SecretStr | None, path: Path) -> Keypair:
    """The Ed25519 keypair of a configured seed, else of the seed stored at `path` (see `load_secret`)."""
    return Keypair.from_seed(load_secret(configured, path))
