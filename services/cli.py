"""The ``smartcity`` command."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
import yaml

from services.common import db, didkey, roles
from services.common.kafka import ensure_topics
from services.common.keyfiles import SECRET_SIZE
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
keys_app = typer.Typer(help="The keys a deployment needs.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
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
    rewards_workers: Annotated[
        int,
        typer.Option(
            min=1, help="Rewards workers in the consumer group (they split the readings partitions)."
        ),
    ] = 1,
) -> None:
    """Run the whole platform (embedded broker and PostgreSQL unless configured) until Ctrl-C, then drain
    it and stop it."""
    from services.stack.up import up as run_up

    platform = PlatformSettings()
    configure_logging("smartcity", platform.log_format, "WARNING")
    raise typer.Exit(
        run_up(platform, simulate=simulate, drain_timeout_s=drain_timeout, rewards_workers=rewards_workers)
    )


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


SERVICE_KEY_SECRETS: dict[tuple[str, str], str] = {
    ("ingest", "attestor"): "INGEST_ATTESTOR_KEY",
    ("rewards", "oracle"): "REWARDS_ORACLE_KEY",
    ("directory", "publisher"): "DIRECTORY_PUBLISHER_KEY",
    ("identity", "city"): "IDENTITY_CITY_KEY",
}
"""The setting (and Secret key) of each service key of `roles.SERVICE_KEYS`, whose did:key holds its roles."""

SECRET_ENV = "secret.env"
CONFIG_PATCH = "config-patch.yaml"


@dataclass(frozen=True)
class DeploymentKeys:
    """New keys for a deployment, made together so that the public half always matches the secret half."""

    secret: dict[str, str]
    """Every value of the Secret smartcity-secrets."""
    config: dict[str, str]
    """The ConfigMap settings naming their public keys, and the root's and the operators' did:keys."""
    ledger_did: str
    """The did:key of LEDGER_SIGNING_KEY, which auditors verify the chain against."""


def deployment_keys(database_url: str, root_did: str, operator_dids: list[str]) -> DeploymentKeys:
    """New keys for a deployment whose root and operators hold the keys of `root_did` and `operator_dids`."""
    ledger = Keypair.generate()
    service_keys = {setting: Keypair.generate() for setting in SERVICE_KEY_SECRETS.values()}
    secret = {
        "DATABASE_URL": database_url,
        "LEDGER_SIGNING_KEY": b64url_encode(ledger.seed),
        **{setting: b64url_encode(key.seed) for setting, key in service_keys.items()},
        "IDENTITY_WALLET_KEY": b64url_encode(secrets.token_bytes(SECRET_SIZE)),  # a SecretBox key: no did:key
    }
    did_of = {setting: key.did for setting, key in service_keys.items()}
    city = did_of["IDENTITY_CITY_KEY"]
    config = {
        "LEDGER_ROOT_KEY": root_did,
        "LEDGER_GENESIS_ROLES": json.dumps(
            {role.value: [did_of[SERVICE_KEY_SECRETS[key]]] for role, key in roles.SERVICE_KEYS.items()}
        ),
        "REWARDS_INGEST_ATTESTORS": json.dumps([did_of["INGEST_ATTESTOR_KEY"]]),
        "INGEST_BINDING_ISSUERS": json.dumps([city]),
        "INGEST_REWARDS_ORACLES": json.dumps([did_of["REWARDS_ORACLE_KEY"]]),
        "LEDGER_BALANCE_READERS": json.dumps([city]),
        "INGEST_OPERATORS": json.dumps(operator_dids),
    }
    return DeploymentKeys(secret, config, ledger.did)


def _write_private(path: Path, text: str) -> None:
    """Write a new file only its owner may read (never over an existing one)."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)


@keys_app.command("k8s-secret")
def keys_k8s_secret(
    out: Annotated[Path, typer.Option(help="A new directory to write the keys into.")],
    database_url: Annotated[
        str,
        typer.Option(
            help="The PostgreSQL server, postgresql://USER:PASSWORD@HOST:5432/postgres (USER with CREATEDB)."
        ),
    ],
    root_did: Annotated[
        str | None,
        typer.Option(
            help="The did:key of the city's root key, if it exists already; else one is made (OUT/root.key)."
        ),
    ] = None,
    operator_did: Annotated[
        list[str] | None,
        typer.Option(help="A city operator's did:key (repeatable); none: one is made (OUT/operator.key)."),
    ] = None,
) -> None:
    """New keys for Kubernetes: OUT/secret.env holds every key of the Secret smartcity-secrets (for
    `kubectl create secret generic --from-env-file`), OUT/config-patch.yaml the ConfigMap settings naming their
    public keys (a patch of smartcity-config, public), and the root and operator keys made, if any, their own
    files: people hold those, never the cluster."""
    if not database_url.startswith("postgresql://") or "\n" in database_url:
        raise typer.BadParameter(
            "expected postgresql://USER:PASSWORD@HOST:5432/postgres", param_hint="--database-url"
        )
    for did in [*([root_did] if root_did else []), *(operator_did or [])]:
        if not didkey.is_did_key(did):
            raise typer.BadParameter(f"{did!r} is not an Ed25519 did:key")
    try:
        out.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        raise typer.BadParameter(f"{out} exists: keys are never written over", param_hint="--out") from None
    made: dict[str, Keypair] = {}
    if root_did is None:
        made["root.key"] = Keypair.generate()
        root_did = made["root.key"].did
    if not operator_did:
        made["operator.key"] = Keypair.generate()
        operator_did = [made["operator.key"].did]
    keys = deployment_keys(database_url, root_did, operator_did)
    for name, key in made.items():
        _write_private(out / name, b64url_encode(key.seed) + "\n")
    _write_private(
        out / SECRET_ENV,
        "# kubectl -n smartcity create secret generic smartcity-secrets --from-env-file=THIS_FILE\n"
        + "".join(f"{name}={value}\n" for name, value in keys.secret.items()),
    )
    patch = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "smartcity-config"},
        "data": keys.config,
    }
    (out / CONFIG_PATCH).write_text(
        "# Public: the did:keys of the keys in secret.env and of the city's root and operators. List this file\n"
        "# under `patches` of your overlay.\n" + yaml.safe_dump(patch, sort_keys=False, width=1000)
    )
    typer.echo(f"wrote {out / SECRET_ENV} (secret), {out / CONFIG_PATCH} (public)")
    for name in made:
        typer.echo(f"wrote {out / name}: move it off this machine, it is not for the cluster")
    typer.echo(f"the ledger's did:key, which auditors verify against: {keys.ledger_did}")
    typer.echo(
        f"next: kubectl -n smartcity create secret generic smartcity-secrets --from-env-file={out / SECRET_ENV}"
        f", add {CONFIG_PATCH} to your overlay's patches, then delete {SECRET_ENV}"
    )


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
