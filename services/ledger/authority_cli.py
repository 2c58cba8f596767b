"""``smartcity authority``: the city root key's commands to a ledger, signed where the key is kept.

The root key never needs to be on the platform's machines: an operator runs this where the seed is (from
``SMARTCITY_ROOT_SEED``, or in development the data dir's ``city/root.key``), and only the signed command
travels to ``POST /v1/authority/commands``. The nonce is the time in milliseconds, so commands signed one after
the other are ordered without asking the ledger for the last one.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import httpx
import typer

from services.common import roles
from services.common.keyfiles import parse_secret
from services.common.settings import PlatformSettings
from services.common.signing import Keypair

app = typer.Typer(
    help="The city root key's commands: grant and revoke roles, rotate the root.", no_args_is_help=True
)

Ledger = Annotated[str, typer.Option(help="The ledger's base URL.")]
RootSeed = Annotated[
    str | None,
    typer.Option(
        envvar="SMARTCITY_ROOT_SEED",
        help="base64url 32-byte seed of the root key in force (default: the data dir's development key).",
    ),
]


def root_command(root: Keypair, command: str, nonce: int, **args: Any) -> dict[str, Any]:
    """A root command signed by `root` (schemas/authority-commands.v1.json)."""
    return root.sign({"command": command, "root": root.did, "nonce": nonce, **args})


def _send(ledger: str, root_seed: str | None, command: str, **args: Any) -> None:
    root = (
        Keypair.from_seed(parse_secret(root_seed, "SMARTCITY_ROOT_SEED"))
        if root_seed
        else roles.root_key(PlatformSettings().data_dir)
    )
    body = root_command(root, command, time.time_ns() // 1_000_000, **args)
    try:
        response = httpx.post(f"{ledger.rstrip('/')}/v1/authority/commands", json=body, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the ledger at {ledger}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code not in (200, 201):
        typer.echo(f"refused ({response.status_code}): {response.text}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{command} settled as {response.json()['tx_id']}")


@app.command("grant")
def grant(
    role: Annotated[roles.Role, typer.Argument(help="The role.")],
    key: Annotated[str, typer.Argument(help="The did:key that gains it.")],
    ledger: Ledger = "http://127.0.0.1:8103",
    root_seed: RootSeed = None,
) -> None:
    """Grant a role to a key (a chain record signed by the root key)."""
    _send(ledger, root_seed, "grant-role", role=str(role), key=key)


@app.command("revoke")
def revoke(
    role: Annotated[roles.Role, typer.Argument(help="The role.")],
    key: Annotated[str, typer.Argument(help="The did:key that loses it.")],
    ledger: Ledger = "http://127.0.0.1:8103",
    root_seed: RootSeed = None,
) -> None:
    """Revoke a key's role: its signatures on records sealed after this one no longer count."""
    _send(ledger, root_seed, "revoke-role", role=str(role), key=key)


@app.command("rotate-root")
def rotate_root(
    new_root: Annotated[str, typer.Argument(help="The did:key of the new root key.")],
    ledger: Ledger = "http://127.0.0.1:8103",
    root_seed: RootSeed = None,
) -> None:
    """Hand the root over to another key; the old one can do nothing more."""
    _send(ledger, root_seed, "rotate-root", new_root=new_root)
