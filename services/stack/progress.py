"""Live progress of a running platform, read from the services' own ``/metrics`` and ledger API."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair

READINGS_ACCEPTED = "smartcity_ingest_readings_accepted"
READINGS_REJECTED = "smartcity_ingest_readings_rejected"
REWARDS_PRODUCED = "smartcity_rewards_produced"
REWARDS_SETTLED = "smartcity_ledger_rewards_settled"
MICRO = 1_000_000


@dataclass
class Snapshot:
    at: float
    readings_accepted: float = 0
    readings_rejected: float = 0
    rewards_produced: float = 0
    rewards_settled: float = 0
    height: int | None = None
    tree_size: int | None = None
    top_wallets: list[tuple[str, int]] = field(default_factory=list)
    readings_per_s: float = 0.0


def counter_total(metrics_text: str, family: str) -> float:
    """The sum over all labels of a counter family in Prometheus text."""
    total = 0.0
    for metric in text_string_to_metric_families(metrics_text):
        if metric.name == family:
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


async def _metrics(client: httpx.AsyncClient, url: str) -> str:
    try:
        response = await client.get(f"{url}/metrics")
        return response.text if response.status_code == 200 else ""
    except httpx.HTTPError:
        return ""


async def collect(
    client: httpx.AsyncClient,
    urls: dict[str, str],
    previous: Snapshot | None = None,
    auditor: Keypair | None = None,
) -> Snapshot:
    """Read one snapshot; `urls` maps service name to base URL."""
    snap = Snapshot(at=time.monotonic())
    ingest = await _metrics(client, urls["ingest"])
    snap.readings_accepted = counter_total(ingest, READINGS_ACCEPTED)
    snap.readings_rejected = counter_total(ingest, READINGS_REJECTED)
    snap.rewards_produced = counter_total(await _metrics(client, urls["rewards"]), REWARDS_PRODUCED)
    snap.rewards_settled = counter_total(await _metrics(client, urls["ledger"]), REWARDS_SETTLED)
    try:
        checkpoint = await client.get(f"{urls['ledger']}/v1/checkpoint")
        if checkpoint.status_code == 200:
            snap.height, snap.tree_size = checkpoint.json()["height"], checkpoint.json()["tree_size"]
        # Naming wallets with their balances is an auditor's read; without one, no top wallets are shown.
        top = await client.get(
            f"{urls['ledger']}/v1/accounts",
            params={"limit": 5, "currency": "CITY"},
            auth=SignedReadAuth(auditor) if auditor else httpx.USE_CLIENT_DEFAULT,
        )
        if top.status_code == 200:
            snap.top_wallets = [(a["wallet"], a["balance"]) for a in top.json()["accounts"]]
    except httpx.HTTPError:
        pass
    if previous is not None and snap.at > previous.at:
        snap.readings_per_s = (snap.readings_accepted - previous.readings_accepted) / (snap.at - previous.at)
    return snap


def city(micro_units: int) -> str:
    return f"{micro_units / MICRO:,.6f} CITY"


def short(wallet: str) -> str:
    return wallet if len(wallet) <= 24 else f"{wallet[:16]}…{wallet[-6:]}"


def table(snap: Snapshot, uptime_s: float) -> Table:
    """The progress as a rich table (for a terminal)."""
    grid = Table(title=f"smartcity — up {uptime_s:,.0f}s (Ctrl-C to stop)", show_header=False, expand=False)
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    grid.add_row("readings accepted/s", f"{snap.readings_per_s:,.1f}")
    grid.add_row("readings accepted", f"{snap.readings_accepted:,.0f}")
    grid.add_row("readings rejected", f"{snap.readings_rejected:,.0f}")
    grid.add_row("rewards produced", f"{snap.rewards_produced:,.0f}")
    grid.add_row("rewards settled", f"{snap.rewards_settled:,.0f}")
    grid.add_row("blocks sealed", "-" if snap.height is None else f"{snap.height + 1:,}")
    grid.add_row("tree size", "-" if snap.tree_size is None else f"{snap.tree_size:,}")
    for rank, (wallet, balance) in enumerate(snap.top_wallets, start=1):
        grid.add_row(f"top wallet #{rank} {short(wallet)}", city(balance))
    return grid


def plain_line(snap: Snapshot, uptime_s: float) -> str:
    """The progress as one plain line (when stdout is not a terminal)."""
    top = ", ".join(f"{short(w)}={city(b)}" for w, b in snap.top_wallets[:3]) or "-"
    blocks = "-" if snap.height is None else snap.height + 1
    return (
        f"up={uptime_s:.0f}s readings/s={snap.readings_per_s:.1f} accepted={snap.readings_accepted:.0f} "
        f"rejected={snap.readings_rejected:.0f} rewards={snap.rewards_produced:.0f} "
        f"settled={snap.rewards_settled:.0f} blocks={blocks} tree_size={snap.tree_size or 0} top=[{top}]"
    )
