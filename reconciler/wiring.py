"""Build a Reconciler from the settings: the ledger source and Temporal, chosen in one place."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog

from dualrun.runtime import services
from reconciler.alerts import Webhook, prime
from reconciler.run import Reconciler
from reconciler.sources import ApiLedger, RegistryLedgerSource, SimulatorTableLedger
from renewals.settings import Settings

log = structlog.get_logger(__name__)


def ledger_source(settings: Settings, registry: object) -> RegistryLedgerSource:
    """The embedded simulator keeps its ledger in our database: read the table; else the API."""
    if settings.embedded_registry:
        return SimulatorTableLedger()
    from renewals.registry import RegistryClient

    assert isinstance(registry, RegistryClient)
    return ApiLedger(registry, settings.tlds)


@asynccontextmanager
async def reconciler_from(
    settings: Settings, *, stuck_after: dt.timedelta = dt.timedelta(minutes=30)
) -> AsyncIterator[Reconciler]:
    from temporal_flow.starter import connect

    async with services(settings, pool_size=4) as s:
        try:
            temporal = await connect(settings)
        except Exception as exc:  # reconcile the rest; say status drift was not checked
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
