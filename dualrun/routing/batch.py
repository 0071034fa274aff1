"""A batch of renewals submitted at once (`POST /renewals/batch`, `dualrun submit --file`):
the same validation, deduplication and pinning as one submit, set-based.

The batch's rows are valid already (the edges refuse a batch with any invalid row, naming each
row and field). Here, in one transaction: the renewals' keys are claimed together; the rows
that claim theirs are routed, recorded with their pinned decision and created on their
engine; the others meet the operation that has their renewal (answered with it,
`deduplicated`, or refused as a conflict when the parameters differ). A renewal given twice in
one batch is answered once: its first row makes it, the later ones are answered with it. After
commit, each new renewal is handed to its engine. Nothing is half-written: a row's operation
and its decision are written together, or the whole batch is not written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from dualrun.flags import metrics
from dualrun.routing import store
from dualrun.routing.answers import BatchResult, RowError, RowResult, Submitted
from dualrun.routing.router import Router
from renewals import operations
from renewals.engine import Engines
from renewals.errors import IdempotencyConflict
from renewals.model import Engine, Mode, Operation, OperationStatus, RenewalRequest

log = structlog.get_logger(__name__)

MAX_BATCH = 1000  # rows per call
HAND_OVER_AT_ONCE = 32  # engine hand-overs in flight after commit
_RETRIES = 3  # a deadlock or an operation id taken meanwhile: the batch is tried again


def _conflict(request: RenewalRequest, had: RenewalRequest | Operation) -> RowError | None:
    for name, given in request.params().items():
        existing = getattr(had, name)
        if existing != given:
            exc = IdempotencyConflict(request.idempotency_key, name, existing, given)
            return RowError("idempotency_conflict", name, str(exc))
    return None


def _answer(index: int, op: Operation, mode: str, dedup: bool) -> RowResult:
    submitted = Submitted(
        op.operation_id, op.idempotency_key, op.engine.value, mode, op.status.value, dedup
    )
    return RowResult(index, op.idempotency_key, submitted)


@dataclass
class _Plan:
    """The batch's rows sorted out before anything is written."""

    leaders: dict[str, int]  # key → index of the row that makes the renewal
    followers: dict[int, int]  # index → its leader's index (same renewal, same parameters)
    refused: dict[int, RowError]


def _sort_out(requests: Sequence[RenewalRequest], taken: dict[str, str]) -> _Plan:
    plan = _Plan({}, {}, {})
    ids: dict[str, str] = {}  # operation id → key, within the batch
    for i, request in enumerate(requests):
        key = request.idempotency_key
        leader = plan.leaders.get(key)
        if leader is not None:
            error = _conflict(request, requests[leader])
            if error is None:
                plan.followers[i] = leader
            else:
                plan.refused[i] = error
            continue
        other = taken.get(request.operation_id) or ids.get(request.operation_id)
        if other is not None and other != key:
            plan.refused[i] = RowError(
                "operation_id_in_use",
                "operation_id",
                f"{request.operation_id} is already the id of another renewal",
            )
            continue
        ids[request.operation_id] = key
        plan.leaders[key] = i
    return plan


class Submitter(Protocol):
    """What a batch needs of the renewal service."""

    pool: AsyncConnectionPool
    engines: Engines
    router: Router

    async def start(self, request: RenewalRequest, mode: Mode) -> str | None: ...

    async def hand_over(self, request: RenewalRequest, engine: Engine) -> str | None: ...


async def submit_batch(service: Submitter, requests: Sequence[RenewalRequest]) -> BatchResult:
    """Submit valid renewals together (see the module's docstring)."""
    for attempt in range(_RETRIES):
        try:
            return await _submit(service, requests)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.UniqueViolation) as exc:
            if attempt == _RETRIES - 1:
                raise
            log.warning("router.batch.retry", attempt=attempt + 1, error=type(exc).__name__)
    raise AssertionError("unreachable")


async def _submit(service: Submitter, requests: Sequence[RenewalRequest]) -> BatchResult:
    results: dict[int, RowResult] = {}
    async with service.pool.connection() as conn, conn.transaction():
        plan = _sort_out(requests, await operations.taken_ids(conn, requests))
        for i, error in plan.refused.items():
            results[i] = RowResult(i, requests[i].idempotency_key, error=error)
        decisions = {i: service.router.decide(requests[i]) for i in plan.leaders.values()}
        claimed = await operations.claim_keys(
            conn, [(requests[i], decisions[i].engine) for i in plan.leaders.values()]
        )
        new = [i for k, i in plan.leaders.items() if k in claimed]
        await store.record_many(conn, [(requests[i], decisions[i]) for i in new])
        for engine in Engine:
            mine = [i for i in new if decisions[i].engine == engine]
            if mine:
                runs = service.engines[engine]
                made = await operations.insert_many(
                    conn,
                    [requests[i] for i in mine],
                    engine,
                    workflow_ids=[runs.workflow_id(requests[i]) for i in mine],
                )
                for i, op in zip(mine, made, strict=True):
                    results[i] = _answer(i, op, decisions[i].mode.value, False)
        met = [i for k, i in plan.leaders.items() if k not in claimed]
        keys = [requests[i].idempotency_key for i in met]
        owned = await operations.owners(conn, keys)
        stored = await store.stored_many(conn, keys)
        for i in met:
            key = requests[i].idempotency_key
            owner = owned[key]
            conflict = _conflict(requests[i], owner)
            decided = stored.get(key)
            mode = decided["mode"] if decided else owner.engine.value
            results[i] = (
                RowResult(i, key, error=conflict)
                if conflict is not None
                else _answer(i, owner, mode, True)
            )
    for i, leader in plan.followers.items():
        first = results[leader]
        again = replace(first.submitted, deduplicated=True) if first.submitted else None
        results[i] = replace(first, index=i, submitted=again)
    jobs = [(i, service.start(requests[i], decisions[i].mode)) for i in new]
    jobs += [  # met an operation still `todo`: its hand-over may have failed, so again (safe)
        (i, service.hand_over(requests[i], Engine(answer.engine)))
        for i in met
        if (answer := results[i].submitted) and answer.status == OperationStatus.TODO.value
    ]
    errors = await _hand_over(jobs)
    rows = tuple(_with_error(results[i], errors.get(i)) for i in range(len(requests)))
    result = BatchResult(rows)
    summary = result.summary()
    for name in ("created", "deduplicated"):
        metrics.SUBMISSIONS.labels(result=name).inc(summary[name])
    metrics.SUBMISSIONS.labels(result="conflict").inc(summary["refused"])
    for i in new:
        d = decisions[i]
        metrics.ROUTING_DECISIONS.labels(
            tld=d.tld, engine=d.engine.value, mode=d.mode.value, source=d.source.value
        ).inc()
    log.info("router.batch", **summary)
    return result


def _with_error(row: RowResult, error: str | None) -> RowResult:
    if error is None or row.submitted is None:
        return row
    return replace(row, submitted=replace(row.submitted, dispatch_error=error))


async def _hand_over(jobs: list[tuple[int, Coroutine[Any, Any, str | None]]]) -> dict[int, str]:
    """After commit: the hand-overs, a few at a time; the errors by row."""
    sem = asyncio.Semaphore(HAND_OVER_AT_ONCE)
    errors: dict[int, str] = {}

    async def one(i: int, start: Coroutine[Any, Any, str | None]) -> None:
        async with sem:
            error = await start
        if error is not None:
            errors[i] = error

    await asyncio.gather(*(one(i, start) for i, start in jobs))
    return errors
