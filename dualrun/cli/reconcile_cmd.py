"""`dualrun reconcile` and `dualrun duplicates`."""

from __future__ import annotations

import asyncio
import datetime as dt
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfoNotFoundError

import click

from dualrun.cli.context import AppContext, emit, pass_app
from dualrun.cli.options import metrics_options
from dualrun.rollout.guard import guard
from dualrun.rollout.guard import prime as prime_rollbacks
from dualrun.wiring import reconciler, stop_on_signals, write_report
from reconciler.model import RunSummary, Window
from reconciler.report.model import UNCHECKED_BECAUSE
from reconciler.run import SWEEP_CHECKS
from reconciler.schedule import ScheduleConfig, serve
from renewals.errors import InvalidInput
from renewals.metrics import serve_metrics

stuck_after_option = click.option(
    "--stuck-after",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Minutes after which an unfinished operation is stuck.",
)


def parse_instant(raw: str | None, field: str, default: dt.datetime) -> dt.datetime:
    """ISO 8601 date or date-time; naive means UTC."""
    if raw is None:
        return default
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(field, f"not an ISO 8601 date or date-time: {raw[:40]!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def window_of(since: str | None, until: str | None, default_hours: float = 24) -> Window:
    now = dt.datetime.now(dt.UTC)
    end = parse_instant(until, "until", now)
    start = parse_instant(since, "since", end - dt.timedelta(hours=default_hours))
    if start >= end:
        raise InvalidInput(
            "since", f"must be before until ({start.isoformat()} >= {end.isoformat()})"
        )
    return Window(start, end)


@click.command("reconcile")
@click.option("--since", help="Window start, ISO 8601 (default: 24 hours before --until).")
@click.option("--until", help="Window end, ISO 8601 (default: now).")
@click.option("--details", is_flag=True, help="List every finding.")
@click.option(
    "--wait", is_flag=True, help="Queue behind a running reconciliation instead of exiting."
)
@stuck_after_option
@click.option("--json", "as_json", is_flag=True)
@pass_app
def reconcile(
    app: AppContext,
    since: str | None,
    until: str | None,
    details: bool,
    wait: bool,
    stuck_after: float,
    as_json: bool,
) -> None:
    """Compare what both engines did over a window; record findings, alert on new ones."""
    window = window_of(since, until)

    async def run() -> tuple[RunSummary, dict[str, Path] | None]:
        async with reconciler(app.settings, stuck_after=dt.timedelta(minutes=stuck_after)) as rec:
            summary = await rec.run(window, "manual", wait=wait)
            return summary, await write_report(app.settings, rec.pool, summary)

    summary, report = asyncio.run(run())
    lines = [
        f"run {summary.run_id}: {summary.operations} operations, "
        f"{summary.new_findings} new findings, {summary.duration_s:.2f} s",
        *(f"  {kind}: {count}" for kind, count in summary.findings.items()),
        *(
            f"  not checked: {check} ({UNCHECKED_BECAUSE.get(check, 'not run')})"
            for check in summary.unchecked
        ),
    ]
    if details:
        lines += [f"  - [{f.severity}] {f.kind}: {f.summary}" for f in summary.details]
    lines.append(f"report: {report['html']}" if report else "report: not written (see log)")
    doc = summary.as_dict(details=details)
    doc["report"] = {fmt: str(path) for fmt, path in report.items()} if report else None
    emit(doc, as_json, "\n".join(lines))


@click.command("duplicates")
@click.option("--since", help="Operations created since, ISO 8601 (default: 24 hours ago).")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def duplicates(app: AppContext, since: str | None, as_json: bool) -> None:
    """Sweep for duplicate operations and double charges now (recorded and alerted once)."""
    window = window_of(since, None)

    async def run() -> RunSummary:
        async with reconciler(app.settings) as rec:
            # Recorded as a sweep (the checks it runs), so reports keep the latest full run.
            return await rec.run(window, "sweep", wait=True, selected=SWEEP_CHECKS)

    summary = asyncio.run(run())
    text = "\n".join(
        f"{f.idempotency_key}: {', '.join(f.operation_ids)} ({f.kind})" for f in summary.details
    )
    emit(summary.as_dict(details=True), as_json, text or "no duplicates")


COMMANDS = [reconcile, duplicates]


def _clock(raw: str) -> tuple[int, int]:
    hour, sep, minute = raw.partition(":")
    if not (sep and hour.isdigit() and minute.isdigit()) or int(hour) > 23 or int(minute) > 59:
        raise InvalidInput("nightly_at", f"must be HH:MM, got {raw!r}")
    return int(hour), int(minute)


@click.command("scheduler")
@click.option(
    "--nightly-at",
    envvar="DUALRUN_NIGHTLY_AT",
    default="02:00",
    show_default=True,
    help="Local time of the nightly reconciliation of the previous day.",
)
@click.option("--timezone", envvar="DUALRUN_TIMEZONE", default="UTC", show_default=True)
@click.option(
    "--sweep-every",
    envvar="DUALRUN_SWEEP_SECONDS",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds between duplicate sweeps.",
)
@click.option(
    "--catch-up-days",
    type=click.IntRange(0, 90),
    default=7,
    show_default=True,
    help="Nightly runs missed in these last days are run on start.",
)
@stuck_after_option
@metrics_options
@pass_app
def scheduler(
    app: AppContext,
    nightly_at: str,
    timezone: str,
    sweep_every: float,
    catch_up_days: int,
    stuck_after: float,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run the nightly reconciliation and the duplicate sweep on a schedule (replica-safe); after
    each sweep, the rollout guard (`dualrun rollout guard`)."""
    hour, minute = _clock(nightly_at)
    try:
        config = ScheduleConfig(hour, minute, timezone, sweep_every, catch_up_days)
        config.tz  # noqa: B018 - validates the name
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone {timezone!r}") from None
    serve_metrics(metrics_port, metrics_host)

    async def run() -> None:
        stop = stop_on_signals()
        async with reconciler(app.settings, stuck_after=dt.timedelta(minutes=stuck_after)) as rec:
            prime_rollbacks(app.settings.tlds)

            async def guard_after_sweep(_: RunSummary) -> None:
                await guard(rec.pool, app.settings)  # the kill switch, within one sweep

            report = partial(write_report, app.settings, rec.pool)
            await serve(rec, config, stop, report, guard_after_sweep)

    asyncio.run(run())


COMMANDS.append(scheduler)
