"""`dualrun relaunch` beyond the outage: legacy requeues, lost histories, stuck runs, bad input."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import psycopg
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus

from ops.registry_sim.server import SimServer
from renewals import operations
from renewals.model import Engine, RenewalRequest, add_years
from temporal_flow import relaunch as temporal_relaunch
from tests.harness import Harness, cli_runner, harness
from tests.integration.relaunch_support import (
    EXPIRY,
    fail_in_outage,
    hr,
    legacy_failed_in_outage,
    relaunch,
    renewals_and_charges,
    robots,
    until_status,
)

pytestmark = pytest.mark.integration
__all__ = ["hr"]  # the fixture


# -- 4. legacy operations in the selection ------------------------------------------------------
async def test_legacy_operations_in_the_selection_are_requeued_and_finish(hr: Harness) -> None:
    """A mixed selection: Temporal renewals reset, legacy ones requeued; all finish, once each."""
    h = hr
    legacy = await legacy_failed_in_outage(h, "fr", ["old1.fr", "old2.fr", "old3.fr"])
    async with h.workers():
        requests = await fail_in_outage(h, "fr", ["new1.fr", "new2.fr"])
        await until_status(h, "failed", 5)
        code, out, err = await relaunch(h, "--tld", "fr", "--json")
        assert code == 0, err[-2000:]
        await asyncio.wait_for(robots(h).run(), 60)
        await until_status(h, "done", 5)
    summary = json.loads(out)
    assert summary["by_action"] == {"requeue": 3, "reset": 2} and summary["relaunched"] == 5
    for op in legacy:
        events = [
            e["event"]
            for e in await h.query(
                "SELECT event FROM operation_events WHERE operation_id = %s ORDER BY event_id", op
            )
        ]
        assert events.count("requeued") == 1 and events.count("relaunched") == 1
        assert events[-1] == "record.done"
    names = ["old1.fr", "old2.fr", "old3.fr", *(r.domain for r in requests)]
    renewed, charged = await renewals_and_charges(h, "fr")
    assert renewed == charged == Counter(names)


# -- 5. no history: a fresh run under the same key; a stuck running workflow: reset ------------
async def test_history_gone_or_never_started_starts_afresh_under_the_same_key(
    hr: Harness,
) -> None:
    """Deleted history (failed) and a never-started workflow (stuck): fresh runs, once each."""
    h = hr
    async with h.workers():
        (gone,) = await fail_in_outage(h, "com", ["gone.com"])
        await h.client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=h.client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=gone.idempotency_key),
            )
        )

        async def deleted() -> bool:
            return await temporal_relaunch.current_run(h.client, gone.idempotency_key) is None

        await h.wait_for(deleted, within=120, every=0.2)
        h.seed("com", "lost.com", expiry=EXPIRY)
        lost = h.request("lost.com", EXPIRY)  # recorded, its workflow never started
        async with h.pool.connection() as conn:
            await operations.insert(conn, lost, Engine.TEMPORAL, workflow_id=lost.idempotency_key)
            await conn.execute(
                "UPDATE operations SET created_at = now() - interval '2 hours'"
                " WHERE operation_id = %s",
                (lost.operation_id,),
            )
        code, out, err = await relaunch(h, "--tld", "com", "--status", "failed", "--json")
        assert code == 0, err[-2000:]
        assert json.loads(out)["by_action"] == {"fresh": 1}
        code, out, err = await relaunch(
            h, "--tld", "com", "--status", "stuck", "--stuck-after", "60", "--json"
        )
        assert code == 0, err[-2000:]
        assert json.loads(out)["by_action"] == {"fresh": 1}
        await until_status(h, "done", 2)
    for r in (gone, lost):
        row = await h.row(r.operation_id)
        assert row["workflow_id"] == r.idempotency_key and row["new_expiry"] == add_years(EXPIRY, 1)
    renewed, charged = await renewals_and_charges(h, "com")
    assert renewed == charged == Counter({"gone.com": 1, "lost.com": 1})


async def test_stuck_running_workflow_is_reset_and_finishes_once(
    temporal_env: Any, db_dsn: str, sim: SimServer
) -> None:
    """A workflow retrying forever in an outage (stuck) is reset: the old run ends, one renewal."""
    async with harness(
        temporal_env.client, db_dsn, sim.url, DUALRUN_REGISTRY_MAX_ATTEMPTS="0"
    ) as h:
        h.seed("eu", "stuck.eu", expiry=EXPIRY)
        h.admin.configure("eu", error_rate=1.0)
        request = h.request("stuck.eu", EXPIRY)
        async with h.workers():
            started = await h.submit(request)
            await until_status(h, "doing", 1)
            await h.query(
                "UPDATE operations SET created_at = now() - interval '2 hours' RETURNING 1"
            )
            code, out, err = await relaunch(h, "--tld", "eu", "--status", "stuck", "--json")
            assert code == 0, err[-2000:]
            h.admin.configure("eu", error_rate=0.0)
            result = await h.result(request.idempotency_key)
            old = await h.client.get_workflow_handle(
                request.idempotency_key, run_id=started.run_id
            ).describe()
        assert json.loads(out)["by_action"] == {"reset": 1}
        assert old.status == WorkflowExecutionStatus.TERMINATED and result.status == "done"
        assert (await h.row(request.operation_id))["status"] == "done"
        assert len(h.admin.ledger("eu")) == 1


# -- 6. bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--status", "failed"], "tld"),
        (["--tld", "xyz"], "tld"),
        (["--tld", "fr", "--status", "broken"], "status"),
        (["--tld", "fr", "--since", "2026-11-02", "--until", "2026-11-01"], "since"),
        (["--tld", "fr", "--since", "2026-11-01T00:00", "--until", "2026-11-01"], "since"),
        (["--tld", "fr", "--since", "yesterday"], "since"),
        (["--tld", "fr", "--rate", "0"], "rate"),
        (["--tld", "fr", "--rate", "-5"], "rate"),
        (["--tld", "fr", "--rate", "fast"], "rate"),
        (["--tld", "fr", "--status", "stuck", "--stuck-after", "0"], "stuck_after"),
        (["--resume", "x1"], "resume"),
        (["--resume", "42"], "resume"),
        (["--resume", "1", "--tld", "fr"], "resume"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(
    db_dsn: str, monkeypatch: Any, capsys: Any, args: list[str], field: str
) -> None:
    """Unknown TLD or status, since >= until, rate <= 0...: exit 2 naming the field, no change."""
    request = RenewalRequest("bad.fr", 1, EXPIRY, "cust-1", "op-bad")
    with psycopg.connect(db_dsn) as conn:
        conn.execute(
            "INSERT INTO operations (operation_id, idempotency_key, domain, tld, years,"
            " current_expiry, customer_id, engine, status) VALUES"
            " (%s, %s, %s, 'fr', 1, %s, 'cust-1', 'temporal', 'failed')",
            (request.operation_id, request.idempotency_key, request.domain, EXPIRY),
        )
    with psycopg.connect(db_dsn) as conn:
        before = conn.execute("SELECT * FROM operations").fetchall()
    env = {"DUALRUN_DATABASE_URL": db_dsn, "DUALRUN_TEMPORAL_ADDRESS": "127.0.0.1:1"}
    code, out, err = cli_runner(env, monkeypatch, capsys)("relaunch", *args)
    assert code == 2, (out, err)
    assert f"{field}:" in err and out == ""
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT * FROM operations").fetchall() == before
        jobs = conn.execute("SELECT count(*) FROM relaunch_jobs").fetchone()
        items = conn.execute("SELECT count(*) FROM relaunch_items").fetchone()
    assert jobs == (0,) and items == (0,)
