"""`POST /renewals/batch`: up to 1,000 renewals in one call, for month-start batches.

All or nothing on input: every row is checked first (the schema of `POST /renewals`, then the
rules every entry point has); any bad row and the whole batch is refused with a 422 that names
each bad row (its index) and field, and nothing is written. A valid batch is submitted as one
(`dualrun.routing.batch`): each row gets its result, created or deduplicated (a renewal given
twice in the batch is answered once), or refused as a conflict (`idempotency_conflict`: the
key is taken with other parameters; `operation_id_in_use`), the other rows applied.

No `from __future__ import annotations` here: the body models are built inside
`build_router` from the settings, and FastAPI must see them as objects.
"""

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dualrun.api.auth import Access, auth_responses, require_write
from dualrun.api.bodies import json_body, json_request_body
from dualrun.api.errors import ErrorDetail, first_problem
from dualrun.api.schemas import pattern_messages, renewal_in
from dualrun.routing.batch import MAX_BATCH
from dualrun.routing.service import RenewalService
from renewals.errors import InvalidInput
from renewals.model import RenewalRequest
from renewals.settings import Settings

SHOWN_PROBLEMS = 20  # bad rows named in the message (all are listed in `rows`)


class RowProblem(BaseModel):
    index: int = Field(description="the row's 0-based position in `renewals`")
    field: str
    message: str


class BatchRefused(BaseModel):
    """A batch with bad rows: nothing written."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail
    rows: list[RowProblem] = Field(
        default_factory=list, description="every bad row, in order (absent: the body itself)"
    )


class RowErrorOut(BaseModel):
    code: str = Field(examples=["idempotency_conflict"])
    field: str
    message: str


class RowOut(BaseModel):
    """One row's result: `ok` with its operation, or its error."""

    index: int = Field(description="the row's 0-based position in `renewals`")
    ok: bool
    idempotency_key: str | None
    operation_id: str | None = None
    engine: str | None = None
    mode: str | None = None
    status: str | None = None
    deduplicated: bool | None = Field(
        default=None, description="the renewal already had this operation (or an earlier row)"
    )
    dispatch_error: str | None = Field(
        default=None, description="the engine could not be handed the renewal (it stays todo)"
    )
    error: RowErrorOut | None = None


class BatchSummary(BaseModel):
    rows: int
    created: int
    deduplicated: int
    refused: int
    dispatch_errors: int


class BatchOut(BaseModel):
    summary: BatchSummary
    results: list[RowOut]


def _check_rows(
    body: Any, row_model: type[BaseModel], settings: Settings, messages: dict[str, str]
) -> list[RenewalRequest]:
    """Every row as a RenewalRequest, or the whole batch refused naming each bad row."""
    if not isinstance(body, dict):
        raise InvalidInput("body", f"must be an object, got {type(body).__name__}")
    extra = sorted(set(body) - {"renewals"})
    if extra:
        raise InvalidInput(str(extra[0]), "unknown field")
    rows = body.get("renewals")
    if not isinstance(rows, list):
        raise InvalidInput("renewals", "must be an array of renewals")
    if not 1 <= len(rows) <= MAX_BATCH:
        raise InvalidInput("renewals", f"must hold 1 to {MAX_BATCH} renewals, got {len(rows)}")
    requests: list[RenewalRequest] = []
    problems: list[RowProblem] = []
    for i, row in enumerate(rows):
        try:
            row_model.model_validate(row)  # what the OpenAPI document states, exactly
            requests.append(RenewalRequest.parse(row, settings.tlds))  # and the shared rules
        except ValidationError as exc:
            problem = first_problem(exc.errors(), messages)
            problems.append(RowProblem(index=i, field=problem.field, message=str(problem)))
        except InvalidInput as exc:
            problems.append(RowProblem(index=i, field=exc.field, message=str(exc)))
    if problems:
        raise _Refused(problems, len(rows))
    return requests


class _Refused(Exception):
    def __init__(self, problems: list[RowProblem], rows: int) -> None:
        super().__init__(f"{len(problems)} of {rows} rows refused")
        self.problems = problems
        self.rows = rows

    def response(self) -> JSONResponse:
        first = self.problems[0]
        shown = "; ".join(f"row {p.index}: {p.message}" for p in self.problems[:SHOWN_PROBLEMS])
        more = len(self.problems) - SHOWN_PROBLEMS
        message = f"{len(self.problems)} of {self.rows} rows refused, nothing written: {shown}" + (
            f"; and {more} more (see rows)" if more > 0 else ""
        )
        body = BatchRefused(
            error=ErrorDetail(
                code="invalid_input", field=f"renewals.{first.index}.{first.field}", message=message
            ),
            rows=self.problems,
        )
        return JSONResponse(body.model_dump(), status_code=422)


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    row_model = renewal_in(settings.tlds)
    messages = pattern_messages(settings.tlds)
    batch_schema = {
        "title": "RenewalBatchIn",
        "description": f"Up to {MAX_BATCH} renewals to submit at once.",
        "type": "object",
        "additionalProperties": False,
        "required": ["renewals"],
        "properties": {
            "renewals": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": row_model.model_json_schema(),
            }
        },
    }

    @router.post(
        "/renewals/batch",
        operation_id="submitRenewalBatch",
        response_model=BatchOut,
        dependencies=[Depends(require_write)],
        openapi_extra=json_request_body(batch_schema, required=True),
        responses={
            200: {"description": "submitted: each row's result, in the batch's order"},
            **auth_responses(Access.WRITE),
            422: {
                "model": BatchRefused,
                "description": "Bad input (`invalid_input`), nothing written: a malformed "
                "body, or bad rows, every one named in `rows` (its index and field)",
            },
        },
        summary=f"Submit up to {MAX_BATCH} renewals at once (each routed once per key)",
    )
    async def submit_batch(request: Request) -> JSONResponse:
        body = await json_body(request)
        try:
            requests = _check_rows(body, row_model, settings, messages)
        except _Refused as refused:
            return refused.response()
        service: RenewalService = request.app.state.service
        result = await service.submit_batch(requests)
        return JSONResponse(result.as_dict())

    return router
