"""The one composition root: every adapter built from the settings, in one place.

Commands, the API, the demo and the tests get their parts here: the settings completed with the
local stack's Unleash server when it runs, the stack brought up and down with its flags, the
database pool, the registry and billing clients, the flag chain, the routing service, the
reconciler (with the registry ledger it reads), the Temporal Web UI links and the migrations of
every component the settings leave embedded. Nothing connects at import time; each context
manager opens what it gives and closes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import structlog
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from dualrun.flags import FlagChain, build_chain
from dualrun.flags.control import save_to_bootstrap, seed_server
from dualrun.flags.port import FlagView
from dualrun.routing.router import Router
from dualrun.routing.service import RenewalService
from legacy_adapter import LegacyEngine
from ops import registry_sim, stack
from ops.processes import ServiceStatus
from ops.registry_sim.ledger import SimulatorTableLedger
from ops.unleash.stack import UnleashService
from reconciler.alerts import Webhook, prime
from reconciler.model import RunSummary
from reconciler.report.model import FlagInfo, FlagRow
from reconciler.report.store import write_after_run
from reconciler.run import Reconciler
from reconciler.sources import ApiLedger, RegistryLedgerSource
from renewals.billing import BillingLedger
from renewals.db.migrate import migrate_core
from renewals.db.pool import async_pool
from renewals.engine import Engines
from renewals.errors import DualrunError
from renewals.links import WorkflowLinks
from renewals.model import Engine
from renewals.registry import RegistryClient
from renewals.settings import Settings
from temporal_flow.engine import TemporalEngine
from temporal_flow.starter import connect

log = structlog.get_logger(__name__)


# -- the local stack -------------------------------------------------------------------------
def with_stack_unleash(settings: Settings) -> Settings:
    """The settings pointed at the local stack's Unleash server while it runs (its URL and
    dualrun's tokens, read from the state dir), when no DUALRUN_UNLEASH_URL is configured;
    otherwise as they are."""
    if not settings.embedded_unleash:
        return settings
    conn = UnleashService(settings).connection()
    if conn is None:
        if not settings.unleash_stack:
            return settings
        return replace(
            settings,
            unleash_url=None,
            unleash_admin_token=None,
            unleash_client_token=None,
            unleash_stack=False,
        )
    return replace(
        settings,
        unleash_url=conn.url,
        unleash_admin_token=conn.admin_token,
        unleash_client_token=conn.client_token,
        unleash_stack=True,
    )


def stack_up(
    settings: Settings, report: stack.Report | None = None, *, unleash: bool = True
) -> tuple[list[ServiceStatus], Settings]:
    """`ops.stack.up`, then the settings that use what it runs: a stack's Unleash server on a
    fresh database gets the bootstrap file's flags."""
    if not unleash:
        _save_flags(settings)  # it is stopped if it runs
    statuses = stack.up(settings, report, unleash=unleash)
    resolved = with_stack_unleash(settings)
    if resolved.unleash_stack:
        seed_server(resolved)
    return statuses, resolved


def stack_down(settings: Settings, report: stack.Report | None = None) -> list[str]:
    """`ops.stack.down`, the stack's Unleash flags saved to the bootstrap file first (the
    router's fallback then routes as Unleash did; the next `stack_up` loads them back)."""
    _save_flags(settings)
    return stack.down(settings, report)


def _save_flags(settings: Settings) -> None:
    resolved = with_stack_unleash(settings)
    if resolved.unleash_stack:
        try:
            save_to_bootstrap(resolved)
        except DualrunError as exc:
            log.warning("stack.unleash.flags_not_saved", error=str(exc))


# -- the database ----------------------------------------------------------------------------
def migrate_all(dsn: str, *, registry_sim_tables: bool = True) -> dict[str, list[int]]:
    """Migrate dualrun's tables, and the registry simulator's when it is embedded (its ledger
    lives in the same database)."""
    applied = {"core": migrate_core(dsn)}
    if registry_sim_tables:
        applied["registry_sim"] = registry_sim.migrate_tables(dsn)
    return applied


def migrate_for(settings: Settings) -> dict[str, list[int]]:
    return migrate_all(settings.dsn, registry_sim_tables=settings.embedded_registry)


# -- pool, registry, billing -----------------------------------------------------------------
@dataclass(frozen=True)
class Services:
    settings: Settings
    pool: AsyncConnectionPool
    registry: RegistryClient
    billing: BillingLedger


@asynccontextmanager
async def services(
    settings: Settings, *, pool_size: int = 10, autocommit: bool = False
) -> AsyncIterator[Services]:
    """`autocommit`: one round trip per statement, for the worker (see `async_pool`)."""
    pool = await async_pool(settings.dsn, max_size=pool_size, autocommit=autocommit)
    registry = RegistryClient(settings)
    try:
        yield Services(settings, pool, registry, BillingLedger(pool))
    finally:
        await registry.aclose()
        await pool.close()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (graceful shutdown of long-running commands)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


# -- flags and routing -----------------------------------------------------------------------
@asynccontextmanager
async def started_chain(settings: Settings) -> AsyncIterator[FlagChain]:
    """The flag chain, started (the first Unleash fetch runs off the event loop) and closed."""
    chain = build_chain(settings)
    await asyncio.to_thread(chain.start)
    try:
        yield chain
    finally:
        chain.close()


def flag_info(view: FlagView, tlds: Iterable[str]) -> FlagInfo:
    """Per TLD the mode and rollout the router uses now, as `dualrun flags show` prints them."""
    rows = []
    for tld in sorted(tlds):
        rule = view.state.rule(tld) if view.state.enabled else None
        rows.append(
            FlagRow(tld, rule.mode.value if rule else "legacy", rule.rollout if rule else None)
        )
    return FlagInfo(True, view.source.value, view.state.enabled, view.detail, tuple(rows))


async def read_flags(settings: Settings) -> FlagInfo:
    """The flag state from the flag sources (Unleash, last known, bootstrap file); a report
    says when it could not be read rather than failing."""
    try:
        async with started_chain(settings) as chain:
            return flag_info(chain.read(), settings.tlds)
    except Exception as exc:
        log.warning("report.flags.unavailable", error=type(exc).__name__)
        return FlagInfo(False, detail=f"flag state unavailable ({type(exc).__name__})")


def engines(
    settings: Settings, pool: AsyncConnectionPool, temporal_client: Client | None = None
) -> Engines:
    """Both engines on `pool`; Temporal connects on first use (or uses the client given).
    Temporal also makes the shadow plans."""

    async def temporal() -> Client:
        return temporal_client if temporal_client is not None else await connect(settings)

    temporal_engine = TemporalEngine(pool, settings, temporal)
    return Engines(
        {Engine.LEGACY: LegacyEngine(pool), Engine.TEMPORAL: temporal_engine},
        planner=temporal_engine,
    )


@asynccontextmanager
async def renewal_service(
    settings: Settings,
    *,
    pool_size: int = 4,
    temporal_client: Client | None = None,
    chain: FlagChain | None = None,
    pool_name: str = "dualrun",
) -> AsyncIterator[RenewalService]:
    """The router and both engines over a pool of their own (and a flag chain unless given).
    The pool is autocommit: a submit is one statement, one round trip; what writes more than
    one statement says so with a transaction."""
    pool = await async_pool(settings.dsn, max_size=pool_size, name=pool_name, autocommit=True)
    try:
        both = engines(settings, pool, temporal_client)
        if chain is not None:
            yield RenewalService(settings, pool, Router(chain), both)
            return
        async with started_chain(settings) as own:
            yield RenewalService(settings, pool, Router(own), both)
    finally:
        await pool.close()


# -- reconciliation --------------------------------------------------------------------------
def ledger_source(settings: Settings, registry: RegistryClient) -> RegistryLedgerSource:
    """The embedded simulator keeps its ledger in our database: read it in place; any other
    registry through its ledger API."""
    if settings.embedded_registry:
        return SimulatorTableLedger()
    return ApiLedger(registry, settings.tlds)


@asynccontextmanager
async def reconciler(
    settings: Settings, *, stuck_after: dt.timedelta = dt.timedelta(minutes=30)
) -> AsyncIterator[Reconciler]:
    """A reconciler on the settings' database, registry ledger, Temporal and webhook.

    Temporal unreachable at connect is not fatal: the rest is reconciled and the run says
    status drift was not checked."""
    async with services(settings, pool_size=4) as s:
        try:
            temporal: Client | None = await connect(settings)
        except Exception as exc:
            log.warning("reconcile.temporal.unavailable", error=type(exc).__name__)
            temporal = None
        webhook = Webhook(settings.webhook_url.reveal() if settings.webhook_url else None)
        prime(settings.tlds)
        yield Reconciler(
            pool=s.pool,
            ledger=ledger_source(settings, s.registry),
            webhook=webhook,
            temporal=temporal,
            task_queue=settings.task_queue,
            stuck_after=stuck_after,
        )


async def write_report(
    settings: Settings, pool: AsyncConnectionPool, summary: RunSummary
) -> dict[str, Path] | None:
    """After a reconciliation: its report files, with the flag state read now."""
    flags = partial(read_flags, settings)
    return await write_after_run(settings, pool, flags, summary, workflow_links(settings))


def workflow_links(settings: Settings) -> WorkflowLinks:
    """Links to workflows in the Temporal Web UI: DUALRUN_TEMPORAL_UI_URL, else the embedded
    dev server's UI (none for a configured cluster without a UI URL)."""
    return WorkflowLinks(settings.temporal_ui_url, settings.temporal_namespace)
