"""`dualrun worker`: the Temporal workers (renewal queue and per-registry queues)."""

from __future__ import annotations

import asyncio

import click

from dualrun.cli.context import AppContext, pass_app
from dualrun.cli.options import metrics_options
from dualrun.wiring import services, stop_on_signals
from renewals.metrics import serve_metrics
from temporal_flow.activities import RenewalActivities
from temporal_flow.starter import connect
from temporal_flow.worker import WorkerOptions, queue_names, run_workers


@click.command("worker")
@click.option(
    "--queues",
    default="",
    metavar="Q1,Q2",
    help="Queues to serve: 'main' and/or 'registry-<tld>' (default: all).",
)
@click.option("--drain", is_flag=True, help="Exit once no renewal workflow is open.")
@click.option(
    "--graceful-timeout",
    type=click.FloatRange(0, 600),
    default=20.0,
    show_default=True,
    help="Seconds running activities get to finish on SIGTERM.",
)
@metrics_options
@pass_app
def worker(
    app: AppContext,
    queues: str,
    drain: bool,
    graceful_timeout: float,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run the renewal workflow and activity workers until SIGTERM (or drained)."""
    chosen = tuple(q.strip() for q in queues.split(",") if q.strip())
    known = queue_names(app.settings)
    for q in chosen:
        if q not in known:
            raise click.BadParameter(
                f"unknown queue {q!r} (known: {', '.join(known)})", param_hint="--queues"
            )
    options = WorkerOptions(queues=chosen, graceful_shutdown_s=graceful_timeout)
    serve_metrics(metrics_port, metrics_host)

    async def run() -> None:
        stop = stop_on_signals()
        client = await connect(app.settings)
        async with services(app.settings, pool_size=20, autocommit=True) as s:
            activities = RenewalActivities(s.pool, s.registry, s.billing)
            await run_workers(client, app.settings, s.pool, activities, options, stop, drain=drain)

    asyncio.run(run())


COMMANDS = [worker]
