"""The ``smartcity`` command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from services.common import db
from services.common.kafka import ensure_topics
from services.common.logs import configure_logging
from services.common.settings import PlatformSettings
from services.common.signing import Keypair, b64url_encode
from services.common.topics import ALL_TOPICS
from services.directory.cli import app as directory_app
from services.ledger.authority_cli import app as authority_app

app = typer.Typer(
    help="Smart-city platform: readings to micro-rewards on a verifiable ledger.", no_args_is_help=True
)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
db_app = typer.Typer(help="Service databases.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(directory_app, name="directory")
app.add_typer(authority_app, name="authority")

DATABASE_SERVICES = ("ingest", "ledger", "identity", "directory")


@app.command()
def up(
    simulate: Annotated[bool, typer.Option(help="Also run the sensor simulator.")] = True,
    drain_timeout: Annotated[
        float,
        typer.Option(
            min=0, help="On Ctrl-C, how long to wait for the accepted readings to be decided and settled."
        ),
    ] = 120.0,
) -> None:
    """Run the whole platform (embedded broker and PostgreSQL unless configured) until Ctrl-C, then drain
    it and stop it."""
    from services.stack.up import up as run_up

    platform = PlatformSettings()
    configure_logging("smartcity", platform.log_format, "WARNING")
    raise typer.Exit(run_up(platform, simulate=simulate, drain_timeout_s=drain_timeout))


@topics_app.command("create")
def topics_create(
    replication_factor: Annotated[int, typer.Option(help="Replicas per partition.")] = 1,
) -> None:
    """Create every platform topic that does not exist yet (partitions, cleanup policy)."""
    platform = PlatformSettings()
    created = ensure_topics(platform.bootstrap_servers, ALL_TOPICS, replication_factor=replication_factor)
    for topic in ALL_TOPICS:
        state = "created" if topic.name in created else "exists"
        typer.echo(f"{topic.name}\tpartitions={topic.partitions}\tcleanup={topic.cleanup_policy}\t{state}")


@topics_app.command("acls")
def topics_acls(
    passwords: Annotated[
        str,
        typer.Option(
            envvar="SMARTCITY_KAFKA_PASSWORDS",
            help='JSON {"ingest": "...", "rewards": "...", ..., "analyst": "..."}: each service\'s and the'
            " analysts' SCRAM password.",
        ),
    ],
) -> None:
    """Create each service's SCRAM user and ACLs (it writes its own topics, reads what it consumes), and the
    analysts' (user ``analyst``: it reads only what is meant for them, zone statistics and checkpoints); run
    with the broker's administrator credentials (KAFKA_SASL_*)."""
    from services.common.kafka_access import apply

    try:
        done = apply(PlatformSettings().bootstrap_servers, json.loads(passwords))
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    for line in done:
        typer.echo(line)


@topics_app.command("list")
def topics_list() -> None:
    """Show the topic registry: name, key, schema, partitions, cleanup policy."""
    for topic in ALL_TOPICS:
        typer.echo(
            f"{topic.name}\tkey={topic.key}\tschema=schemas/{topic.schema}\t{topic.partitions}\t{topic.cleanup_policy}"
        )


@db_app.command("migrate")
def db_migrate(
    service: Annotated[str, typer.Argument(help="A service name, or 'all'.")] = "all",
) -> None:
    """Create the service databases that are missing and migrate them to the latest revision."""
    if service != "all" and service not in DATABASE_SERVICES:
        raise typer.BadParameter(f"one of {', '.join(DATABASE_SERVICES)} or 'all'")
    platform = PlatformSettings()
    names = DATABASE_SERVICES if service == "all" else (service,)

    async def migrate() -> None:
        for name in names:
            url = await db.prepare_database(platform, name)
            typer.echo(f"{name}: {url.database} at head")

    asyncio.run(migrate())


@app.command()
def keygen() -> None:
    """Print a new Ed25519 key: its did:key and its seed (base64url), e.g. for LEDGER_SIGNING_KEY."""
    key = Keypair.generate()
    typer.echo(f"did={key.did}")
    typer.echo(f"seed={b64url_encode(key.seed)}")


@app.command()
def verify(
    ledger: Annotated[str, typer.Option(help="The ledger's base URL, e.g. http://127.0.0.1:8103.")],
    public_key: Annotated[str, typer.Option(help="The ledger's did:key, the only thing trusted.")],
    tx: Annotated[list[str] | None, typer.Option(help="Check inclusion of these transactions only.")] = None,
    replay: Annotated[
        bool,
        typer.Option(help="Replay every leaf: authorisations, roles, policies, money; compare all balances."),
    ] = False,
    deep: Annotated[
        bool, typer.Option(help="Replay, and check every device's signature too (ingest's own audit).")
    ] = False,
    auditor_key: Annotated[
        Path | None,
        typer.Option(
            help="A file holding the base64url seed of a key with the chain's auditor role: the replay then "
            "compares every account's balances (a signed read), not only each currency's public totals."
        ),
    ] = None,
) -> None:
    """Verify a ledger over HTTP: checkpoint signatures, consistency, inclusion, optionally a full replay."""
    from services.common.keyfiles import parse_secret
    from services.common.signing import Keypair
    from services.ledger.verifier import run

    auditor = None
    if auditor_key is not None:
        auditor = Keypair.from_seed(parse_secret(auditor_key.read_text(), "the auditor key"))
    raise typer.Exit(run(ledger, public_key, tx, replay, deep, auditor))


@app.command()
def simulate() -> None:
    """Run only the sensor simulator against SIMULATOR_INGEST_URL (see SIMULATOR_* settings)."""
    from services.simulator.run import run_until_signalled

    platform = PlatformSettings()
    configure_logging("simulator", platform.log_format, platform.log_level)
    run_until_signalled()
