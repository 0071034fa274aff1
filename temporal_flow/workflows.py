"""`RenewDomain`: the five steps of DESIGN §3 as activities, live or as a shadow plan.

Workflow code stays deterministic and never touches the database: the interceptors keep the
operation row in step, stop the workflow before a side effect once a cancel is requested, and
send registry calls to the provider's own rate-limited task queue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from renewals.model import add_years
    from renewals.outcomes import (
        CANCEL_REQUESTED,
        EXPIRY_MISMATCH,
        RATE_LIMITED,
        REGISTRY_REFUSALS,
        RENEW_IN_FLIGHT,
        RENEW_PROHIBITED,
        RENEWED_ELSEWHERE,
        SUPERSEDED,
    )
    from temporal_flow.activities import RenewalActivities
    from temporal_flow.errors import RENEW_REFUSALS
    from temporal_flow.policies import (
        BILLING_RETRY,
        REGISTRY_RETRY,
        error_detail,
        error_type,
        registry_retry,
    )
    from temporal_flow.reset_retry import ResetRetry
    from temporal_flow.types import (
        ChargeInput,
        DomainInput,
        FindRenewalInput,
        PastInput,
        PlanInput,
        PriceInput,
        PriceResult,
        RefundInput,
        RegistryRenewInput,
        RegistryRenewResult,
        RenewInput,
        RenewResult,
        RunMode,
    )

T = TypeVar("T")

# Under this patch a run that finds the registry expiry moved (a reset run, a relaunched fresh
# run, a renew refused because the period was renewed meanwhile) decides from the evidence that
# carries the key instead of failing; a side effect stopped because another engine has the
# renewal ends superseded; a renew the registry refuses after the charge refunds it. Runs
# started before it replay the older path (tests/histories/v2_*).
RERUN_EVIDENCE = "dualrun-rerun-evidence"
# Under this patch a shadow plan the registry refuses (the domain unknown, a policy refusal)
# records a `would_refuse` plan with the refusal, where it ended FAILED before, which the
# comparator could only call not comparable (tests/histories/shadow_refused_not_found_*).
SHADOW_REFUSALS = "dualrun-shadow-refusals"


@workflow.defn(name="RenewDomain")
class RenewDomain:
    def __init__(self) -> None:
        self.stage = "starting"
        self.years: int | None = None
        self.cancel_requested = False
        self.charge_started = False
        self.registry_started = False
        self.timeout = timedelta(seconds=30)
        self.registry_retry = REGISTRY_RETRY
        self.reset_retry = ResetRetry()  # a reset run does not give up on a transient failure

    # -- user actions ------------------------------------------------------------------------
    @workflow.query
    def progress(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "years": self.years,
            "cancel_requested": self.cancel_requested,
            "registry_started": self.registry_started,
        }

    @workflow.update
    def request_cancel(self, reason: str) -> str:
        """Cancel before the registry step (the charge is refunded); refused after it."""
        self.cancel_requested = True
        workflow.logger.info("renewal.cancel.accepted", extra={"reason": reason})
        return "accepted"

    @request_cancel.validator
    def _validate_cancel(self, reason: str) -> None:
        if self.registry_started:
            raise ApplicationError("too late: the registry step has begun", type="CancelRefused")

    @workflow.signal
    def cancel(self, reason: str) -> None:
        """The fire-and-forget form of request_cancel, for the tasks service."""
        if self.registry_started:
            workflow.logger.warning("renewal.cancel.refused", extra={"reason": reason})
        else:
            self.cancel_requested = True

    @workflow.update
    def correct_years(self, years: int) -> int:
        """A data correction of the period, accepted only before the charge."""
        self.years = years
        return years

    @correct_years.validator
    def _validate_years(self, years: int) -> None:
        if self.charge_started:
            raise ApplicationError("too late: the customer was already charged", type="TooLate")
        if isinstance(years, bool) or not isinstance(years, int) or not 1 <= years <= 10:
            raise ApplicationError("years: must be an integer between 1 and 10", type="Invalid")

    # -- the renewal -------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: RenewInput) -> RenewResult:
        self.years = inp.years if self.years is None else self.years
        self.timeout = timedelta(seconds=inp.activity_timeout_s)
        self.registry_retry = registry_retry(inp.registry_max_attempts)
        self.stage = "status"
        try:
            status = await self._registry_call(
                lambda: workflow.execute_activity_method(
                    RenewalActivities.registry_status,
                    DomainInput(inp.operation_id, inp.domain),
                    start_to_close_timeout=self.timeout,
                    retry_policy=self.registry_retry,
                )
            )
        except ActivityError as exc:
            return await self._plan_refused(inp, exc, None)
        self.stage = "price"
        years = self.years
        try:
            price = await self._registry_call(
                lambda: workflow.execute_activity_method(
                    RenewalActivities.registry_price,
                    PriceInput(inp.operation_id, inp.domain, years),
                    start_to_close_timeout=self.timeout,
                    retry_policy=self.registry_retry,
                )
            )
        except ActivityError as exc:
            return await self._plan_refused(inp, exc, status.expiry)
        refusal = None
        if status.renew_prohibited:
            refusal = RENEW_PROHIBITED
        elif status.expiry != inp.current_expiry and not (
            inp.mode == RunMode.SHADOW and status.expiry == self._expected(inp)
        ):  # a plan made after legacy (the authoritative engine) renewed plans the same renewal
            refusal = EXPIRY_MISMATCH
        if inp.mode == RunMode.SHADOW:
            return await self._plan(inp, status.expiry, price, refusal)
        if refusal == EXPIRY_MISMATCH and workflow.patched(RERUN_EVIDENCE):
            return await self._rerun(inp)
        if refusal is not None:
            raise ApplicationError(
                f"{inp.domain}: registry expiry {status.expiry}, renewal for {inp.current_expiry}",
                type=refusal,
                non_retryable=True,
            )
        return await self._renew(inp, price.price_cents, price.currency)

    def _expected(self, inp: RenewInput) -> str:
        years = self.years or inp.years
        return add_years(dt.date.fromisoformat(inp.current_expiry), years).isoformat()

    async def _plan(
        self, inp: RenewInput, expiry: str | None, price: PriceResult | None, refusal: str | None
    ) -> RenewResult:
        self.stage = "plan"
        years = self.years or inp.years
        expected = self._expected(inp)
        await workflow.execute_activity_method(
            RenewalActivities.record_plan,
            PlanInput(
                operation_id=inp.operation_id,
                workflow_id=workflow.info().workflow_id,
                idempotency_key=inp.idempotency_key,
                domain=inp.domain,
                years=years,
                registry_expiry=expiry,
                premium=price.premium if price else None,
                would_charge_cents=None if refusal or price is None else price.price_cents,
                currency=price.currency if price else None,
                expected_new_expiry=None if refusal else expected,
                verdict="would_refuse" if refusal else "would_renew",
                refusal=refusal,
            ),
            start_to_close_timeout=self.timeout,
            retry_policy=BILLING_RETRY,
        )
        return RenewResult(
            inp.operation_id,
            "planned",
            years,
            new_expiry=None if refusal else expected,
            currency=price.currency if price else None,
        )

    async def _plan_refused(
        self, inp: RenewInput, exc: ActivityError, expiry: str | None
    ) -> RenewResult:
        """A shadow plan's registry read refused for a business reason (the domain unknown, a
        policy): the plan is that refusal. Anything else, and a live run, fails as before."""
        refusal = error_type(exc)
        if not (
            inp.mode == RunMode.SHADOW
            and refusal in REGISTRY_REFUSALS
            and workflow.patched(SHADOW_REFUSALS)
        ):
            raise exc
        workflow.logger.info("renewal.plan.refused", extra={"refusal": refusal})
        return await self._plan(inp, expiry, None, refusal)

    async def _renew(self, inp: RenewInput, amount_cents: int, currency: str) -> RenewResult:
        years = self.years or inp.years
        try:
            self.stage = "charge"
            self.charge_started = True
            charge = await workflow.execute_activity_method(
                RenewalActivities.billing_charge,
                ChargeInput(
                    inp.operation_id, inp.idempotency_key, inp.customer_id, amount_cents, currency
                ),
                start_to_close_timeout=self.timeout,
                retry_policy=BILLING_RETRY,
            )
            self.stage = "renew"
            renewed = await self._renew_at_registry(inp, years)
        except (asyncio.CancelledError, ActivityError, ApplicationError) as exc:
            kind = error_type(exc)
            if isinstance(exc, asyncio.CancelledError) or kind == CANCEL_REQUESTED:
                return await self._compensate(inp, years)  # only raised before a registry call
            if kind == SUPERSEDED and workflow.patched(RERUN_EVIDENCE):
                return await self._superseded(inp, years, error_detail(exc))
            if kind in RENEW_REFUSALS and workflow.patched(RERUN_EVIDENCE):
                if kind == EXPIRY_MISMATCH:  # the period was renewed meanwhile: by whom?
                    return await self._rerun(inp)
                await self._refund(inp)  # the registry refused the renew: the charge goes back
            raise
        self.stage = "done"
        return RenewResult(
            inp.operation_id,
            "done",
            years,
            new_expiry=renewed.new_expiry,
            registry_transaction_id=renewed.server_tx_id,
            charged_cents=charge.amount_cents,
            currency=currency,
            resolved_by_status=renewed.resolved_by_status,
        )

    async def _registry_call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a registry activity; a bound spent on 429s is backpressure, not failure: again."""
        while True:
            try:
                return await call()
            except ActivityError as exc:
                if error_type(exc) == RATE_LIMITED:
                    workflow.logger.info("registry.rate_limited.rescheduled")
                elif policy := self.reset_retry.again(exc, "registry"):
                    self.registry_retry = policy
                else:
                    raise

    async def _renew_at_registry(self, inp: RenewInput, years: int) -> RegistryRenewResult:
        """The registry renew. A reset run (or a renew scheduled again) may follow a renew that
        reached the registry: the activity then reads the registry before renewing."""
        info = workflow.info()
        verify_first = info.run_id != info.original_execution_run_id
        while True:
            handle = workflow.start_activity_method(
                RenewalActivities.registry_renew,
                RegistryRenewInput(
                    inp.operation_id,
                    inp.domain,
                    inp.current_expiry,
                    years,
                    client_tx_id=inp.idempotency_key,
                    verify_first=verify_first,
                ),
                start_to_close_timeout=self.timeout,
                retry_policy=self.registry_retry,
            )
            self.registry_started = True
            try:
                try:
                    return await asyncio.shield(handle)
                except asyncio.CancelledError:
                    # Past the registry step a cancel is refused: finish what the registry began.
                    workflow.logger.warning("renewal.cancel.refused", extra={"stage": "renew"})
                    return await handle
            except ActivityError as exc:
                if error_type(exc) not in (RATE_LIMITED, RENEW_IN_FLIGHT):
                    if not (policy := self.reset_retry.again(exc, "registry_renew")):
                        raise
                    self.registry_retry = policy
                workflow.logger.info("registry.renew.rescheduled", extra={"why": error_type(exc)})
                verify_first = True

    async def _refund(self, inp: RenewInput) -> int | None:
        """Refund whatever was charged under the key (nothing charged: nothing refunded)."""
        self.stage = "refund"
        refund = await workflow.execute_activity_method(
            RenewalActivities.billing_refund,
            RefundInput(inp.operation_id, inp.idempotency_key),
            start_to_close_timeout=self.timeout,
            retry_policy=BILLING_RETRY,
        )
        return refund.amount_cents or None

    async def _compensate(self, inp: RenewInput, years: int) -> RenewResult:
        """Cancelled before the registry step: refund whatever was charged under the key."""
        refunded = await self._refund(inp)
        self.stage = "cancelled"
        return RenewResult(inp.operation_id, "cancelled", years, refunded_cents=refunded)

    async def _superseded(self, inp: RenewInput, years: int, by: str | None) -> RenewResult:
        """Another engine's operation has the renewal: no side effect of ours, charge refunded."""
        refunded = await self._refund(inp)
        self.stage = "superseded"
        workflow.logger.warning("renewal.superseded", extra={"by": by})
        return RenewResult(
            inp.operation_id, "superseded", years, refunded_cents=refunded, superseded_by=by
        )

    async def _rerun(self, inp: RenewInput) -> RenewResult:
        """The registry expiry moved past this period: decide from the evidence that carries
        the key (DESIGN §3, reruns). The registry's record of a renewal with our client
        transaction id: ours, done with its outcome, nothing charged or renewed again. Else
        someone else renewed it: refund, then superseded by another engine's operation that has
        the renewal, or RenewedElsewhere."""
        self.stage = "evidence"
        years = self.years or inp.years
        found = await self._registry_call(
            lambda: workflow.execute_activity_method(
                RenewalActivities.registry_find_renewal,
                FindRenewalInput(
                    inp.operation_id, inp.domain, inp.current_expiry, inp.idempotency_key
                ),
                start_to_close_timeout=self.timeout,
                retry_policy=self.registry_retry,
            )
        )
        past = await workflow.execute_activity_method(
            RenewalActivities.find_past,
            PastInput(inp.operation_id, inp.idempotency_key),
            start_to_close_timeout=self.timeout,
            retry_policy=BILLING_RETRY,
        )
        if found.found:
            self.stage = "done"
            return RenewResult(
                inp.operation_id,
                "done",
                years,
                new_expiry=found.new_expiry,
                registry_transaction_id=found.server_tx_id,
                charged_cents=past.charged_cents,
                currency=past.currency,
                resolved_by_status=True,
                from_evidence=True,
            )
        refunded = await self._refund(inp) if past.charged_cents else None
        if past.superseded_by is not None:
            self.stage = "superseded"
            return RenewResult(
                inp.operation_id,
                "superseded",
                years,
                refunded_cents=refunded,
                superseded_by=past.superseded_by,
                from_evidence=True,
            )
        raise ApplicationError(
            f"{inp.domain}: the period from {inp.current_expiry} was renewed, with no registry "
            f"record of {inp.idempotency_key}: not by this renewal"
            + (f" (refunded {refunded} cents)" if refunded else ""),
            type=RENEWED_ELSEWHERE,
            non_retryable=True,
        )
