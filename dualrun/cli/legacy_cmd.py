"""`dualrun legacy-engine` (the reference robots) and `dualrun autorenew-batch`."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path

import click

from dualrun.cli.context import AppContext, emit, pass_app
from dualrun.cli.options import metrics_options
from dualrun.wiring import services, stop_on_signals
from ops.legacy_engine.autorenew import BatchResult, create_batch, read_batch_file
from ops.legacy_engine.pacing import Pacer
from ops.legacy_engine.robots import RobotConfig, Robots
from renewals.metrics import serve_metrics

_positive = click.FloatRange(min=0.01)


@click.command("legacy-engine")
@click.option("--robots", type=click.IntRange(1, 200), default=4, show_default=True)
@click.option(
    "--poll-interval",
    type=_positive,
    default=5.0,
    show_default=True,
    help="Seconds between polls when idle (a legacy engine polls in seconds).",
)
@click.option(
    "--lease",
    type=_positive,
    default=30.0,
    show_default=True,
    help="Seconds a robot holds an operation before another may take it over.",
)
@click.option(
    "--retry-delay",
    type=_positive,
    default=30.0,
    show_default=True,
    help="Seconds before an operation in error is picked up again.",
)
@click.option("--max-attempts", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option(
    "--pace",
    is_flag=True,
    help="Never call a registry faster than its limit (DUALRUN_LEGACY_RATE_LIMITS, else"
    " DUALRUN_REGISTRY_RATE_LIMITS):"
    " every robot waits its TLD's turn, waits a 429 out in place, and a TLD's robots hold at"
    " most a second's worth of its calls. Off: the robots retry each 429 blindly.",
)
@click.option("--drain", is_flag=True, help="Exit once no legacy work is left.")
@click.option(
    "--stale-writes",
    is_flag=True,
    help="Play an older robot: write each step by operation id alone, without checking the"
    " lease or the row's status (only the database's forward-only rule stops it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@metrics_options
@pass_app
def legacy_engine(
    app: AppContext,
    robots: int,
    poll_interval: float,
    lease: float,
    retry_delay: float,
    max_attempts: int,
    pace: bool,
    drain: bool,
    stale_writes: bool,
    as_json: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run the reference legacy engine: robots polling the operations table."""
    config = RobotConfig(
        robots=robots,
        poll_interval_s=poll_interval,
        lease_s=lease,
        retry_delay_s=retry_delay,
        max_attempts=max_attempts,
        drain=drain,
        stale_writes=stale_writes,
    )
    serve_metrics(metrics_port, metrics_host)

    async def run() -> dict[str, int]:
        stop = stop_on_signals()
        async with services(app.settings, pool_size=robots + 2) as s:
            pacer = Pacer(app.settings.legacy_rate_limit, app.settings.tlds) if pace else None
            engine = Robots(s.pool, s.registry, s.billing, config, pacer)
            return vars(await engine.run(stop))

    stats = asyncio.run(run())
    emit(stats, as_json, " ".join(f"{k}={v}" for k, v in stats.items()))


@click.command("autorenew-batch")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="CSV: domain,current_expiry,customer_id[,years]",
)
@click.option(
    "--duplicate-share",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of renewals the batch creates twice (the month-start incident).",
)
@click.option("--seed", type=int, default=None, help="Seed choosing which ones are doubled.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def autorenew_batch(
    app: AppContext, path: Path, duplicate_share: float, seed: int | None, as_json: bool
) -> None:
    """Create renewal operations straight in the legacy tables, bypassing the router."""
    requests = read_batch_file(path, app.settings.tlds)

    async def run() -> BatchResult:
        async with services(app.settings, pool_size=2) as s:
            return await create_batch(s.pool, requests, duplicate_share=duplicate_share, seed=seed)

    result = asyncio.run(run())
    text = f"created {result.created} operations, {len(result.duplicated_keys)} duplicated"
    emit(asdict(result), as_json, text)


COMMANDS = [legacy_engine, autorenew_batch]
