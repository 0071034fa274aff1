"""The registry activities alone (no workflow) against the registry simulator."""

from __future__ import annotations

import datetime as dt

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from renewals.billing import BillingLedger
from renewals.outcomes import RATE_LIMITED
from temporal_flow.activities import RenewalActivities
from temporal_flow.types import RegistryRenewInput
from tests.harness import TODAY, Harness

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=25)


async def test_rate_limited_status_read_after_an_ambiguous_renew_is_backpressure(
    h: Harness,
) -> None:
    """A 429 on the status read that resolves a timed-out renew is RateLimited with the
    provider's Retry-After (the workflow reschedules it), not an untyped failure."""
    h.seed("eu", "busy.eu", expiry=EXPIRY)
    # The renew takes the only token, commits, then holds past our timeout; the status read
    # that follows is refused with 429 until the bucket refills (20 s).
    h.admin.configure("eu", commit_timeout_rate=1.0, hold_s=8.0, rate_limit=0.05, burst=1)
    activities = RenewalActivities(h.worker_pool, h.registry, BillingLedger(h.worker_pool))
    inp = RegistryRenewInput(
        "op-busy", "busy.eu", EXPIRY.isoformat(), 1, client_tx_id=f"renew:busy.eu:{EXPIRY}"
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.registry_renew, inp)
    assert refused.value.type == RATE_LIMITED
    assert refused.value.next_retry_delay is not None
    assert refused.value.next_retry_delay >= dt.timedelta(seconds=5)
    assert len(h.admin.ledger("eu", domain="busy.eu")) == 1  # the renew itself committed
