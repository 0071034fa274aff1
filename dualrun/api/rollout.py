"""The guarded rollout over HTTP: the same actions as `dualrun rollout`, the moves under the
write token (recorded with the actor `api:write-token`), the status under the read token.

No `from __future__ import annotations` here: the TLD parameter's type is built inside
`build_router` from the settings, and FastAPI must see it as a type, not a name.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dualrun.api.auth import Access, auth_responses, require_read, require_write
from dualrun.api.bodies import json_body, json_request_body
from dualrun.api.errors import ErrorDetail, documented
from dualrun.api.schemas import MAX_REASON, STATED_REASON_PATTERN
from dualrun.rollout import actions
from dualrun.rollout.guard import guard
from renewals.errors import InvalidInput
from renewals.settings import Settings

ACTOR = "api:write-token"
Reason = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_REASON,
        pattern=STATED_REASON_PATTERN,
        description="why, recorded: one line, not blank",
    ),
]


class StepOut(BaseModel):
    mode: str
    rollout: int | None


class MoveOut(BaseModel):
    """What the move did (`applied`), or would do (dry run), or why not (`reasons`)."""

    tld: str
    from_: StepOut = Field(alias="from")
    to: StepOut | None
    verdict: str
    reasons: list[str]
    applied: bool
    run_id: int | None
    forced: bool


class MoveRefused(BaseModel):
    """A move not made: the error (`rollout_refused`, its message the verdict's reasons) and
    the move as it was judged."""

    error: ErrorDetail
    move: MoveOut


REFUSED = {
    "model": MoveRefused,
    "description": "Not moved (`rollout_refused`): `next` when the verdict is not ready (and "
    "not forced) or the TLD is at the top; `back` when it is on legacy already. `move` is the "
    "judged move, with the verdict and its reasons",
}


def _refused(move: actions.Move) -> JSONResponse:
    doc = move.as_dict()
    why = "; ".join(move.reasons) or "no step to take"
    message = f"not moved (verdict {move.verdict}): {why}"
    body = {"error": {"code": "rollout_refused", "field": "tld", "message": message}, "move": doc}
    return JSONResponse(body, status_code=409)


class NextIn(BaseModel):
    """Optional (no body: a real move, not forced). `force` needs a `reason`."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "if": {"properties": {"force": {"const": True}}, "required": ["force"]},
            "then": {"required": ["reason"], "properties": {"reason": {"type": "string"}}},
        },
    )
    dry_run: bool = False
    force: bool = Field(default=False, description="move even when not ready (needs a reason)")
    reason: Reason | None = None


class BackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Reason


class RollbackOut(BaseModel):
    tld: str
    from_: StepOut = Field(alias="from")
    reasons: list[str]
    findings: list[str]
    run_id: int | None


class GuardOut(BaseModel):
    rolled_back: list[RollbackOut]


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/rollout", tags=["rollout"])
    Tld = Annotated[
        str,
        Path(
            pattern=f"^({'|'.join(sorted(settings.tlds))})$",
            description=f"a TLD the service routes: {', '.join(sorted(settings.tlds))}",
        ),
    ]

    @router.get(
        "",
        operation_id="rolloutStatus",
        dependencies=[Depends(require_read)],
        responses=auth_responses(Access.READ),
        summary="Per TLD: its step on the flag, its verdict and its last change",
    )
    async def status(request: Request) -> dict[str, Any]:
        state = request.app.state
        return {"tlds": await actions.status(state.pool, settings, state.chain)}

    @router.post(
        "/{tld}/next",
        operation_id="rolloutNext",
        response_model=MoveOut,
        response_model_by_alias=True,
        dependencies=[Depends(require_write)],
        openapi_extra=json_request_body(NextIn.model_json_schema(), required=False),
        responses={**auth_responses(Access.WRITE), 409: REFUSED, 422: documented(422)},
        summary="Move the TLD one step forward when its verdict is ready (or forced)",
    )
    async def next_step(request: Request, tld: Tld) -> Any:
        wanted = NextIn.model_validate(_object(await json_body(request, optional=True)))
        if wanted.force and wanted.reason is None:
            raise InvalidInput("reason", "is required with force (it is recorded)")
        state = request.app.state
        move = await actions.advance(
            state.pool, settings, tld, actor=ACTOR, dry_run=wanted.dry_run,
            force=wanted.force, reason=wanted.reason, chain=state.chain,
        )  # fmt: skip
        if not move.applied and not wanted.dry_run:
            return _refused(move)
        return move.as_dict()

    @router.post(
        "/{tld}/back",
        operation_id="rolloutBack",
        response_model=MoveOut,
        response_model_by_alias=True,
        dependencies=[Depends(require_write)],
        openapi_extra=json_request_body(BackIn.model_json_schema(), required=True),
        responses={**auth_responses(Access.WRITE), 409: REFUSED, 422: documented(422)},
        summary="Move the TLD one step back",
    )
    async def back_step(request: Request, tld: Tld) -> Any:
        body = BackIn.model_validate(_object(await json_body(request)))
        state = request.app.state
        move = await actions.step_back(
            state.pool, settings, tld, actor=ACTOR, reason=body.reason, chain=state.chain
        )
        if not move.applied:
            return _refused(move)
        return move.as_dict()

    @router.post(
        "/guard",
        operation_id="rolloutGuard",
        response_model=GuardOut,
        response_model_by_alias=True,
        dependencies=[Depends(require_write)],
        responses=auth_responses(Access.WRITE),
        summary="Flip each TLD with a new critical Temporal-side finding back to legacy",
    )
    async def run_guard(request: Request) -> Any:
        state = request.app.state
        done = await guard(state.pool, settings, state.chain)
        return {"rolled_back": [r.as_dict() for r in done]}

    return router


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("body", f"must be an object, got {type(body).__name__}")
    return body
