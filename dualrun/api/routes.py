"""The API's operations: the same as `dualrun submit|status|cancel|route explain|flags show`."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from dualrun.api.auth import require_token
from dualrun.api.errors import ErrorBody, error_response
from dualrun.routing.service import RenewalService, explain_names
from renewals.errors import InvalidInput
from renewals.model import RenewalRequest

router = APIRouter()
MAX_EXPLAIN_PER_CALL = 1000
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 404, 409, 422, 503)
}


class RenewalIn(BaseModel):
    """A renewal request (the same validation as `dualrun submit`)."""

    model_config = ConfigDict(extra="forbid")
    domain: str = Field(examples=["example.fr"], description="IDNs accepted")
    years: int = Field(ge=1, le=10)
    current_expiry: str = Field(examples=["2027-03-01"], description="YYYY-MM-DD")
    customer_id: str = Field(examples=["cust-42"])
    operation_id: str | None = Field(default=None, description="assigned when absent")


class SubmitOut(BaseModel):
    operation_id: str
    idempotency_key: str
    engine: str
    mode: str
    status: str
    deduplicated: bool
    dispatch_error: str | None = None


class ExplainOut(BaseModel):
    domain: str
    engine: str
    mode: str
    bucket: int
    rollout: int | None
    source: str
    reason: str


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="requested through the API", max_length=200)


class CancelOut(BaseModel):
    operation_id: str
    engine: str
    accepted: bool
    status: str
    message: str


def _service(request: Request) -> RenewalService:
    service: RenewalService = request.app.state.service
    return service


async def _json_body(request: Request, *, optional: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip() and optional:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("body", "is not a valid JSON document") from None


_RENEWAL_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": RenewalIn.model_json_schema()}},
    }
}
_CANCEL_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": CancelIn.model_json_schema()}},
    }
}


@router.post(
    "/renewals",
    response_model=SubmitOut,
    status_code=201,
    dependencies=[Depends(require_token)],
    openapi_extra=_RENEWAL_BODY,
    responses={200: {"model": SubmitOut, "description": "already submitted"}, **_ERRORS},
    summary="Submit a renewal (routed once per idempotency key)",
)
async def submit(request: Request) -> JSONResponse:
    renewal = RenewalRequest.parse(await _json_body(request), request.app.state.settings.tlds)
    result = await _service(request).submit(renewal)
    return JSONResponse(result.as_dict(), status_code=200 if result.deduplicated else 201)


@router.get(
    "/renewals/{operation_id}",
    responses=_ERRORS,
    summary="Status, step, engine, routing and outcome of an operation",
)
async def status(request: Request, operation_id: str) -> dict[str, Any]:
    return await _service(request).status(operation_id)


@router.post(
    "/renewals/{operation_id}/cancel",
    response_model=CancelOut,
    dependencies=[Depends(require_token)],
    openapi_extra=_CANCEL_BODY,
    responses={409: {"model": ErrorBody, "description": "refused"}, **_ERRORS},
    summary="Cancel a renewal before its registry step",
)
async def cancel(request: Request, operation_id: str) -> Response:
    body = await _json_body(request, optional=True)
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    reason = CancelIn.model_validate(body).reason
    result = await _service(request).cancel(operation_id, reason)
    if not result.accepted:
        return error_response(409, "cancel_refused", result.message, "operation_id")
    return JSONResponse(result.as_dict())


@router.get(
    "/route/explain",
    response_model=list[ExplainOut],
    responses=_ERRORS,
    summary="How new renewals of these domains would be routed (nothing stored)",
)
async def explain(
    request: Request,
    domain: Annotated[list[str], Query(description="repeat for several domains")],
) -> list[dict[str, Any]]:
    if len(domain) > MAX_EXPLAIN_PER_CALL:
        raise InvalidInput("domain", f"at most {MAX_EXPLAIN_PER_CALL} names per call")
    service = _service(request)
    decisions = explain_names(service.router, domain, service.settings.tlds)
    return [d.explain() for d in decisions]


@router.get("/flags", summary="Per TLD: mode, rollout and the flag source in use")
async def flags(request: Request) -> dict[str, Any]:
    view = request.app.state.chain.read()
    rows = []
    for tld in sorted(request.app.state.settings.tlds):
        rule = view.state.rule(tld) if view.state.enabled else None
        rows.append(
            {
                "tld": tld,
                "mode": rule.mode.value if rule else "legacy",
                "rollout": rule.rollout if rule else None,
                "source": view.source.value,
            }
        )
    return {
        "flag": view.state.flag,
        "source": view.source.value,
        "enabled": view.state.enabled,
        "detail": view.detail,
        "tlds": rows,
    }


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", summary="Liveness: the database answers; the flag source in use")
async def healthz(request: Request) -> JSONResponse:
    database = True
    try:
        async with request.app.state.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
    except Exception:  # any failure means unhealthy; the answer says which part
        database = False
    source = request.app.state.chain.read().source.value
    body = {"status": "ok" if database else "unhealthy", "database": database, "flags": source}
    return JSONResponse(body, status_code=200 if database else 503)
