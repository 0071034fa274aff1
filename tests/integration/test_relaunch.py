"""`dualrun relaunch` against real PostgreSQL, the Temporal dev server and the simulator.

Renewals fail the way the registrar's did (a provider outage under a bounded retry policy), then
`dualrun relaunch` runs as a real process: reset before the last activity, paced, resumable.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
from collections import Counter
from typing import Any

import pytest

from ops.registry_sim.server import SimServer
from renewals.model import add_years
from tests.harness import Harness, harness, save_history
from tests.integration.relaunch_support import (
    EXPIRY,
    count,
    fail_in_outage,
    hr,
    legacy_failed_in_outage,
    relaunch,
    renewals_and_charges,
    runs_per_workflow,
    spawn_relaunch,
    submit_all,
    until_status,
)

pytestmark = pytest.mark.integration
__all__ = ["hr"]  # the fixture


# -- 1. 200 outage failures: relaunched, paced, killed halfway and resumed --------------------
@pytest.mark.faults
@pytest.mark.slow
async def test_200_failed_renewals_relaunched_paced_and_resumed_after_sigkill(
    hr: Harness,
) -> None:
    """SIGKILL the relaunch halfway; the rerun resumes: each renewed and charged exactly once."""
    h, n, rate = hr, 200, 20
    names = [f"outage{i:03d}.fr" for i in range(n)]
    async with h.workers():
        requests = await fail_in_outage(h, "fr", names)
        first = await spawn_relaunch(h, "--tld", "fr", "--rate", str(rate), "--json")

        async def halfway() -> bool:
            done = "SELECT count(*) FROM relaunch_items WHERE status = 'done'"
            return await count(h, done) >= n // 2

        await h.wait_for(halfway, within=60, every=0.05)
        os.killpg(first.pid, signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), 30) == -signal.SIGKILL
        killed_at = dt.datetime.now(dt.UTC)
        before = {
            r["operation_id"]: r
            for r in await h.query("SELECT * FROM relaunch_items WHERE status = 'done'")
        }
        assert n // 2 <= len(before) < n

        code, out, err = await relaunch(h, "--tld", "fr", "--rate", str(rate), "--json")
        assert code == 0, err[-3000:]
        summary = json.loads(out)
        await until_status(h, "done", n, within=180)
        runs = await runs_per_workflow(h, 2 * n)

    assert summary["resumed"] is True and summary["job_id"] == 1
    assert (summary["selected"], summary["relaunched"]) == (n, n)
    assert (summary["skipped"], summary["failed"], summary["pending"]) == (0, 0, 0)
    job = (await h.query("SELECT * FROM relaunch_jobs"))[0]
    assert (job["status"], job["runs"]) == ("finished", 2)
    items = await h.query("SELECT * FROM relaunch_items ORDER BY relaunched_at")
    assert len(items) == n and {i["status"] for i in items} == {"done"}
    assert {i["action"] for i in items} == {"reset"}
    # what the first process finished, the second left alone
    for item in items:
        if item["operation_id"] in before:
            assert item["finished_at"] == before[item["operation_id"]]["finished_at"]
            assert item["run_id"] == before[item["operation_id"]]["run_id"]
        else:
            assert item["relaunched_at"] > killed_at
    # paced: no wall-clock second saw more than rate + 1 relaunches
    per_second = Counter(i["relaunched_at"].replace(microsecond=0) for i in items)
    assert max(per_second.values()) <= rate + 1, per_second
    # relaunched once each: one `relaunched` event, one reset run besides the failed one
    events = await h.query(
        "SELECT operation_id, count(*) AS n FROM operation_events WHERE event = 'relaunched'"
        " GROUP BY operation_id"
    )
    assert len(events) == n and {e["n"] for e in events} == {1}
    assert len(runs) == n and set(runs.values()) == {2}
    rows = await h.query("SELECT * FROM operations")
    assert {r["status"] for r in rows} == {"done"}
    assert {r["new_expiry"] for r in rows} == {add_years(EXPIRY, 1)}
    assert {r["run_id"] for r in rows} == {i["run_id"] for i in items}
    renewed, charged = await renewals_and_charges(h, "fr")
    assert renewed == charged == Counter({r.domain: 1 for r in requests})
    assert await count(h, "SELECT count(*) FROM billing_ledger WHERE kind = 'refund'") == 0


# -- 2. dry run --------------------------------------------------------------------------------
async def test_dry_run_lists_the_actions_and_changes_nothing(hr: Harness) -> None:
    """--dry-run names each action (reset/requeue/skip); rows, runs and ledgers stay as they are."""
    h = hr
    async with h.workers():
        requests = await fail_in_outage(h, "com", ["dry1.com", "dry2.com", "dry3.com"])
        h.seed("com", "moved.com", expiry=EXPIRY + dt.timedelta(days=365))
        refused = h.request("moved.com", EXPIRY)
        await h.submit(refused)  # renewed elsewhere: a business outcome, not retried
        await until_status(h, "failed", 4)
    legacy = await legacy_failed_in_outage(h, "com", ["dry4.com"])
    await until_status(h, "failed", 5)

    async def snapshot() -> dict[str, Any]:
        workflows = {}
        for r in [*requests, refused]:
            handle = h.client.get_workflow_handle(r.idempotency_key)
            desc = await handle.describe()
            workflows[r.idempotency_key] = (desc.run_id, desc.status, desc.history_length)
        return {
            "rows": await h.query("SELECT * FROM operations ORDER BY operation_id"),
            "events": await count(h, "SELECT count(*) FROM operation_events"),
            "billing": await count(h, "SELECT count(*) FROM billing_ledger"),
            "jobs": await count(h, "SELECT count(*) FROM relaunch_jobs"),
            "renewals": len(h.admin.ledger("com")),
            "workflows": workflows,
        }

    before = await snapshot()
    code, out, err = await relaunch(h, "--tld", "com", "--dry-run", "--json")
    assert code == 0, err[-2000:]
    doc = json.loads(out)
    code, text, _ = await relaunch(h, "--tld", "com", "--dry-run")
    assert code == 0
    assert await snapshot() == before
    assert doc["dry_run"] is True and doc["job_id"] is None and doc["selected"] == 5
    assert doc["by_action"] == {"requeue": 1, "reset": 3, "skip": 1}
    by_op = {i["operation_id"]: i for i in doc["items"]}
    for r in requests:
        item = by_op[r.operation_id]
        assert (item["action"], item["activity"], item["status"]) == (
            "reset",
            "registry_status",
            "failed",
        )
        assert item["domain"] == r.domain and item["engine"] == "temporal"
        assert (
            item["reset_event_id"] > 0
            and item["run_id"] == before["workflows"][r.idempotency_key][0]
        )
    assert by_op[legacy[0]]["action"] == "requeue" and by_op[legacy[0]]["engine"] == "legacy"
    assert by_op[refused.operation_id]["action"] == "skip"
    assert "RenewedElsewhere" in by_op[refused.operation_id]["reason"]
    assert "dry run: 5 selected" in text and f"{requests[0].operation_id}  dry1.com" in text


# -- 3. a lenient registry: only our keys protect ---------------------------------------------
async def test_lenient_registry_relaunch_of_renewals_that_happened_renews_nothing(
    temporal_env: Any, db_dsn: str, sim: SimServer
) -> None:
    """Renewals that failed after the registry committed, relaunched: no renewal nor charge more."""
    async with harness(
        temporal_env.client,
        db_dsn,
        sim.url,
        DUALRUN_REGISTRY_MAX_ATTEMPTS="1",
        DUALRUN_ACTIVITY_TIMEOUT="4",  # room for a loaded machine's relaunched renew
        DUALRUN_REGISTRY_TIMEOUT="10",
    ) as h:
        names = [f"lenient{i}.info" for i in range(5)]
        h.seed("info", *names, expiry=EXPIRY)
        # lenient: no curExpDate check. Each renew commits, then the answer is held past the
        # activity's timeout: the workflow fails (one attempt) after the registry renewed.
        h.admin.configure("info", strict=False, commit_timeout_rate=1.0, hold_s=8.0)
        requests = [h.request(d, EXPIRY) for d in names]
        async with h.workers():
            await submit_all(h, requests)
            await until_status(h, "failed", 5, within=60)
            assert Counter(r["domain"] for r in h.admin.ledger("info")) == Counter(names)
            h.admin.configure("info", commit_timeout_rate=0.0)  # a renew now would go through

            code, out, err = await relaunch(h, "--tld", "info", "--json")
            assert code == 0, err[-2000:]
            await until_status(h, "done", 5, within=60)
            results = [await h.result(r.idempotency_key) for r in requests]
            await save_history(h, requests[0].idempotency_key, "live_relaunched_resolved")
        summary = json.loads(out)
        assert (summary["relaunched"], summary["by_action"]) == (5, {"reset": 5})
        items = await h.query("SELECT * FROM relaunch_items")
        assert {(i["action"], i["reset_event_id"] is not None) for i in items} == {("reset", True)}
        for r in requests:  # reset to before the renew: the charge came from history
            plan = await h.query(
                "SELECT detail->>'activity' AS a FROM operation_events"
                " WHERE operation_id = %s AND event = 'relaunched'",
                r.operation_id,
            )
            assert plan[0]["a"] == "registry_renew"
        renewed, charged = await renewals_and_charges(h, "info")
        assert renewed == charged == Counter(names)
        assert all(res.status == "done" and res.resolved_by_status for res in results)
        for name in names:
            assert (await h.registry.status(name)).expiry == add_years(EXPIRY, 1)
