"""Error bodies: every 4xx/5xx is `{"error": {"code", "field", "message"}}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from dualrun.routing.store import OperationIdInUse
from renewals.errors import ConfigError, IdempotencyConflict, InvalidInput, OperationNotFound
from renewals.logs import redact_text

log = structlog.get_logger(__name__)


class ErrorDetail(BaseModel):
    code: str
    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "field": field, "message": message}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI, secrets: list[str]) -> None:
    """Map dualrun's errors (and FastAPI's) to JSON error bodies."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(OperationIdInUse)
    async def _taken(_: Request, exc: OperationIdInUse) -> JSONResponse:
        return error_response(409, "operation_id_in_use", str(exc), exc.field)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return error_response(422, "invalid_input", str(exc), exc.field)

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return error_response(409, "idempotency_conflict", str(exc), exc.field)

    @app.exception_handler(OperationNotFound)
    async def _missing(_: Request, exc: OperationNotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc), "operation_id")

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError) -> JSONResponse:
        return error_response(503, "not_configured", str(exc), exc.variable)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _field_of(first.get("loc", ()))
        return error_response(422, "invalid_input", f"{field}: {first.get('msg')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return error_response(exc.status_code, code, str(exc.detail), None, exc.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("api.failed", path=request.url.path, error=redact_text(repr(exc), secrets)[:500])
        return error_response(500, "internal", "internal error (logged)")
