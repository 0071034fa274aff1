"""The reference legacy engine: robots polling the operations table, one step at a time.

Faithful to the registrar's legacy engine on purpose, because the reconciler must meet its real
failures: it has no idempotency key of its own (every charge and registry call is a fresh
request), it polls every few seconds, it retries any transient failure after a delay and gives
up after N attempts, and a robot that dies mid-step leaves the operation to another robot once
its lease runs out, which repeats that step (a charge made just before the crash is made again).

Its one recovery: a robot taking over an operation whose previous robot died at the registry
step reads the registry first. A renew that timed out is, like any transient failure, simply
retried later: against a strict registry the replay is refused (the operation fails although
the registry renewed it: an unrecorded renewal), against a lenient one it renews twice.
What it does get right: a cancel is accepted or refused atomically with the move to the
registry step, and a robot holds its lease only as long as it keeps making progress.
`RobotConfig.stale_writes` plays an older robot that writes by operation id alone: a paused one
then writes over a row another robot finished, and only the database's forward-only rule
(migrations 0008, 0010) stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from psycopg_pool import AsyncConnectionPool

from ops.legacy_engine.pacing import Pacer
from ops.legacy_engine.rows import Rows
from ops.legacy_engine.steps import LeaseLost, StepFailed, classify
from renewals.billing import BillingLedger, charges_of_operation
from renewals.metrics import observe_renewal
from renewals.model import OperationStatus, add_years
from renewals.registry import RegistryClient
from renewals.registry_errors import RateLimited

log = structlog.get_logger(__name__)

# Steps after which the registry may have renewed: a takeover reads the registry first.
_PAST_RENEW = ("renew", "record")
# Paced, a 429 (a provider shared with the other engine) is waited out in place this many
# times per call before the step fails as any transient failure does.
RATE_LIMITED_IN_PLACE = 20
T = TypeVar("T")


@dataclass(frozen=True)
class RobotConfig:
    robots: int = 4
    poll_interval_s: float = 5.0  # a legacy engine polls in seconds, not milliseconds
    lease_s: float = 30.0
    retry_delay_s: float = 30.0
    max_attempts: int = 5
    drain: bool = False
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # An older robot: writes by operation id alone, its lease and the row's status unchecked
    # (a paused one then writes over a row another robot finished: the database refuses it).
    stale_writes: bool = False


@dataclass
class EngineStats:
    processed: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    waited_429: int = 0  # paced: 429s waited out in place


class Robots:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        registry: RegistryClient,
        billing: BillingLedger,
        config: RobotConfig,
        pacer: Pacer | None = None,
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.billing = billing
        self.config = config
        self.pacer = pacer
        self.rows = Rows(pool, config.lease_s, config.max_attempts, config.stale_writes)
        self.stats = EngineStats()
        self._claiming = asyncio.Lock()  # paced: a claim sees the places the others took

    async def run(self, stop: asyncio.Event | None = None) -> EngineStats:
        """Run the robots until `stop` is set, or (with drain) until no legacy work is left."""
        stop = stop or asyncio.Event()
        log.info("legacy.engine.started", robots=self.config.robots, drain=self.config.drain)
        await asyncio.gather(*(self._robot(n, stop) for n in range(self.config.robots)))
        log.info("legacy.engine.stopped", **vars(self.stats))
        return self.stats

    async def _robot(self, n: int, stop: asyncio.Event) -> None:
        owner = f"{self.config.owner}/robot-{n}"
        while not stop.is_set():
            try:
                row = await self.claim(owner)
                if row is not None:
                    try:
                        await self.process(row, owner)
                    finally:
                        if self.pacer is not None:
                            self.pacer.give_back(row["tld"])
                    continue
                if self.config.drain and await self.rows.open_work() == 0:
                    return
            except Exception as exc:
                # A database blip must not end the robot: what it held goes back to the pool
                # when its lease runs out.
                log.error("legacy.robot.error", robot=owner, error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_interval_s)

    async def claim(self, owner: str) -> dict[str, Any] | None:
        """The oldest ready row; paced, of a TLD with a free place (the place is then ours)."""
        if self.pacer is None:
            return await self.rows.claim(owner)
        async with self._claiming:
            free = self.pacer.free()
            row = await self.rows.claim(owner, free) if free else None
            if row is not None:
                self.pacer.take(row["tld"])
            return row

    async def _step(self, row: dict[str, Any], owner: str, step: str, **fields: Any) -> None:
        """Record progress under our lease (extending it); LeaseLost when another robot has it."""
        event = f"{step}.done" if fields else f"{step}.started"
        if not await self.rows.write(row, owner, event, detail=fields, step=step, **fields):
            raise LeaseLost(row["operation_id"], owner)
        row["step"] = step

    async def process(self, row: dict[str, Any], owner: str) -> None:
        op = row["operation_id"]
        started = time.monotonic()
        if row["previous_status"] == "doing":
            log.warning("legacy.lease.taken_over", operation_id=op, step=row["step"], owner=owner)
        try:
            status = await self._run_steps(row, owner)
        except LeaseLost:
            log.warning("legacy.lease.lost", operation_id=op, owner=owner)
            return
        except StepFailed as failure:
            status = await self._fail(row, owner, failure)
        self.stats.processed += 1
        if status == OperationStatus.DONE:
            observe_renewal("legacy", row["tld"], row["created_at"], dt.datetime.now(dt.UTC))
        if status.terminal:
            log.info(
                "legacy.renewal.finished",
                operation_id=op,
                domain=row["domain"],
                status=status.value,
                attempts=row["attempts"],
                duration_s=round(time.monotonic() - started, 3),
            )

    async def _pace(self, domain: str) -> None:
        """Wait for the TLD's turn (with --pace). Always before a write that extends the lease,
        never between it and the call: a robot whose wait outlived its lease finds it lost at
        that write and lets go, instead of calling the registry for a row another robot has."""
        if self.pacer is not None:
            await self.pacer.turn(domain)

    async def _ask(self, row: dict[str, Any], owner: str, call: Callable[[], Awaitable[T]]) -> T:
        """One registry call. Paced, a 429 is waited out in place: its Retry-After, the TLD's
        turn, the lease renewed (event `<step>.rate_limited`), the call again; not an attempt.
        Unpaced, it fails the step (the row goes back with the provider's delay)."""
        for waited in range(RATE_LIMITED_IN_PLACE + 1):
            try:
                return await call()
            except RateLimited as exc:
                if self.pacer is None or waited == RATE_LIMITED_IN_PLACE:
                    raise
                self.stats.waited_429 += 1
                await asyncio.sleep(exc.retry_after)
                await self._pace(row["domain"])
                detail = {"retry_after_s": exc.retry_after}
                if not await self.rows.write(
                    row, owner, f"{row['step']}.rate_limited", detail=detail
                ):
                    raise LeaseLost(row["operation_id"], owner) from exc
        raise AssertionError("unreachable")

    async def _run_steps(self, row: dict[str, Any], owner: str) -> OperationStatus:
        op, domain, years = row["operation_id"], row["domain"], row["years"]
        taken_over_past_renew = row["previous_status"] == "doing" and row["step"] in _PAST_RENEW
        try:
            if await self.rows.cancel_requested(op):
                return await self._cancelled(row, owner)
            if row["price_cents"] is None:
                await self._pace(domain)
                await self._step(row, owner, "status")
                info = await self._ask(row, owner, lambda: self.registry.status(domain))
                if info.renew_prohibited:
                    raise StepFailed(
                        "renew_prohibited", f"{domain} is renew-prohibited", permanent=True
                    )
                await self._pace(domain)
                await self._step(row, owner, "price")
                price = await self._ask(row, owner, lambda: self.registry.price(domain, years))
                await self._step(
                    row, owner, "price", price_cents=price.price_cents, currency=price.currency
                )
                row.update(price_cents=price.price_cents, currency=price.currency)
            if await self.rows.cancel_requested(op):
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
            # The point of no return: moving to the registry step and seeing no cancel request
            # are one statement, serialised with the legacy adapter's cancel by the row lock.
            await self._pace(domain)
            if not await self.rows.write(
                row, owner, "renew.started", step="renew", unless_cancelled=True
            ):
                if await self.rows.cancel_requested(op):
                    return await self._cancelled(row, owner)
                raise LeaseLost(op, owner)
            row["step"] = "renew"
            expected = add_years(row["current_expiry"], years)
            renewed = False
            if taken_over_past_renew:
                # The robot before us died at the registry step, maybe after it renewed: the
                # legacy recovery reads the registry. (A retry after an error does not.)
                current = await self._ask(row, owner, lambda: self.registry.status(domain))
                renewed = current.expiry == expected
                if renewed:
                    log.info("legacy.renewal.resolved_by_status", operation_id=op, domain=domain)
            tx_id: str | None = None
            if not renewed:
                if taken_over_past_renew and self.pacer is not None:
                    await self._pace(domain)  # a second call: its own turn, the lease held again
                    await self._step(row, owner, "renew")
                result = await self._ask(
                    row,
                    owner,
                    lambda: self.registry.renew(
                        domain,
                        row["current_expiry"],
                        years,
                        client_tx_id=f"legacy-{uuid.uuid4().hex}",
                    ),
                )
                expected, tx_id = result.new_expiry, result.server_tx_id
            if not await self.rows.write(
                row,
                owner,
                "record.done",
                detail={"new_expiry": expected, "registry_transaction_id": tx_id},
                release=True,
                finish=True,
                step="record",
                new_expiry=expected,
                registry_transaction_id=tx_id,
                status=OperationStatus.DONE.value,
                error_code=None,
                error_message=None,
            ):
                raise LeaseLost(op, owner)
        except (LeaseLost, StepFailed):
            raise
        except Exception as exc:
            raise classify(exc) from exc
        self.stats.done += 1
        return OperationStatus.DONE

    async def _cancelled(self, row: dict[str, Any], owner: str) -> OperationStatus:
        """Refund every charge of the operation (refunds are keyed: a replay is harmless)."""
        refunded = 0
        for charge in await charges_of_operation(self.pool, row["operation_id"]):
            refund = await self.billing.refund(charge_key=charge.charge_key)
            refunded += refund.amount_cents
        if not await self.rows.write(
            row,
            owner,
            "cancelled",
            detail={"refunded_cents": refunded},
            release=True,
            finish=True,
            status=OperationStatus.CANCELLED.value,
            refunded_cents=refunded or None,
        ):
            raise LeaseLost(row["operation_id"], owner)
        self.stats.cancelled += 1
        return OperationStatus.CANCELLED

    async def _fail(self, row: dict[str, Any], owner: str, failure: StepFailed) -> OperationStatus:
        final = failure.permanent or row["attempts"] >= self.config.max_attempts
        status = OperationStatus.FAILED if final else OperationStatus.ERROR
        delay = (
            failure.retry_after if failure.retry_after is not None else self.config.retry_delay_s
        )
        held = await self.rows.write(
            row,
            owner,
            "failed" if final else "error",
            detail={"code": failure.code, "message": failure.message},
            release=True,
            finish=final,
            retry_in_s=None if final else delay,
            status=status.value,
            error_code=failure.code,
            error_message=failure.message[:500],
        )
        if not held:
            log.warning("legacy.lease.lost", operation_id=row["operation_id"], owner=owner)
            return OperationStatus.DOING
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
