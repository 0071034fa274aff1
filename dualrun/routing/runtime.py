"""Wiring the routing service from the settings (CLI commands and tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client

from dualrun.flags import FlagChain, build_chain
from dualrun.routing.dispatch import TemporalLink
from dualrun.routing.router import Router
from dualrun.routing.service import RenewalService
from renewals.db.pool import async_pool
from renewals.settings import Settings


@asynccontextmanager
async def started_chain(settings: Settings) -> AsyncIterator[FlagChain]:
    """The flag chain, started (the first Unleash fetch runs off the event loop) and closed."""
    chain = build_chain(settings)
    await asyncio.to_thread(chain.start)
    try:
        yield chain
    finally:
        chain.close()


@asynccontextmanager
async def renewal_service(
    settings: Settings,
    *,
    pool_size: int = 4,
    temporal_client: Client | None = None,
    chain: FlagChain | None = None,
) -> AsyncIterator[RenewalService]:
    pool = await async_pool(settings.dsn, max_size=pool_size)
    try:
        if chain is not None:
            yield RenewalService(
                settings, pool, Router(chain), TemporalLink(settings, temporal_client)
            )
            return
        async with started_chain(settings) as own:
            link = TemporalLink(settings, temporal_client)
            yield RenewalService(settings, pool, Router(own), link)
    finally:
        await pool.close()
