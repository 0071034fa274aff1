"""The schedule: the nightly reconciliation of the previous day and a frequent duplicate sweep.

Windows are deterministic (a calendar day; a sweep tick aligned on the interval), and a
scheduled run's window is unique in `reconciliation_runs`, so with several scheduler replicas
each job runs once: the others find the run recorded and skip it. Missed nightly runs (the
scheduler was down) are caught up on start.

The sweep fires on the aligned ticks themselves, a short grace after each tick ends (so what
was written just before the end has committed), and covers that tick (plus the grace before
it, for a write that committed late), looking at the operations finished in it. A finding that
appears during a tick (a renewal done with no registry renewal, a cancel without its refund, a
second charge) is therefore swept, and the guard run, at most one interval plus the grace
after it appeared, plus the sweep's own run time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from reconciler.model import RunSummary, Window
from reconciler.run import SWEEP_CHECKS, Reconciler
from reconciler.store import RunAlreadyDone

log = structlog.get_logger(__name__)

# Called after each nightly run (the CLI writes its report), and after each sweep this
# replica ran (the CLI runs the rollout guard).
AfterRun = Callable[[RunSummary], Awaitable[object]]


@dataclass(frozen=True)
class ScheduleConfig:
    nightly_hour: int = 2
    nightly_minute: int = 0
    timezone: str = "UTC"
    sweep_every_s: float = 300.0
    catch_up_days: int = 7
    shutdown_grace_s: float = 30.0  # on stop, how long a running job may take to finish

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def day_window(day: dt.date, tz: ZoneInfo) -> Window:
    start = dt.datetime.combine(day, dt.time(0), tz)
    return Window(start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz))


def sweep_grace(every_s: float) -> float:
    """Seconds after a tick's end before it is swept: a tenth of the interval, at most 5 s."""
    return min(5.0, every_s / 10)


def sweep_window(now: dt.datetime, every_s: float) -> Window:
    """The last complete tick before `now`, end aligned on the interval, from the grace before
    its start (overlapping the tick before by that much): [end - every - grace, end)."""
    epoch = now.timestamp()
    end = epoch - (epoch % every_s)
    return Window(
        dt.datetime.fromtimestamp(end - every_s - sweep_grace(every_s), dt.UTC),
        dt.datetime.fromtimestamp(end, dt.UTC),
    )


def sweep_trigger(config: ScheduleConfig) -> IntervalTrigger:
    """Fires at each tick's end plus the grace (aligned on the epoch, as the windows are)."""
    start = dt.datetime.fromtimestamp(sweep_grace(config.sweep_every_s), dt.UTC)
    return IntervalTrigger(seconds=config.sweep_every_s, start_date=start, timezone=config.tz)


async def run_once(
    rec: Reconciler, window: Window, kind: str, *, sweep: bool = False
) -> RunSummary | None:
    """Run a scheduled window unless another replica already did (then None)."""
    try:
        if sweep:
            return await rec.run(window, kind, wait=True, selected=SWEEP_CHECKS)
        return await rec.run(window, kind, wait=True)
    except RunAlreadyDone:
        log.info("schedule.skipped", kind=kind, window=window.as_dict(), reason="already run")
        await rec.refresh_gauges()  # every replica shows the stuck work as of now
        return None


async def _nightly_of(
    rec: Reconciler, day: dt.date, config: ScheduleConfig, after: AfterRun | None
) -> RunSummary | None:
    summary = await run_once(rec, day_window(day, config.tz), "nightly")
    if summary is not None and after is not None:
        await after(summary)
    return summary


async def nightly(
    rec: Reconciler, config: ScheduleConfig, after: AfterRun | None = None
) -> RunSummary | None:
    yesterday = dt.datetime.now(config.tz).date() - dt.timedelta(days=1)
    return await _nightly_of(rec, yesterday, config, after)


async def sweep(
    rec: Reconciler, config: ScheduleConfig, after: AfterRun | None = None
) -> RunSummary | None:
    window = sweep_window(dt.datetime.now(dt.UTC), config.sweep_every_s)
    summary = await run_once(rec, window, "sweep", sweep=True)
    if summary is not None and after is not None:
        await after(summary)
    return summary


async def catch_up(
    rec: Reconciler, config: ScheduleConfig, after: AfterRun | None = None
) -> list[dt.date]:
    """Run the nightly reconciliation of every recent day that has none."""
    today = dt.datetime.now(config.tz).date()
    days = [today - dt.timedelta(days=n) for n in range(config.catch_up_days, 0, -1)]
    async with rec.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT window_start FROM reconciliation_runs WHERE kind = 'nightly' AND status = 'ok'"
        )
        done = {row[0].astimezone(config.tz).date() for row in await cur.fetchall()}
    ran = []
    for day in days:
        if day not in done and await _nightly_of(rec, day, config, after):
            ran.append(day)
    if ran:
        log.info("schedule.caught_up", days=[d.isoformat() for d in ran])
    return ran


async def serve(
    rec: Reconciler,
    config: ScheduleConfig,
    stop: asyncio.Event,
    after: AfterRun | None = None,
    after_sweep: AfterRun | None = None,
) -> None:
    """Catch up, then run the schedule until `stop` is set (`after` each nightly run,
    `after_sweep` each sweep)."""
    await catch_up(rec, config, after)
    in_flight: set[asyncio.Task[Any]] = set()

    async def tracked(job: Callable[..., Awaitable[object]], *args: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        in_flight.add(task)
        try:
            await job(*args)
        finally:
            in_flight.discard(task)

    scheduler = AsyncIOScheduler(timezone=config.tz)
    scheduler.add_job(
        tracked,
        CronTrigger(hour=config.nightly_hour, minute=config.nightly_minute, timezone=config.tz),
        args=[nightly, rec, config, after],
        id="nightly",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=3600,
    )
    scheduler.add_job(
        tracked,
        sweep_trigger(config),
        args=[sweep, rec, config, after_sweep],
        id="sweep",
        max_instances=1,
        coalesce=True,
        next_run_time=dt.datetime.now(config.tz),
    )
    scheduler.start()
    log.info(
        "schedule.started",
        nightly=f"{config.nightly_hour:02d}:{config.nightly_minute:02d} {config.timezone}",
        sweep_every_s=config.sweep_every_s,
    )
    try:
        await stop.wait()
    finally:
        scheduler.pause()  # no new job; a running one finishes and records its run
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=config.shutdown_grace_s)
        scheduler.shutdown(wait=False)
        log.info("schedule.stopped")
