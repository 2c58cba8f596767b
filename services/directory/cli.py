"""``smartcity directory ...``: the directory's own commands."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from services.common import db
from services.common.kafka import KafkaProducer
from services.common.roles import Role, service_key
from services.common.settings import PlatformSettings
from services.common.signing import Keypair, b64url_decode
from services.directory.settings import SERVICE, DirectorySettings
from services.directory.store import MerchantStore

app = typer.Typer(help="The directory of local businesses.", no_args_is_help=True)


@app.command("seed")
def seed_command(
    count: Annotated[int, typer.Option(min=1, help="How many merchants.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same city.")] = 1,
    verifier_seed: Annotated[
        str | None,
        typer.Option(
            help="base64url 32-byte seed of the city key that signs the verifications (one of "
            "DIRECTORY_VERIFIER_KEYS); default: a new key, whose did:key is printed."
        ),
    ] = None,
    publish: Annotated[bool, typer.Option(help="Publish every merchant to city.merchants.v1.")] = True,
) -> None:
    """Load a synthetic city's merchants (local shops and chain branches) into the directory database."""
    from services.directory.publishing import MerchantPublisher
    from services.directory.seed import seed as run_seed

    platform = PlatformSettings()
    verifier = (
        Keypair.generate() if verifier_seed is None else Keypair.from_seed(b64url_decode(verifier_seed))
    )
    if verifier.did not in DirectorySettings().verifier_keys:
        typer.echo(f"verifications are signed by {verifier.did}, which DIRECTORY_VERIFIER_KEYS does not list")

    async def run() -> int:
        url = await db.prepare_database(platform, SERVICE)
        engine = db.create_engine(url, pool_size=1)
        producer = None
        if publish:
            producer = KafkaProducer(platform.bootstrap_servers, SERVICE, platform.kafka_send_timeout_s)
        try:
            key = service_key(DirectorySettings().publisher_key, platform.data_dir, Role.MERCHANT_VERIFIER)
            publisher = None if producer is None else MerchantPublisher(producer, key)
            return await run_seed(
                MerchantStore(engine),
                publisher,
                count,
                seed,
                verifier,
                lambda n: typer.echo(f"{n} merchants"),
            )
        finally:
            if producer is not None:
                producer.close()
            await engine.dispose()

    stored = asyncio.run(run())
    typer.echo(f"seeded {stored} merchants" + (" and published them" if publish else ""))
