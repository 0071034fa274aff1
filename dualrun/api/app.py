"""The FastAPI application; the pool, flag sources and Temporal client open in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import Depends, FastAPI
from temporalio.client import Client

from dualrun.api import batch, errors, reports, rollout
from dualrun.api.auth import Access, auth_responses, require_read
from dualrun.api.routes import build_router
from dualrun.api.schemas import pattern_messages
from dualrun.wiring import renewal_service, started_chain
from renewals.db.pool import async_pool
from renewals.settings import Settings

DESCRIPTION = """\
Domain renewals routed per TLD between the legacy engine and Temporal.

**Tokens.** Every operation but `/healthz` needs `Authorization: Bearer <token>`
(`/metrics` only when `DUALRUN_METRICS_REQUIRE_TOKEN` is set). Two tokens:
`DUALRUN_API_READ_TOKEN` reads; `DUALRUN_API_TOKEN` (the write token) reads and writes.
No token or an unknown one: 401; the read token on a mutating call: 403; a token the call
needs that the server has not configured: 503.

**Errors.** Every 4xx and 5xx body is `{"error": {"code", "field", "message"}}`; `field` names
the field or parameter at fault. A refused request writes nothing.

**Input.** Each field's pattern, length and range below is enforced as written. One rule no
JSON Schema can state is checked after them: an internationalised label (non-ASCII, or an
`xn--` A-label) must be valid IDNA 2008 (with UTS 46 mapping); else 422 naming `domain`.
"""


def create_app(
    settings: Settings, *, temporal_client: Client | None = None, pool_size: int = 10
) -> FastAPI:
    """The API for these settings; nothing connects before the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await async_pool(settings.dsn, max_size=4, name="dualrun-api")  # reads, rollout
        try:
            async with (
                started_chain(settings) as chain,
                renewal_service(
                    settings,
                    pool_size=pool_size,
                    temporal_client=temporal_client,
                    chain=chain,
                    pool_name="dualrun-api-renewals",
                ) as service,
            ):
                app.state.pool = pool
                app.state.chain = chain
                app.state.service = service
                yield
        finally:
            await pool.close()

    app = FastAPI(
        title="dualrun",
        version=version("dualrun"),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app, settings.secrets(), pattern_messages(settings.tlds))
    app.include_router(batch.build_router(settings))  # before /renewals/{operation_id}
    app.include_router(build_router(settings))
    app.include_router(rollout.build_router(settings))
    app.include_router(
        reports.router,
        dependencies=[Depends(require_read)],
        responses=auth_responses(Access.READ),
    )
    return app
