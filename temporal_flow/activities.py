"""The renewal's activities: registry calls, billing, and the database writes of the interceptors.

Every side effect carries the renewal's idempotency key: the charge key, and the registry
client transaction id. A renew retried after an unknown outcome (a timeout, a worker killed)
first reads the registry: an expiry already advanced by `years` means the renewal happened.
So does a renew the workflow marks `verify_first` (a reset run's, or one scheduled again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from renewals import operations
from renewals.billing import BillingConflict, BillingLedger, NothingToRefund
from renewals.model import OperationStatus
from renewals.outcomes import BILLING_CONFLICT, REGISTRY_UNAVAILABLE, RENEW_IN_FLIGHT, SUPERSEDED
from renewals.registry import RegistryClient
from renewals.registry_errors import AmbiguousTimeout, ExpiryMismatch, RegistryError
from temporal_flow import plans
from temporal_flow.errors import to_application_error
from temporal_flow.types import (
    ChargeInput,
    ChargeResult,
    DomainInput,
    FindRenewalInput,
    FoundRenewal,
    PastInput,
    PastResult,
    PlanInput,
    PriceInput,
    PriceResult,
    RefundInput,
    RefundResult,
    RegistryRenewInput,
    RegistryRenewResult,
    StatusResult,
    SyncInput,
)

log = structlog.get_logger(__name__)

# Activity names by queue: registry calls go to the provider's queue (registry-{tld}).
REGISTRY_ACTIVITIES = frozenset(
    {"registry_status", "registry_price", "registry_renew", "registry_find_renewal"}
)


class RenewalActivities:
    def __init__(
        self, pool: AsyncConnectionPool, registry: RegistryClient, billing: BillingLedger
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.billing = billing

    # -- registry ----------------------------------------------------------------------------
    @activity.defn(name="registry_status")
    async def registry_status(self, inp: DomainInput) -> StatusResult:
        try:
            status = await self.registry.status(inp.domain)
        except RegistryError as exc:
            raise to_application_error(exc) from exc
        return StatusResult(
            expiry=status.expiry.isoformat(),
            statuses=status.statuses,
            premium=status.premium,
            renew_prohibited=status.renew_prohibited,
        )

    @activity.defn(name="registry_price")
    async def registry_price(self, inp: PriceInput) -> PriceResult:
        try:
            price = await self.registry.price(inp.domain, inp.years)
        except RegistryError as exc:
            raise to_application_error(exc) from exc
        return PriceResult(price.price_cents, price.currency, price.premium)

    async def _ours(self, domain: str, current_expiry: str, client_tx_id: str) -> FoundRenewal:
        """The registry's record of our renewal of this period (made with our client
        transaction id), if it performed one. Its errors are typed like any registry call's (a
        429 here is backpressure with the provider's Retry-After)."""
        try:
            entry = await self.registry.find_renewal(
                domain, client_tx_id, dt.date.fromisoformat(current_expiry)
            )
        except RegistryError as exc:
            raise to_application_error(exc) from exc
        if entry is None:
            return FoundRenewal(False)
        return FoundRenewal(True, entry.new_expiry.isoformat(), entry.server_tx_id)

    @activity.defn(name="registry_find_renewal")
    async def registry_find_renewal(self, inp: FindRenewalInput) -> FoundRenewal:
        """A rerun finding the registry expiry moved: was it our renewal?"""
        return await self._ours(inp.domain, inp.current_expiry, inp.client_tx_id)

    @activity.defn(name="registry_renew")
    async def registry_renew(self, inp: RegistryRenewInput) -> RegistryRenewResult:
        """Renew with curExpDate and our client transaction id. A renew that may have been sent
        before (a retry, a reset run's, one scheduled again) first looks for the registry's
        record of ours; so does one whose outcome is unknown (a timeout), or refused because
        the period was renewed: never a blind second renew."""
        info = activity.info()
        lease_s = 2 * self.registry.timeout_s + 5  # the lookup, then the renew
        left = await operations.take_renew_lease(
            self.pool, inp.operation_id, info.workflow_run_id or "", lease_s
        )
        if left is not None:  # a reset's old run may still be renewing: never two renews at once
            raise ApplicationError(
                f"{inp.domain}: another run's renew may be in flight ({left:.1f} s left)",
                type=RENEW_IN_FLIGHT,
                next_retry_delay=timedelta(seconds=left),
            )
        retried = info.attempt > 1 or inp.verify_first
        try:
            if retried:
                mine = await self._ours(inp.domain, inp.current_expiry, inp.client_tx_id)
                if mine.found:
                    log.info("renewal.resolved_by_registry", domain=inp.domain, reason="retry")
                    return _resolved(mine)
                await self._not_superseded(inp)
            result = await self.registry.renew(
                inp.domain,
                dt.date.fromisoformat(inp.current_expiry),
                inp.years,
                client_tx_id=inp.client_tx_id,
            )
        except AmbiguousTimeout as exc:
            mine = await self._ours(inp.domain, inp.current_expiry, inp.client_tx_id)
            if mine.found:
                log.info("renewal.resolved_by_registry", domain=inp.domain, reason="timeout")
                return _resolved(mine)
            raise ApplicationError(str(exc), type=REGISTRY_UNAVAILABLE) from exc
        except ExpiryMismatch as exc:
            mine = await self._ours(inp.domain, inp.current_expiry, inp.client_tx_id)
            if mine.found:  # an earlier attempt of ours got through
                return _resolved(mine)
            raise to_application_error(exc) from exc
        except RegistryError as exc:
            raise to_application_error(exc) from exc
        return RegistryRenewResult(result.new_expiry.isoformat(), result.server_tx_id)

    async def _not_superseded(self, inp: RegistryRenewInput) -> None:
        """A renew sent again (a retry, a reset run's) skips the gate before it (it may have
        reached the registry: the lookup says it did not); read it now, before renewing."""
        gate = await operations.gate(self.pool, inp.operation_id)
        if gate.superseded_by is not None:
            raise ApplicationError(
                f"{gate.superseded_by} (another engine) has this renewal: registry_renew not run",
                gate.superseded_by,
                type=SUPERSEDED,
                non_retryable=True,
            )

    # -- billing -----------------------------------------------------------------------------
    @activity.defn(name="billing_charge")
    async def billing_charge(self, inp: ChargeInput) -> ChargeResult:
        try:
            entry = await self.billing.charge(
                charge_key=inp.idempotency_key,
                idempotency_key=inp.idempotency_key,
                operation_id=inp.operation_id,
                customer_id=inp.customer_id,
                amount_cents=inp.amount_cents,
                currency=inp.currency,
            )
        except BillingConflict as exc:
            raise ApplicationError(str(exc), type=BILLING_CONFLICT, non_retryable=True) from exc
        return ChargeResult(entry.entry_id, entry.amount_cents, entry.replayed)

    @activity.defn(name="find_past")
    async def find_past(self, inp: PastInput) -> PastResult:
        """A rerun finding the registry expiry moved: our charge under the key, and another
        engine's operation that has the renewal."""
        charge = await self.billing.unrefunded_charge(inp.idempotency_key)
        gate = await operations.gate(self.pool, inp.operation_id)
        return PastResult(
            charge.amount_cents if charge else None,
            charge.currency if charge else None,
            gate.superseded_by,
        )

    @activity.defn(name="billing_refund")
    async def billing_refund(self, inp: RefundInput) -> RefundResult:
        try:
            entry = await self.billing.refund(charge_key=inp.idempotency_key)
        except NothingToRefund:
            return RefundResult(0)
        return RefundResult(entry.amount_cents)

    # -- database (the interceptors' writes; workflow code never touches the database) -------
    @activity.defn(name="record_plan")
    async def record_plan(self, inp: PlanInput) -> None:
        await plans.record_plan(self.pool, inp)

    @activity.defn(name="sync_operation")
    async def sync_operation(self, inp: SyncInput) -> None:
        result = inp.result
        await operations.record_run(
            self.pool,
            operations.RunEnd(
                inp.operation_id,
                OperationStatus(inp.status),
                inp.workflow_id,
                inp.run_id,
                new_expiry=result.new_expiry if result else None,
                registry_transaction_id=result.registry_transaction_id if result else None,
                charged_cents=result.charged_cents if result else None,
                refunded_cents=result.refunded_cents if result else None,
                currency=result.currency if result else None,
                error_code=inp.error_code,
                error_message=inp.error_message,
                superseded_by=result.superseded_by if result else None,
            ),
        )

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.registry_status,
            self.registry_price,
            self.registry_renew,
            self.registry_find_renewal,
            self.billing_charge,
            self.find_past,
            self.billing_refund,
            self.record_plan,
            self.sync_operation,
        ]


def _resolved(mine: FoundRenewal) -> RegistryRenewResult:
    assert mine.new_expiry is not None
    return RegistryRenewResult(mine.new_expiry, mine.server_tx_id, resolved_by_status=True)
