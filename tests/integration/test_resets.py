"""Temporal resets of RenewDomain through the real `temporal` CLI, on done, failed and running
renewals: each ends done, renewed once and charged once, and the reconciler finds nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus

from ops.registry_sim.server import SimServer
from tests.harness import Harness, harness, save_history
from tests.integration.reset_support import (
    EXPIRY,
    STATES,
    TEMPORAL,
    TLD,
    assert_done_once,
    bring_to,
    current,
    net_charges,
    requests_for,
    reset,
    reset_and_check,
    until_closed,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def hs(
    request: pytest.FixtureRequest, temporal_env: Any, db_dsn: str, sim: SimServer
) -> AsyncIterator[Harness]:
    """The harness with the settings of the parametrized starting state."""
    env = STATES[request.node.callspec.params["state"]][0]
    async with harness(temporal_env.client, db_dsn, sim.url, **env) as built:
        yield built


@pytest.fixture
async def hs_alone(
    request: pytest.FixtureRequest, db_dsn: str, sim: SimServer
) -> AsyncIterator[Harness]:
    """The harness on a dev server of its own: an operator's query by TLD and status alone
    (no task queue) then matches this test's renewals only."""
    from temporalio.testing import WorkflowEnvironment

    from temporal_flow.search_attributes import DEV_SERVER_ARGS

    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL),
        ui=False,
        dev_server_log_level="warn",
        dev_server_extra_args=list(DEV_SERVER_ARGS),
    )
    env = STATES[request.node.callspec.params["state"]][0]
    try:
        async with harness(server.client, db_dsn, sim.url, **env) as built:
            yield built
    finally:
        await server.shutdown()


SINGLE = [(s, m) for s in ("done", "failed", "running") for m in ("first", "last", "event")]
# Reset runs kept for the replay test (DUALRUN_SAVE_HISTORIES=1), by starting state and reset.
SAVED = {
    ("done", "first"): "reset_first_of_done",
    ("failed", "last"): "reset_last_of_failed",
    ("running", "event"): "reset_event_of_running",
}


@pytest.mark.parametrize(("state", "mode"), SINGLE)
async def test_single_reset_ends_done_renewed_and_charged_once(
    hs: Harness, state: str, mode: str
) -> None:
    """`temporal workflow reset` of one renewal (first/last task, before the renew): done once."""
    await reset_and_check(hs, state, mode, [f"single-{state}-{mode}.{TLD}"])
    if (state, mode) in SAVED:
        await save_history(hs, f"renew:single-{state}-{mode}.{TLD}:{EXPIRY}", SAVED[state, mode])


@pytest.mark.parametrize("state", ["done", "failed", "running"])
async def test_batch_reset_by_query_ends_done_renewed_and_charged_once(
    hs: Harness, state: str
) -> None:
    """A batch reset by visibility query of the queue's renewals in a state: each done once."""
    await reset_and_check(hs, state, "batch", [f"batch{i}-{state}.{TLD}" for i in range(3)])


@pytest.mark.parametrize("state", ["done", "failed"])
async def test_operator_batch_reset_by_tld_and_status_ends_done_renewed_and_charged_once(
    hs_alone: Harness, state: str
) -> None:
    """The runbook's batch query `DualrunTld='fr' AND ExecutionStatus='Completed'|'Failed'`
    through the real CLI: each renewal done once, nothing renewed or charged twice."""
    names = [f"operator{i}-{state}.{TLD}" for i in range(3)]
    await reset_and_check(hs_alone, state, "operator", names)


@pytest.mark.parametrize("state", ["failed"])
async def test_last_task_reset_of_a_failed_renewal_keeps_trying_while_the_registry_is_down(
    hs: Harness, state: str
) -> None:
    """LastWorkflowTask on a renewal that failed on a registry still down: the reset run does
    not fail again on its bound (2 attempts) but keeps calling, renewing and charging nothing
    twice; once the registry is back it renews once."""
    h, since = hs, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    requests = requests_for(h, [f"refail.{TLD}"])
    r = requests[0]
    async with h.workers():
        await bring_to(h, state, requests)
        calls = h.admin.traffic(TLD)["admitted"]
        before = await reset(h, "last", state, requests)  # the registry is still down

        async def past_the_bound() -> bool:
            return bool(h.admin.traffic(TLD)["admitted"] >= calls + 3)

        await h.wait_for(past_the_bound, within=30, every=0.2)
        assert (await current(h, r.idempotency_key))[1] == WorkflowExecutionStatus.RUNNING
        assert h.admin.ledger(TLD) == [] and await net_charges(h, r.idempotency_key) == 1
        h.admin.configure(TLD, error_rate=0.0)
        await until_closed(h, before)
        await assert_done_once(h, state, requests, before, since)


@pytest.mark.parametrize(
    ("state", "mode"),
    [("committed-failed", "first"), ("committed-running", "first"), ("committed-running", "event")],
)
async def test_reset_after_a_lost_committed_renew_resolves_from_the_registry_record(
    hs: Harness, state: str, mode: str
) -> None:
    """The registry renewed but its answer was lost (then failed / retrying): the reset run
    finds our renewal by its client transaction id, renews and charges nothing more."""
    await reset_and_check(hs, state, mode, [f"lost-{state}-{mode}.{TLD}"])


@pytest.mark.parametrize("state", ["in-flight"])
async def test_reset_while_the_renew_is_in_flight_renews_once(hs: Harness, state: str) -> None:
    """Reset while the old run's renew is still at a lenient registry (not committed yet): the
    reset run never sends a second renew; one renewal, one charge."""
    await reset_and_check(hs, state, "first", [f"in-flight.{TLD}"])
    await save_history(hs, f"renew:in-flight.{TLD}:{EXPIRY}", "reset_renew_in_flight")
