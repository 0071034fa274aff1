"""A legacy robot process SIGKILLed at the registry step, while Temporal renews alongside."""

from __future__ import annotations

import datetime as dt
import signal

import pytest

from legacy_adapter import LegacyEngine
from renewals.model import add_years
from tests.faults.support import (
    EXPIRY,
    Processes,
    assert_nothing_lost_or_duplicated,
    burst_domains,
    submit_burst,
    until,
)
from tests.harness import Harness

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LATENCY_MS = 2000  # each registry call of the victim; the lease (5 s) outlasts one call


def _pid_of(lease_owner: str) -> int:
    """`host:pid/robot-n` (RobotConfig's owner) → pid."""
    return int(lease_owner.split("/")[0].rsplit(":", 1)[1])


async def test_robot_killed_at_registry_step_another_takes_over_renewed_once(
    h: Harness, procs: Processes, since: dt.datetime
) -> None:
    """Robot process SIGKILLed mid-renew; the other takes over after the lease: renewed once."""
    h.admin.configure("fr", latency_ms=LATENCY_MS)  # strict (the default)
    (victim,) = burst_domains("fr", 1, "victim")
    h.seed("fr", victim, expiry=EXPIRY)
    robots = [procs.robots(h, f"robots-{n}", robots="1", lease="5") for n in range(2)]
    worker = procs.worker(h)
    request = h.request(victim, EXPIRY)
    op = (await LegacyEngine(h.pool).create(request)).operation_id
    await submit_burst(h, "com", 10)  # Temporal renewals alongside

    holder: list[str] = []

    async def renew_at_registry() -> bool:  # status, price, then the renew itself admitted
        row = await h.row(op)
        if row["step"] == "renew" and int(h.admin.traffic("fr")["admitted"]) >= 3:
            holder.append(row["lease_owner"])
        return bool(holder)

    await until(renew_at_registry, "the victim's renew at the registry", explain=procs.tails)
    (killed,) = [r for r in robots if r.pid == _pid_of(holder[0])]
    assert await procs.kill(killed) == -signal.SIGKILL
    (survivor,) = [r for r in robots if r is not killed]

    summary = await assert_nothing_lost_or_duplicated(h, since)

    assert summary.findings == {}, summary.details  # no double renewal, on either side
    row = await h.row(op)
    assert row["status"] == "done", row
    assert row["new_expiry"] == add_years(EXPIRY, 1)
    assert row["attempts"] == 1 and row["lease_owner"] is None  # a takeover, not a retry
    assert len(h.admin.ledger("fr", domain=victim)) == 1
    charges = await h.query(
        "SELECT kind FROM billing_ledger WHERE idempotency_key = %s", request.idempotency_key
    )
    assert [c["kind"] for c in charges] == ["charge"]
    finished_by = await h.query(
        "SELECT detail->>'robot' AS robot FROM operation_events"
        " WHERE operation_id = %s AND event = 'record.done'",
        op,
    )
    assert [_pid_of(r["robot"]) for r in finished_by] == [survivor.pid]
    assert survivor.alive() and worker.alive()
