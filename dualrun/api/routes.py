"""The API's operations: the same as `dualrun submit|status|cancel|route explain|flags show`,
plus `/metrics` and `/healthz`. Built per settings: the TLDs shape the domain pattern, and
`DUALRUN_METRICS_REQUIRE_TOKEN` whether `/metrics` needs a token.

No `from __future__ import annotations` here: the handlers' parameter types are built inside
`build_router`, and FastAPI must see them as objects, not as names it cannot resolve.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import StringConstraints

from dualrun.api.auth import Access, auth_responses, require_read, require_write
from dualrun.api.bodies import json_body, json_request_body
from dualrun.api.errors import documented, error_response
from dualrun.api.schemas import (
    ID_PATTERN,
    ID_RULE,
    CancelIn,
    CancelOut,
    ExplainOut,
    FlagsOut,
    HealthOut,
    RenewalOut,
    SubmitOut,
    domain_pattern,
    domain_rule,
    renewal_in,
)
from dualrun.routing.service import RenewalService, explain_names
from renewals.errors import InvalidInput
from renewals.model import RenewalRequest
from renewals.settings import Settings

MAX_EXPLAIN_PER_CALL = 1000
READS = auth_responses(Access.READ)
WRITES = auth_responses(Access.WRITE)
UNAVAILABLE = {
    **documented(
        503,
        "Temporal does not answer (`engine_unavailable`): nothing was done, send the cancel "
        "again later; or the write token is not configured on the server (`auth_not_configured`)",
    ),
    "headers": {
        "Retry-After": {
            "description": "seconds to wait before trying again (with `engine_unavailable`)",
            "schema": {"type": "string"},
        }
    },
}
OperationId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=64, description=f"the operation: {ID_RULE}")
]
_OPERATION_LINKS: dict[str, dict[str, Any]] = {
    "GetRenewal": {
        "operationId": "getRenewal",
        "parameters": {"operation_id": "$response.body#/operation_id"},
        "description": "the operation's status",
    },
    "CancelRenewal": {
        "operationId": "cancelRenewal",
        "parameters": {"operation_id": "$response.body#/operation_id"},
        "description": "cancel it before its registry step",
    },
}


def _service(request: Request) -> RenewalService:
    service: RenewalService = request.app.state.service
    return service


def build_router(settings: Settings) -> APIRouter:
    """The operations for these settings."""
    router = APIRouter()
    renewal_model = renewal_in(settings.tlds)
    DomainItem = Annotated[str, StringConstraints(pattern=domain_pattern(settings.tlds))]

    @router.post(
        "/renewals",
        operation_id="submitRenewal",
        response_model=SubmitOut,
        status_code=201,
        dependencies=[Depends(require_write)],
        openapi_extra=json_request_body(renewal_model.model_json_schema(), required=True),
        responses={
            201: {
                "description": "submitted: routed, recorded, handed to its engine",
                "links": {
                    **_OPERATION_LINKS,
                    "SubmitAgain": {
                        "operationId": "submitRenewal",
                        "requestBody": "$request.body",
                        "description": "the same renewal again: 200, this operation (idempotent)",
                    },
                },
            },
            200: {
                "model": SubmitOut,
                "description": "already submitted: the operation that "
                "has this renewal (same parameters)",
                "links": _OPERATION_LINKS,
            },
            **WRITES,
            409: documented(
                409,
                "The renewal's key is taken with other parameters "
                "(`idempotency_conflict`), or the operation id is taken "
                "(`operation_id_in_use`)",
            ),
            422: documented(422),
        },
        summary="Submit a renewal (routed once per idempotency key)",
    )
    async def submit(request: Request) -> JSONResponse:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise InvalidInput("request", f"must be an object, got {type(body).__name__}")
        renewal = RenewalRequest.parse(body, settings.tlds)  # the rules every entry point has
        renewal_model.model_validate(body)  # and what the OpenAPI document states, exactly
        result = await _service(request).submit(renewal)
        return JSONResponse(result.as_dict(), status_code=200 if result.deduplicated else 201)

    @router.get(
        "/renewals/{operation_id}",
        operation_id="getRenewal",
        response_model=RenewalOut,
        dependencies=[Depends(require_read)],
        responses={
            **READS,
            404: documented(404, "No operation has this id (`not_found`)"),
            422: documented(422),
        },
        summary="Status, step, engine, routing and outcome of an operation",
    )
    async def status(request: Request, operation_id: OperationId) -> dict[str, Any]:
        return await _service(request).status(operation_id)

    @router.post(
        "/renewals/{operation_id}/cancel",
        operation_id="cancelRenewal",
        response_model=CancelOut,
        dependencies=[Depends(require_write)],
        openapi_extra=json_request_body(CancelIn.model_json_schema(), required=False),
        responses={
            **WRITES,
            404: documented(404, "No operation has this id (`not_found`)"),
            409: documented(
                409,
                "Refused: the renewal is past its registry step, or finished (`cancel_refused`)",
            ),
            422: documented(422),
            503: UNAVAILABLE,
        },
        summary="Cancel a renewal before its registry step",
    )
    async def cancel(request: Request, operation_id: OperationId) -> Response:
        body = await json_body(request, optional=True)
        if not isinstance(body, dict):
            raise InvalidInput("body", f"must be an object, got {type(body).__name__}")
        reason = CancelIn.model_validate(body).reason
        result = await _service(request).cancel(operation_id, reason)
        if not result.accepted:
            return error_response(409, "cancel_refused", result.message, "operation_id")
        return JSONResponse(result.as_dict())

    @router.get(
        "/route/explain",
        operation_id="explainRoute",
        response_model=list[ExplainOut],
        dependencies=[Depends(require_read)],
        responses={**READS, 422: documented(422)},
        summary="How new renewals of these domains would be routed (nothing stored)",
    )
    async def explain(
        request: Request,
        domain: Annotated[
            list[DomainItem],
            Query(
                max_length=MAX_EXPLAIN_PER_CALL,
                description=f"repeat for several names (at most {MAX_EXPLAIN_PER_CALL}); each "
                f"{domain_rule(settings.tlds)}",
            ),
        ],
    ) -> list[dict[str, Any]]:
        service = _service(request)
        decisions = explain_names(service.router, domain, settings.tlds)
        return [d.explain() for d in decisions]

    @router.get(
        "/flags",
        operation_id="getFlags",
        response_model=FlagsOut,
        dependencies=[Depends(require_read)],
        responses=READS,
        summary="Per TLD: mode, rollout and the flag source in use",
    )
    async def flags(request: Request) -> dict[str, Any]:
        view = request.app.state.chain.read()
        rows = []
        for tld in sorted(settings.tlds):
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

    metrics_auth = settings.metrics_require_token

    @router.get(
        "/metrics",
        operation_id="getMetrics",
        response_class=PlainTextResponse,
        dependencies=[Depends(require_read)] if metrics_auth else [],
        responses={
            200: {"description": "Prometheus text format"},
            **(READS if metrics_auth else {}),
        },
        summary="Prometheus metrics"
        + (" (a token needed: DUALRUN_METRICS_REQUIRE_TOKEN)" if metrics_auth else " (open)"),
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/healthz",
        operation_id="getHealth",
        response_model=HealthOut,
        responses={503: {"model": HealthOut, "description": "the database does not answer"}},
        summary="Liveness (no token): the database answers; the flag source in use",
    )
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

    return router
