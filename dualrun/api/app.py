"""The FastAPI application; the pool, flag sources and Temporal client open in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI
from temporalio.client import Client

from dualrun.api import errors, reports
from dualrun.api.routes import router
from dualrun.routing.router import Router
from dualrun.routing.service import RenewalService
from dualrun.wiring import engines, started_chain
from renewals.db.pool import async_pool
from renewals.settings import Settings


def create_app(
    settings: Settings, *, temporal_client: Client | None = None, pool_size: int = 10
) -> FastAPI:
    """The API for these settings; nothing connects before the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await async_pool(settings.dsn, max_size=pool_size, name="dualrun-api")
        try:
            async with started_chain(settings) as chain:
                app.state.pool = pool
                app.state.chain = chain
                both = engines(settings, pool, temporal_client)
                app.state.service = RenewalService(settings, pool, Router(chain), both)
                yield
        finally:
            await pool.close()

    app = FastAPI(
        title="dualrun",
        version=version("dualrun"),
        description=(
            "Domain renewals routed per TLD between the legacy engine and Temporal. "
            "Mutating calls need `Authorization: Bearer <DUALRUN_API_TOKEN>`."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app, settings.secrets())
    app.include_router(router)
    app.include_router(reports.router)
    return app
