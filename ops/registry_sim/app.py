"""The simulator's FastAPI application: `create_app(settings_or_dsn)`.

The DSN is given at construction; the pool opens in the lifespan, never at import time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ops.registry_sim.models import SimError
from ops.registry_sim.ratelimit import Clock
from ops.registry_sim.routes import router
from ops.registry_sim.simulator import Simulator, field_of
from renewals.registry_errors import EPP_PARAMETER_SYNTAX
from renewals.settings import Settings

log = structlog.get_logger(__name__)


async def _sim_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SimError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming the first bad field, e.g. `years` or `domains.3.expiry`."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    loc = tuple(first.get("loc") or ("body",))
    field = field_of(loc, skip=1) if len(loc) > 1 else "body"
    problems = [
        {"field": field_of(tuple(e.get("loc") or ()), skip=1), "problem": str(e.get("msg"))}
        for e in errors[:20]
    ]
    return JSONResponse(
        {
            "message": f"{field}: {first.get('msg')}",
            "code": EPP_PARAMETER_SYNTAX,
            "field": field,
            "errors": problems,
        },
        status_code=422,
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"message": str(exc.detail), "code": None}, status_code=exc.status_code, headers=exc.headers
    )


def create_app(
    source: Settings | str,
    *,
    tlds: Iterable[str] | None = None,
    clock: Clock = time.monotonic,
    pool_size: int = 10,
) -> FastAPI:
    """The simulator app. `source` is the Settings (uses its DSN) or a DSN (settings from env)."""
    if isinstance(source, Settings):
        settings, dsn = source, source.dsn
    else:
        settings, dsn = Settings.from_env(), source
    sim = Simulator(dsn, settings, tlds, clock=clock, pool_size=pool_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await sim.open()
        try:
            yield
        finally:
            await sim.close()

    app = FastAPI(
        title="dualrun registry simulator",
        description="EPP-like registries with rate limits and injectable faults (DESIGN §3).",
        lifespan=lifespan,
    )
    app.state.sim = sim
    app.add_exception_handler(SimError, _sim_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Alive, with the registries served."""
        return {"ok": sim.is_open, "registries": sorted(sim.registries)}

    @app.get("/registries")
    async def registries() -> dict[str, Any]:
        """Every registry served and its configuration."""
        return {
            "registries": [
                {"tld": tld, **reg.config.model_dump()} for tld, reg in sim.registries.items()
            ]
        }

    @app.post("/reset")
    async def reset_all() -> dict[str, Any]:
        """Forget every registry's domains, renewals, configuration and traffic."""
        await sim.reset(None)
        return {"reset": sorted(sim.registries)}

    app.include_router(router)
    return app
