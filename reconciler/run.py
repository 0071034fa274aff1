"""One reconciliation run over a window: collect, check, record, alert."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.service import RPCError

from reconciler import checks, checks_keys, checks_state, gauges, shadow, store
from reconciler.alerts import Webhook, announce
from reconciler.checks import CheckContext
from reconciler.model import Finding, RunSummary, Window
from reconciler.sources import (
    LedgerRelation,
    RegistryLedgerSource,
    clear_scratch,
    load_workflow_states,
)

log = structlog.get_logger(__name__)

Check = Callable[[AsyncConnection[Any], CheckContext], Awaitable[list[Finding]]]

CHECKS: tuple[Check, ...] = (
    checks_keys.duplicate_keys,  # duplicate operations, and keys both engines touched
    checks.renewal_pairs,
    checks.double_charges,
    checks_state.refunds_missing,
    checks_state.stuck_operations,
    checks_state.routing_violations,
    checks_state.status_drift,
    shadow.shadow_comparisons,
)
# The sweep: what a month-start duplicate needs and what the rollout guard acts on (every
# critical kind), over a few minutes of operations: cheap enough to run every few minutes.
SWEEP_CHECKS: tuple[Check, ...] = (
    checks_keys.duplicate_keys,  # duplicate operations, and keys both engines touched
    checks.double_charges,
    checks.renewal_pairs,
    checks_state.refunds_missing,
)


@dataclass(frozen=True)
class Reconciler:
    pool: AsyncConnectionPool
    ledger: RegistryLedgerSource
    webhook: Webhook
    temporal: Client | None = None
    task_queue: str = "renewals"
    stuck_after: dt.timedelta = dt.timedelta(minutes=30)

    async def refresh_gauges(self) -> None:
        """Refresh the stuck-work gauge; a failure is logged, never fails the run."""
        try:
            await gauges.refresh_stuck(self.pool, self.stuck_after)
        except Exception as exc:
            log.warning("reconcile.gauges.failed", error=f"{type(exc).__name__}: {exc}"[:200])

    async def _check(self, check: Check, ctx: CheckContext) -> list[Finding]:
        async with self.pool.connection() as conn:
            return await check(conn, ctx)

    async def _collect(
        self, window: Window, selected: tuple[Check, ...], run_id: int
    ) -> tuple[int, list[Finding], tuple[str, ...]]:
        """The window's operation count, its findings, and the checks it could not make."""
        drift = checks_state.status_drift in selected
        listed = False
        ledger: LedgerRelation | None = None
        async with self.pool.connection() as conn:  # loads commit before the checks read them
            cur = await conn.execute(
                "SELECT count(*) FROM operations WHERE created_at >= %s AND created_at < %s",
                (window.since, window.until),
            )
            row = await cur.fetchone()
            operations = int(row[0]) if row else 0
            if checks.renewal_pairs in selected:
                ledger = await self.ledger.fill(conn, run_id, window.since)
            if self.temporal is not None and drift:
                try:
                    await load_workflow_states(
                        conn, run_id, self.temporal, self.task_queue, window.since
                    )
                    listed = True
                except RPCError as exc:  # the rest is still checked; the run says what is not
                    log.warning("reconcile.temporal.unavailable", error=type(exc).__name__)
        ctx = CheckContext(window.since, window.until, self.stuck_after, listed, run_id, ledger)
        unchecked = ("status_drift",) if drift and not listed else ()
        try:
            results = await asyncio.gather(*(self._check(check, ctx) for check in selected))
        finally:
            async with self.pool.connection() as conn:
                await clear_scratch(conn, run_id)
        found = [f for result in results for f in result]
        log.info(
            "reconcile.collected", operations=operations, findings=len(found), unchecked=unchecked
        )
        return operations, found, unchecked

    async def run(
        self,
        window: Window,
        kind: str = "manual",
        *,
        wait: bool = False,
        selected: tuple[Check, ...] = CHECKS,
    ) -> RunSummary:
        """Reconcile the window; one run at a time across processes (advisory lock)."""
        started = time.perf_counter()
        async with store.exclusive(self.pool, wait):
            run_id = await store.start_run(self.pool, kind, window)
            try:
                operations, found, unchecked = await self._collect(window, selected, run_id)
                new_keys = await store.record_findings(self.pool, run_id, found)
            except Exception as exc:
                await store.finish_run(
                    self.pool,
                    run_id,
                    operations=0,
                    counts={},
                    new_findings=0,
                    error=f"{type(exc).__name__}: {exc}"[:500],
                )
                raise
            counts = dict(sorted(Counter(f.kind.value for f in found).items()))
            await store.finish_run(
                self.pool,
                run_id,
                operations=operations,
                counts=counts,
                new_findings=len(new_keys),
                unchecked=unchecked,
            )
        announce(found, new_keys)
        delivered = await self.webhook.deliver(await store.pending_alerts(self.pool))
        await store.mark_alerted(self.pool, delivered)
        summary = RunSummary(
            run_id=run_id,
            kind=kind,
            window=window,
            operations=operations,
            findings=counts,
            new_findings=len(new_keys),
            duration_s=time.perf_counter() - started,
            details=tuple(found),
            unchecked=unchecked,
        )
        gauges.LAST_RUN.labels(kind=kind).set_to_current_time()
        await self.refresh_gauges()
        log.info(
            "reconcile.finished",
            run_id=run_id,
            kind=kind,
            operations=operations,
            findings=counts,
            new_findings=len(new_keys),
            unchecked=unchecked,
            duration_s=round(summary.duration_s, 3),
        )
        return summary
