"""The reference legacy engine: robots polling the operations table, one step at a time.

Faithful to the registrar's legacy engine on purpose, because the reconciler must meet its real
failures: it has no idempotency key of its own (every charge and registry call is a fresh
request), it polls every few seconds, it retries any transient failure after a delay and gives
up after N attempts, and a robot that dies mid-step leaves the operation to another robot once
its lease runs out, which repeats that step.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from dualrun.billing import BillingLedger, charges_of_operation
from dualrun.model import OperationStatus, add_years
from dualrun.operations import OperationStore
from dualrun.registry import RegistryClient
from legacy_adapter.steps import LeaseLost, StepFailed, classify

log = structlog.get_logger(__name__)

_CLAIM = """
WITH next AS (
    SELECT operation_id, status AS previous_status
    FROM operations
    WHERE engine = 'legacy'
      AND ((status IN ('todo', 'error') AND next_attempt_at <= now())
           OR (status = 'doing' AND lease_expires_at < now()))
    ORDER BY next_attempt_at, created_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
UPDATE operations o SET
    status = 'doing',
    attempts = o.attempts + CASE WHEN o.status = 'doing' THEN 0 ELSE 1 END,
    lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease)s),
    started_at = coalesce(o.started_at, now()),
    updated_at = now()
FROM next
WHERE o.operation_id = next.operation_id
RETURNING o.*, next.previous_status
"""
_OPEN = (
    "SELECT count(*) AS n FROM operations"
    " WHERE engine = 'legacy' AND status IN ('todo', 'doing', 'error')"
)


@dataclass(frozen=True)
class RobotConfig:
    robots: int = 4
    poll_interval_s: float = 5.0  # a legacy engine polls in seconds, not milliseconds
    lease_s: float = 30.0
    retry_delay_s: float = 30.0
    max_attempts: int = 5
    drain: bool = False
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


@dataclass
class EngineStats:
    processed: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0


class LegacyEngine:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        registry: RegistryClient,
        billing: BillingLedger,
        config: RobotConfig,
    ) -> None:
        self.pool = pool
        self.store = OperationStore(pool)
        self.registry = registry
        self.billing = billing
        self.config = config
        self.stats = EngineStats()

    async def run(self, stop: asyncio.Event | None = None) -> EngineStats:
        """Run the robots until `stop` is set, or (with drain) until no legacy work is left."""
        stop = stop or asyncio.Event()
        log.info("legacy.engine.started", robots=self.config.robots, drain=self.config.drain)
        await asyncio.gather(*(self._robot(n, stop) for n in range(self.config.robots)))
        log.info("legacy.engine.stopped", **vars(self.stats))
        return self.stats

    async def _open_work(self) -> int:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_OPEN)
            row = await cur.fetchone()
        return int(row["n"]) if row else 0

    async def _robot(self, n: int, stop: asyncio.Event) -> None:
        owner = f"{self.config.owner}/robot-{n}"
        while not stop.is_set():
            row = await self.claim(owner)
            if row is not None:
                await self.process(row, owner)
                continue
            if self.config.drain and await self._open_work() == 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_interval_s)

    async def claim(self, owner: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_CLAIM, {"owner": owner, "lease": self.config.lease_s})
            return await cur.fetchone()

    async def _step(self, row: dict[str, Any], owner: str, step: str, **fields: Any) -> None:
        """Record progress under our lease (extending it); LeaseLost when another robot has it."""
        ok = await self.store.update(
            row["operation_id"],
            event=f"{step}.done" if fields else f"{step}.started",
            detail={k: str(v) for k, v in fields.items()},
            where="AND lease_owner = %(owner)s",
            step=step,
            where_params={"owner": owner},
            **fields,
        )
        if not ok:
            raise LeaseLost(row["operation_id"], owner)

    async def _cancel_requested(self, operation_id: str) -> bool:
        row = await self.store.get(operation_id)
        return row["cancel_requested_at"] is not None

    async def process(self, row: dict[str, Any], owner: str) -> None:
        op = row["operation_id"]
        started = time.monotonic()
        takeover = row["previous_status"] == "doing"
        if takeover:
            log.warning("legacy.lease.taken_over", operation_id=op, step=row["step"], owner=owner)
        try:
            status = await self._run_steps(row, owner, takeover)
        except LeaseLost:
            log.warning("legacy.lease.lost", operation_id=op, owner=owner)
            return
        except StepFailed as failure:
            status = await self._fail(row, owner, failure)
        self.stats.processed += 1
        if status.terminal:
            log.info(
                "legacy.renewal.finished",
                operation_id=op,
                domain=row["domain"],
                status=status.value,
                attempts=row["attempts"],
                duration_s=round(time.monotonic() - started, 3),
            )

    async def _run_steps(self, row: dict[str, Any], owner: str, takeover: bool) -> OperationStatus:
        op, domain, years = row["operation_id"], row["domain"], row["years"]
        try:
            if row["price_cents"] is None:
                await self._step(row, owner, "status")
                info = await self.registry.status(domain)
                if info.renew_prohibited:
                    raise StepFailed(
                        "renew_prohibited", f"{domain} is renew-prohibited", permanent=True
                    )
                await self._step(row, owner, "price")
                price = await self.registry.price(domain, years)
                await self._step(
                    row, owner, "price", price_cents=price.price_cents, currency=price.currency
                )
                row = {**row, "price_cents": price.price_cents, "currency": price.currency}
            if await self._cancel_requested(op):
                return await self._cancelled(row, owner)
            if row["charged_cents"] is None:
                await self._step(row, owner, "charge")
                await self.billing.charge(
                    charge_key=f"legacy:{op}:{uuid.uuid4().hex}",  # no key of its own
                    idempotency_key=row["idempotency_key"],
                    operation_id=op,
                    customer_id=row["customer_id"],
                    amount_cents=row["price_cents"],
                    currency=row["currency"],
                )
                await self._step(row, owner, "charge", charged_cents=row["price_cents"])
            if await self._cancel_requested(op):
                return await self._cancelled(row, owner)
            expected = add_years(row["current_expiry"], years)
            tx_id: str | None = None
            if takeover and row["step"] in ("renew", "record"):
                # the robot before us may have renewed: the legacy recovery reads the registry
                current = await self.registry.status(domain)
                renewed = current.expiry == expected
            else:
                renewed = False
            if not renewed:
                await self._step(row, owner, "renew")
                result = await self.registry.renew(
                    domain, row["current_expiry"], years, client_tx_id=f"legacy-{uuid.uuid4().hex}"
                )
                expected, tx_id = result.new_expiry, result.server_tx_id
            await self._step(
                row,
                owner,
                "record",
                new_expiry=expected,
                registry_transaction_id=tx_id,
                status=OperationStatus.DONE.value,
                finished_at=_now(),
                lease_owner=None,
                error_code=None,
                error_message=None,
            )
        except (LeaseLost, StepFailed):
            raise
        except Exception as exc:
            raise classify(exc) from exc
        self.stats.done += 1
        return OperationStatus.DONE

    async def _cancelled(self, row: dict[str, Any], owner: str) -> OperationStatus:
        refunded = 0
        for charge in await charges_of_operation(self.pool, row["operation_id"]):
            refund = await self.billing.refund(charge_key=charge.charge_key)
            refunded += refund.amount_cents
        ok = await self.store.update(
            row["operation_id"],
            event="cancelled",
            detail={"refunded_cents": refunded},
            where="AND lease_owner = %(owner)s",
            where_params={"owner": owner},
            status=OperationStatus.CANCELLED.value,
            refunded_cents=refunded or None,
            finished_at=_now(),
            lease_owner=None,
        )
        if not ok:
            raise LeaseLost(row["operation_id"], owner)
        self.stats.cancelled += 1
        return OperationStatus.CANCELLED

    async def _fail(self, row: dict[str, Any], owner: str, failure: StepFailed) -> OperationStatus:
        final = failure.permanent or row["attempts"] >= row["max_attempts"]
        status = OperationStatus.FAILED if final else OperationStatus.ERROR
        delay = (
            failure.retry_after if failure.retry_after is not None else self.config.retry_delay_s
        )
        await self.store.update(
            row["operation_id"],
            event="failed" if final else "error",
            detail={"code": failure.code, "message": failure.message},
            where="AND lease_owner = %(owner)s",
            where_params={"owner": owner},
            status=status.value,
            error_code=failure.code,
            error_message=failure.message[:500],
            next_attempt_at=_now(delay),
            finished_at=_now() if final else None,
            lease_owner=None,
            lease_expires_at=None,
        )
        if final:
            self.stats.failed += 1
        else:
            self.stats.retried += 1
            log.info(
                "legacy.renewal.retry",
                operation_id=row["operation_id"],
                code=failure.code,
                attempt=row["attempts"],
                delay_s=delay,
            )
        return status


def _now(plus_s: float = 0.0) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=plus_s)
