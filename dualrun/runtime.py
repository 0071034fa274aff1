"""Wiring in one place: the pool, the registry client and the billing ledger from the settings."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from renewals.billing import BillingLedger
from renewals.db.pool import async_pool
from renewals.registry import RegistryClient
from renewals.settings import Settings


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
