"""A paused legacy robot process, an older one that writes without checking its lease or the
row's status, resumes after another robot finished its renewal: the database refuses its write
over the done row, the refusal is logged and counted, and the robot goes on working."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal

import httpx
import pytest

from legacy_adapter import LegacyEngine
from tests.faults.support import (
    EXPIRY,
    Processes,
    burst_domains,
    free_port,
    reconcile,
    until,
)
from tests.harness import Harness, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.faults]

_REFUSED = re.compile(
    r'^dualrun_operation_moves_refused_total\{[^}]*engine="legacy"[^}]*from_status="done"[^}]*\}'
    r" ([0-9.e+]+)$",
    re.M,
)


def _pid_of(lease_owner: str | None) -> int | None:
    """`host:pid/robot-n` (RobotConfig's owner) → pid."""
    return int(lease_owner.split("/")[0].rsplit(":", 1)[1]) if lease_owner else None


def refused_in(metrics_url: str) -> float:
    """The robot process's own count of writes the database refused on done rows."""
    try:
        text = httpx.get(metrics_url, timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(v) for v in _REFUSED.findall(text))


async def test_a_paused_robot_writing_over_a_done_row_is_refused_and_keeps_working(
    h: Harness, procs: Processes, since: dt.datetime
) -> None:
    """SIGSTOP a robot mid-renewal; another takes over and finishes it; SIGCONT: its write
    over the done row is refused (row unchanged, logged, counted), and it renews the next."""
    first, later = burst_domains("de", 2, "stale")
    h.seed("de", first, later, expiry=EXPIRY)
    h.admin.configure("de", latency_ms=1500)  # the stale robot's status call is slow
    port = free_port()
    argv = ["legacy-engine", "--robots", "1", "--poll-interval", "0.1", "--lease", "2",
            "--retry-delay", "0.5", "--stale-writes", "--metrics-port", str(port)]  # fmt: skip
    stale = procs.dualrun("robots-stale", argv, worker_env(h.settings))
    metrics = f"http://127.0.0.1:{port}/metrics"
    legacy = LegacyEngine(h.pool)
    op = (await legacy.create(h.request(first, EXPIRY))).operation_id

    async def held_by_stale() -> bool:
        row = await h.row(op)
        return row["step"] == "status" and _pid_of(row["lease_owner"]) == stale.pid

    await until(held_by_stale, "the stale robot in its status call", explain=procs.tails)
    os.killpg(stale.pid, signal.SIGSTOP)
    h.admin.configure("de", latency_ms=0)
    other = procs.robots(h, "robots-other", robots="1", lease="2")

    async def done() -> bool:
        return bool((await h.row(op))["status"] == "done")

    await until(done, "the other robot's takeover done", explain=procs.tails)
    finished = await h.row(op)
    assert await procs.kill(other) == -signal.SIGKILL  # the stale robot alone from now on
    os.killpg(stale.pid, signal.SIGCONT)

    async def refused() -> bool:
        return refused_in(metrics) >= 1

    await until(refused, "the stale write refused and counted", explain=procs.tails)
    row = await h.row(op)
    held = ("status", "step", "new_expiry", "registry_transaction_id", "charged_cents")
    assert {k: row[k] for k in held} == {k: finished[k] for k in held}
    events = await h.query(
        "SELECT event, detail FROM operation_events WHERE operation_id = %s"
        " AND event LIKE '%%.refused'",
        op,
    )
    assert events and all(e["detail"]["from"] == "done" for e in events)
    assert '"event": "operation.move_refused"' in stale.tail(20_000)  # logged, as JSON

    nxt = (await legacy.create(h.request(later, EXPIRY))).operation_id

    async def next_done() -> bool:
        return bool((await h.row(nxt))["status"] == "done")

    await until(next_done, "the stale robot's next renewal", explain=procs.tails)
    (by,) = await h.query(
        "SELECT detail->>'robot' AS robot FROM operation_events"
        " WHERE operation_id = %s AND event = 'record.done'",
        nxt,
    )
    assert _pid_of(by["robot"]) == stale.pid
    assert stale.alive(), stale.tail()
    assert len(h.admin.ledger("de", domain=first)) == 1
    assert await h.net_charges(h.request(first, EXPIRY).idempotency_key) == 1
    summary = await reconcile(h, since)
    assert summary.findings == {}, summary.details
