"""The demo, step by step: stack, flags, seed, engines, burst, drain, reconcile, summary."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from dualrun.demo import summary
from dualrun.demo.plan import FLAGS, DemoConfig, Domains, make_domains
from dualrun.demo.processes import EngineProcesses
from dualrun.flags.control import set_enabled, set_rule
from dualrun.flags.model import RuleChange
from dualrun.rollout import events
from dualrun.rollout.actions import current, verdicts
from dualrun.rollout.events import Position, RolloutEvent
from dualrun.wiring import (
    migrate_for,
    reconciler,
    renewal_service,
    stack_down,
    stack_up,
    write_report,
)
from ops.legacy_engine.autorenew import create_batch
from ops.processes import ServiceStatus
from ops.registry_sim.admin import SimAdmin
from ops.unleash.stack import LOGIN
from reconciler.model import Window
from reconciler.report.verdict import Thresholds, Verdict
from renewals.db.pool import async_pool
from renewals.model import Mode
from renewals.settings import Settings

log = structlog.get_logger(__name__)

Say = Callable[[str], None]
DEMO_RUNS = 1  # full reconciliation runs the demo makes, and judges readiness on


@dataclass(frozen=True)
class DemoResult:
    document: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(self.document["invariants"].values())


def prepare(
    settings: Settings,
    config: DemoConfig,
    say: Say,
    unleash: bool = True,
    notice: Say | None = None,
) -> tuple[Domains, bool, Settings]:
    """Bring the stack up, set the flags, seed the registries. Returns (domains, started, the
    settings using the stack's Unleash when it runs). A part not run is said with `notice`
    (when given: said even where the narration is not)."""
    started = False

    def report(action: str, status: ServiceStatus) -> None:
        nonlocal started
        started = started or action == "started"
        where = status.note if action == "off" else status.address
        (notice if action == "off" and notice else say)(f"  {status.name:<13} {action:<8} {where}")

    say("stack:")
    _, settings = stack_up(settings, report, unleash=unleash)
    migrate_for(settings)
    _, where = set_enabled(settings, True)
    for tld, (mode, rollout) in FLAGS.items():
        set_rule(settings, RuleChange(tld, mode, rollout))
    asyncio.run(_record_flags(settings))
    say(f"flags ({where}): " + ", ".join(f".{t} {m.value} {r}%" for t, (m, r) in FLAGS.items()))
    domains = make_domains(config, dt.datetime.now(dt.UTC).date())
    with SimAdmin.for_settings(settings) as admin:
        for tld, names in domains.by_tld.items():
            admin.configure(
                tld,
                rate_limit=settings.rate_limit(tld),
                burst=max(1, int(settings.rate_limit(tld))),
                commit_timeout_rate=config.commit_timeout_rate,
                hold_s=settings.registry_timeout_s + 2,
                seed=config.seed,
            )
            premium = int(len(names) * config.premium_share)
            admin.seed_domains(
                tld,
                [
                    {"domain": d, "expiry": e, **({"premium_cents": 4900} if i < premium else {})}
                    for i, (d, e) in enumerate(names)
                ],
            )
    total = sum(len(v) for v in domains.by_tld.values())
    say(f"registries: {total} domains seeded over {', '.join('.' + t for t in FLAGS)}")
    return domains, started, settings


async def _record_flags(settings: Settings) -> None:
    """The demo's flag changes, recorded as rollout events like any other (each TLD's verdict
    is then judged on the runs after them: the demo's own)."""
    pool = await async_pool(settings.dsn, max_size=1)
    try:
        for tld, (mode, rollout) in FLAGS.items():
            after = Position(mode, rollout if mode == Mode.TEMPORAL else None)
            event = RolloutEvent(tld, "set", "demo", None, after, reason="the demo's flags")
            await events.record(pool, event)
    finally:
        await pool.close()


async def burst(
    settings: Settings, config: DemoConfig, domains: Domains, engines: EngineProcesses, say: Say
) -> set[str]:
    """Submit the month-start burst through the router, plus the legacy auto-renew batch."""
    pool = await async_pool(settings.dsn, max_size=4)
    try:
        batch = await create_batch(
            pool, domains.batch, duplicate_share=config.duplicate_share, seed=config.seed
        )
    finally:
        await pool.close()
    say(f"auto-renew batch: {batch.created} legacy operations, "
        f"{len(batch.duplicated_keys)} of them duplicated")  # fmt: skip
    sem = asyncio.Semaphore(16)
    half = len(domains.routed) // 2
    async with renewal_service(settings, pool_size=16) as service:

        async def one(i: int, request: Any) -> None:
            async with sem:
                await service.submit(request)
            if i == half and config.kill_worker:
                pid = engines.kill_worker()
                say(f"burst: killed Temporal worker {pid} mid-burst (SIGKILL); restarting one")
                engines.start_worker()

        await asyncio.gather(*(one(i, r) for i, r in enumerate(domains.routed)))
    say(f"burst: {len(domains.routed)} renewals submitted through the router")
    return set(batch.duplicated_keys)


async def drain(settings: Settings, config: DemoConfig, domains: Domains, say: Say) -> None:
    """Wait until every operation of the run finished and every shadow plan was recorded."""
    shadow_expected = sum(1 for r in domains.routed if FLAGS[r.tld][0] == Mode.SHADOW)
    pool = await async_pool(settings.dsn, max_size=2)
    deadline = time.monotonic() + config.drain_timeout_s
    last_line = 0.0
    try:
        progress = _progress()
        while True:
            total, unfinished = await summary.open_count(pool, domains.run)
            plans = await summary.shadow_plans(pool, domains.run)
            done = total - unfinished
            if progress is not None:
                progress[0].update(progress[1], total=total, completed=done)
            elif time.monotonic() - last_line > 5:
                log.info("demo.progress", finished=done, total=total, shadow_plans=plans)
                last_line = time.monotonic()
            if unfinished == 0 and plans >= shadow_expected:
                break
            if time.monotonic() > deadline:
                say(f"drain: gave up after {config.drain_timeout_s:.0f} s, {unfinished} unfinished")
                break
            await asyncio.sleep(0.5)
        if progress is not None:
            progress[0].stop()
    finally:
        await pool.close()


def _progress() -> Any:
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )
    bar.start()
    return bar, bar.add_task("draining", total=None)


async def conclude(
    settings: Settings, domains: Domains, duplicated: set[str], started_at: dt.datetime
) -> dict[str, Any]:
    window = Window(started_at, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    # The demo makes one full reconciliation run after setting its flags: readiness (and
    # `complete`, which needs DUALRUN_REPORT_RUNS clean runs at 100%) is judged on that one.
    production = Thresholds.from_settings(settings).runs
    settings = dataclasses.replace(settings, report_runs=DEMO_RUNS)
    async with reconciler(settings) as rec:
        reconciled = await rec.run(window, "manual", wait=True)
        figures = await summary.engines(rec.pool, domains.run)
        plans = await summary.shadow_plans(rec.pool, domains.run)
        reports = await write_report(settings, rec.pool, reconciled)
        rollout = await _rollout(rec.pool, settings)
    shadow_expected = sum(1 for r in domains.routed if FLAGS[r.tld][0] == Mode.SHADOW)
    document: dict[str, Any] = {
        "run": domains.run,
        "engines": figures,
        "findings": reconciled.findings,
        "reconciliation_run": reconciled.run_id,
        "shadow_plans": plans,
        "invariants": summary.invariants(figures, reconciled, duplicated, shadow_expected, plans),
        "rollout": rollout,
        "readiness_runs": {"judged_on": DEMO_RUNS, "production_default": production},
    }
    out = settings.reports_dir / f"demo-{domains.run}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    document["report"] = str(reports["html"]) if reports and "html" in reports else str(out)
    document["summary_file"] = str(out)
    return document


async def _rollout(pool: Any, settings: Settings) -> dict[str, dict[str, Any]]:
    """Each TLD's verdict after the burst, and what `dualrun rollout next` would do."""
    steps = await current(settings)
    _, found = await verdicts(pool, settings)
    out = {}
    for tld, at in steps.items():
        r = found[tld]
        if r.verdict == Verdict.READY:
            would = f"moves .{tld} {r.current} → {r.next}"
        elif r.verdict == Verdict.COMPLETE:
            would = f"nothing further: .{tld} is complete, legacy can be retired for it"
        else:
            would = f"refuses ({r.verdict.value}): " + "; ".join(r.reasons)
        out[tld] = {"step": at.as_dict(), "verdict": r.verdict.value, "next": r.next,
                    "rollout_next": would, "checklist": list(r.checklist)}  # fmt: skip
    return out


def run_demo(
    settings: Settings,
    config: DemoConfig,
    keep: bool,
    say: Say,
    *,
    unleash: bool = True,
    notice: Say | None = None,
) -> DemoResult:
    began = dt.datetime.now(dt.UTC)
    domains, started_stack, settings = prepare(settings, config, say, unleash, notice)
    started_at = dt.datetime.now(dt.UTC)  # the reconciled window starts after the flag changes
    engines = EngineProcesses(settings.state_dir / "logs", config.robots, legacy_args=("--pace",))
    try:
        for _ in range(config.workers):
            engines.start_worker()
        engines.start_legacy()
        duplicated = asyncio.run(burst(settings, config, domains, engines, say))
        asyncio.run(drain(settings, config, domains, say))
    finally:
        engines.stop()
    document = asyncio.run(conclude(settings, domains, duplicated, started_at))
    document["duration_s"] = round((dt.datetime.now(dt.UTC) - began).total_seconds(), 1)
    document["flags_from"] = "unleash" if settings.unleash_url else "bootstrap file"
    if keep:
        document["temporal_ui"] = settings.temporal_ui_url
        if settings.unleash_stack:
            document["unleash_ui"] = settings.unleash_url
            document["unleash_login"] = LOGIN
    elif started_stack:
        stack_down(settings)
    return DemoResult(document)
