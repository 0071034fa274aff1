"""Error bodies: every 4xx/5xx is `{"error": {"code", "field", "message"}}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dualrun.routing.store import OperationIdInUse
from renewals.errors import (
    ConfigError,
    EngineUnavailable,
    IdempotencyConflict,
    InvalidInput,
    OperationNotFound,
)
from renewals.logs import redact_text

log = structlog.get_logger(__name__)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="stable, machine-readable", examples=["invalid_input"])
    field: str | None = Field(description="the field or parameter at fault, when one is")
    message: str = Field(description="for people; never contains a secret")


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


_DESCRIPTIONS = {
    401: "No bearer token, or not a valid one (`unauthorized`, `invalid_token`)",
    403: "The read token on a mutating call (`insufficient_scope`)",
    404: "Not found (`not_found`)",
    409: "Conflict",
    422: "Bad input (`invalid_input`): `field` names the field or parameter",
    503: "What the call needs is not configured on the server: its token "
    "(`auth_not_configured`) or a setting (`not_configured`, `field` names the variable)",
}
_CHALLENGE_HEADER = {
    "WWW-Authenticate": {
        "description": 'RFC 6750 challenge: `Bearer realm="dualrun"` (with `error=...`)',
        "required": True,
        "schema": {"type": "string"},
    }
}


def documented(status: int, description: str | None = None) -> dict[str, Any]:
    """An OpenAPI response entry for an error status: the JSON error body (and, for 401 and
    403, the challenge header)."""
    entry: dict[str, Any] = {
        "model": ErrorBody,
        "description": description or _DESCRIPTIONS[status],
    }
    if status in (401, 403):
        entry["headers"] = _CHALLENGE_HEADER
    return entry


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


def first_problem(errors: Sequence[Any], messages: Mapping[str, str] | None = None) -> InvalidInput:
    """The first of pydantic's errors as InvalidInput naming the field (a repeated query
    parameter by its name, the item by its number); `messages` words a field's pattern
    mismatch (pydantic would quote the whole regular expression)."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc: tuple[Any, ...] = tuple(first.get("loc", ()))
    item = ""
    if len(loc) == 3 and loc[0] == "query" and isinstance(loc[2], int):
        item = f"item #{loc[2] + 1}: "
        loc = loc[:2]
    field = _field_of(loc)
    problem = str(first.get("msg", "invalid"))
    if first.get("type") == "string_pattern_mismatch" and messages and field in messages:
        problem = messages[field]
    return InvalidInput(field, item + problem)


def install(app: FastAPI, secrets: list[str], messages: Mapping[str, str]) -> None:
    """Map dualrun's errors (and FastAPI's) to JSON error bodies; `messages` words the pattern
    mismatches of the named fields and parameters."""

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

    @app.exception_handler(EngineUnavailable)
    async def _unavailable(_: Request, exc: EngineUnavailable) -> JSONResponse:
        return error_response(
            503, "engine_unavailable", redact_text(str(exc), secrets), None, {"Retry-After": "5"}
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problem = first_problem(exc.errors(), messages)
        return error_response(422, "invalid_input", str(problem), problem.field)

    @app.exception_handler(ValidationError)
    async def _model(_: Request, exc: ValidationError) -> JSONResponse:
        problem = first_problem(exc.errors(), messages)
        return error_response(422, "invalid_input", str(problem), problem.field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return error_response(exc.status_code, code, str(exc.detail), None, exc.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("api.failed", path=request.url.path, error=redact_text(repr(exc), secrets)[:500])
        return error_response(500, "internal", "internal error (logged)")
