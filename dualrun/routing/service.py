"""What `dualrun submit|status|cancel|route explain` and the HTTP API do, in one place."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from dualrun.flags import metrics
from dualrun.routing import store
from dualrun.routing.answers import BatchResult, Submitted
from dualrun.routing.batch import submit_batch
from dualrun.routing.router import Decision, Router
from renewals import operations
from renewals.domains import normalise_domain
from renewals.engine import ENGINE_OF_MODE, CancelResult, Engines
from renewals.errors import IdempotencyConflict, InvalidInput, OperationNotFound
from renewals.logs import redact_text
from renewals.model import (
    Engine,
    Mode,
    Operation,
    OperationStatus,
    RenewalRequest,
    check_operation_id,
)
from renewals.settings import Settings

log = structlog.get_logger(__name__)

MAX_EXPLAIN = 100_000


class RenewalService:
    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool,
        router: Router,
        engines: Engines,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.router = router
        self.engines = engines

    # -- submit ------------------------------------------------------------------------------
    async def submit(self, request: RenewalRequest) -> Submitted:
        """One renewal, one operation (DESIGN §3): claim the key, or answer with the operation
        that has it, whatever made it (the router, the upstream batch, an import, a relaunch).
        A claimed key is routed, its decision stored with the operation (one statement), then
        dispatched; a met one is answered (deduplicated), or refused when its parameters
        differ (a conflict: nothing is written)."""
        decision = self.router.decide(request)
        engine = self.engines[decision.engine]
        try:
            async with self.pool.connection() as conn:
                created = await operations.create_routed(
                    conn,
                    request,
                    decision.engine,
                    store.routed(decision),
                    workflow_id=engine.workflow_id(request),
                )
                met = (
                    None
                    if created
                    else await operations.owner_routed(conn, request.idempotency_key)
                )
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "operations_pkey":
                raise store.OperationIdInUse(request.operation_id) from None
            raise
        if created is not None:
            return await self._dispatch_new(request, decision, created)
        if met is None:  # the key's owner went away meanwhile (deleted): route it afresh
            return await self.submit(request)
        owner, mode = met
        try:
            store.check_same(request, owner)
        except IdempotencyConflict:
            metrics.SUBMISSIONS.labels(result="conflict").inc()
            log.warning("router.conflict", idempotency_key=request.idempotency_key)
            raise
        return await self._deduplicated(owner, mode)

    async def _dispatch_new(
        self, request: RenewalRequest, decision: Decision, created: Operation
    ) -> Submitted:
        metrics.SUBMISSIONS.labels(result="created").inc()
        metrics.ROUTING_DECISIONS.labels(
            tld=decision.tld,
            engine=decision.engine.value,
            mode=decision.mode.value,
            source=decision.source.value,
        ).inc()
        log.info(
            "router.decided",
            operation_id=request.operation_id,
            idempotency_key=request.idempotency_key,
            **{k: v for k, v in decision.explain().items() if k != "domain"},
        )
        error = await self.start(request, decision.mode)
        return Submitted(
            created.operation_id,
            request.idempotency_key,
            created.engine.value,
            decision.mode.value,
            created.status.value,
            deduplicated=False,
            dispatch_error=error,
        )

    async def _deduplicated(self, owner: Operation, routed_mode: str | None) -> Submitted:
        """The renewal has an operation already: answer with it. One still `todo` (its hand-over
        failed, or is being made) is handed to its engine again: safe, per key (a Temporal
        workflow id; the legacy robots poll their table)."""
        metrics.SUBMISSIONS.labels(result="deduplicated").inc()
        mode = routed_mode or owner.engine.value
        log.info(
            "router.deduplicated",
            operation_id=owner.operation_id,
            idempotency_key=owner.idempotency_key,
            engine=owner.engine.value,
            mode=mode,
            origin=owner.origin.value,
        )
        error = None
        if owner.status == OperationStatus.TODO:  # its hand-over may have failed: hand it over
            error = await self.hand_over(owner.request, owner.engine)  # again (safe per key)
        return Submitted(
            owner.operation_id,
            owner.idempotency_key,
            owner.engine.value,
            mode,
            owner.status.value,
            deduplicated=True,
            dispatch_error=error,
        )

    async def start(self, request: RenewalRequest, mode: Mode) -> str | None:
        """Hand the committed renewal to its mode's engine (and plan it, in shadow mode)."""
        error = await self.hand_over(request, ENGINE_OF_MODE[mode], mode.value)
        if error is None and mode == Mode.SHADOW and self.engines.planner is not None:
            error = self._failed(request, mode.value, await self.engines.planner.plan(request))
        return error

    async def hand_over(
        self, request: RenewalRequest, engine: Engine, mode: str | None = None
    ) -> str | None:
        """After commit: the engine takes the renewal; a failure leaves the row `todo`,
        logged, counted and returned."""
        error = await self.engines[engine].start(request)
        return self._failed(request, mode or engine.value, error)

    def _failed(self, request: RenewalRequest, mode: str, error: str | None) -> str | None:
        if error is not None:
            error = redact_text(error, self.settings.secrets())
            metrics.DISPATCH_FAILURES.labels(mode=mode).inc()
            log.error(
                "router.dispatch.failed",
                operation_id=request.operation_id,
                idempotency_key=request.idempotency_key,
                mode=mode,
                error=error,
            )
        return error

    async def submit_batch(self, requests: Sequence[RenewalRequest]) -> BatchResult:
        """Many valid renewals at once, each as `submit` would (dualrun.routing.batch)."""
        return await submit_batch(self, requests)

    # -- status and cancel -------------------------------------------------------------------
    async def status(self, operation_id: str) -> dict[str, Any]:
        check_operation_id(operation_id)
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT o.*, d.mode, d.flag_source, d.reason, d.bucket, d.rollout"
                " FROM operations o LEFT JOIN routing_decisions d"
                " ON d.idempotency_key = o.idempotency_key AND d.operation_id = o.operation_id"
                " WHERE o.operation_id = %s",
                (operation_id,),
            )
            row = await cur.fetchone()
        if row is None:
            raise OperationNotFound(operation_id)
        operation = Operation.from_row(row)
        document = _status_document(row)
        document["engine_state"] = await self.engines[operation.engine].describe(operation)
        return document

    async def cancel(self, operation_id: str, reason: str = "requested") -> CancelResult:
        check_operation_id(operation_id)
        operation = await operations.get(self.pool, operation_id)
        return await self.engines[operation.engine].cancel(operation, reason)

    # -- explain -----------------------------------------------------------------------------
    def explain(self, names: Iterable[str]) -> list[Decision]:
        return explain_names(self.router, names, self.settings.tlds)


def explain_names(
    router: Router, names: Iterable[str], known_tlds: frozenset[str]
) -> list[Decision]:
    """Route each name as a new renewal would be routed; stores nothing. Every name is checked
    before any is routed, and the first bad one is named."""
    domains = []
    for i, raw in enumerate(names):
        if i >= MAX_EXPLAIN:
            raise InvalidInput("domain", f"more than {MAX_EXPLAIN} names in one call")
        try:
            domains.append(normalise_domain(raw, known_tlds))
        except InvalidInput as exc:
            shown = str(raw)[:80]
            raise InvalidInput("domain", f"name #{i + 1} ({shown!r}): {exc.problem}") from None
    return [router.route(d) for d in domains]


def _status_document(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "operation_id": row["operation_id"],
        "idempotency_key": row["idempotency_key"],
        "domain": row["domain"],
        "engine": row["engine"],
        "mode": row["mode"],
        "status": row["status"],
        "step": row["step"],
        "workflow_id": row["workflow_id"],
        "cancel_requested": row["cancel_requested_at"] is not None,
        "created_at": row["created_at"].isoformat(),
        "routing": None
        if row["mode"] is None
        else {
            "mode": row["mode"],
            "source": row["flag_source"],
            "bucket": row["bucket"],
            "rollout": row["rollout"],
            "reason": row["reason"],
        },
        "outcome": {
            "new_expiry": row["new_expiry"].isoformat() if row["new_expiry"] else None,
            "registry_transaction_id": row["registry_transaction_id"],
            "charged_cents": row["charged_cents"],
            "refunded_cents": row["refunded_cents"],
            "currency": row["currency"],
            "error_code": row["error_code"],
            "error_message": row["error_message"],
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        },
    }
