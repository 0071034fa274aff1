"""The reconciler over real scenarios run through both engines (and direct data where none can)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog

from legacy_adapter import LegacyEngine
from ops.legacy_engine.autorenew import create_batch
from ops.legacy_engine.robots import RobotConfig, Robots
from reconciler.alerts import Webhook
from reconciler.model import Window
from reconciler.report.data import latest_run_id
from reconciler.run import Reconciler
from reconciler.sources import ApiLedger
from renewals.billing import BillingLedger
from renewals.model import Origin, RenewalRequest
from temporal_flow.starter import renew_input, start_renewal
from temporal_flow.types import RunMode
from tests.harness import TODAY, Harness, cli_runner, worker_env

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=15)


class Receiver:
    """A webhook receiver on 127.0.0.1 recording every POSTed JSON body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def reconciler(h: Harness, receiver: Receiver, **kw: Any) -> Reconciler:
    return Reconciler(
        pool=h.pool,
        ledger=ApiLedger(h.registry, h.settings.tlds),
        webhook=Webhook(receiver.url, base_delay_s=0.05),
        temporal=h.client,
        task_queue=h.settings.task_queue,
        **kw,
    )


def window() -> Window:
    now = dt.datetime.now(dt.UTC)
    return Window(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1))


async def drain_legacy(h: Harness, **config: Any) -> None:
    options = {
        "robots": 4,
        "poll_interval_s": 0.05,
        "lease_s": 5.0,
        "retry_delay_s": 0.1,
        "max_attempts": 2,
        "drain": True,
        **config,
    }
    engine = Robots(h.pool, h.registry, BillingLedger(h.pool), RobotConfig(**options))
    await asyncio.wait_for(engine.run(), 600)  # a guard against a hang, not a timing


def requests_for(h: Harness, tld: str, n: int, prefix: str) -> list[RenewalRequest]:
    """Seed n domains (with a provider rate that a scenario never hits) and their requests."""
    domains = [f"{prefix}{i:03d}.{tld}" for i in range(n)]
    h.seed(tld, *domains, expiry=EXPIRY)
    h.admin.configure(tld, rate_limit=5000.0, burst=5000)
    return [h.request(d, EXPIRY) for d in domains]


async def test_autorenew_duplicates_on_lenient_registry(h: Harness, receiver: Receiver) -> None:
    """Month-start twins written around the guards (a bulk load), lenient registry: duplicate,
    double renewal, double charge."""
    h.admin.configure("info", strict=False)
    batch = await create_batch(
        h.pool, requests_for(h, "info", 10, "dup"), duplicate_share=0.3, seed=7, around_guards=True
    )
    await drain_legacy(h)
    summary = await reconciler(h, receiver).run(window())
    dup_keys = set(batch.duplicated_keys)
    assert len(dup_keys) == 3
    assert summary.findings == {"double_charge": 3, "double_renewal": 3, "duplicate_operation": 3}
    for f in summary.details:
        assert f.idempotency_key in dup_keys and len(f.operation_ids) >= 1
    assert summary.new_findings == 9
    assert {(b["kind"], b["idempotency_key"]) for b in receiver.bodies} == {
        (kind, key)
        for key in dup_keys
        for kind in ("duplicate_operation", "double_renewal", "double_charge")
    }
    assert all(
        b["severity"] in ("warning", "critical") and b["operation_ids"] for b in receiver.bodies
    )

    again = await reconciler(h, receiver).run(summary.window)
    assert again.findings == summary.findings
    assert {f.key for f in again.details} == {f.key for f in summary.details}
    assert again.new_findings == 0
    assert len(receiver.bodies) == 9  # nobody alerted twice


async def test_duplicates_on_strict_registry_renew_once(h: Harness, receiver: Receiver) -> None:
    """Twins written around the guards, strict registry: the twin's renew is refused, but
    legacy had charged it already."""
    batch = await create_batch(
        h.pool, requests_for(h, "fr", 6, "strict"), duplicate_share=0.5, seed=3, around_guards=True
    )
    await drain_legacy(h)
    summary = await reconciler(h, receiver).run(window())
    # the refused twin kept its charge: double for the key, and a refund missing for that twin
    assert summary.findings == {"double_charge": 3, "duplicate_operation": 3, "refund_missing": 3}
    assert {f.idempotency_key for f in summary.details} == set(batch.duplicated_keys)
    refused = {f.operation_ids for f in summary.details if f.kind.value == "refund_missing"}
    failed = await h.query("SELECT operation_id FROM operations WHERE status = 'failed'")
    assert refused == {(r["operation_id"],) for r in failed}
    assert len(h.admin.ledger("fr")) == 6  # renewed once each


async def test_terminated_workflow_is_status_drift(h: Harness, receiver: Receiver) -> None:
    """A workflow terminated behind the interceptors' back leaves the row `doing`: drift."""
    h.seed("com", "drift.com", expiry=EXPIRY)
    h.admin.configure("com", latency_ms=3000)
    request = h.request("drift.com", EXPIRY)
    async with h.workers():
        started = await h.submit(request)

        async def doing() -> bool:
            return (await h.row(request.operation_id))["status"] == "doing"

        await h.wait_for(doing)
        await h.client.get_workflow_handle(started.workflow_id).terminate("behind its back")
    summary = await reconciler(h, receiver).run(window())
    drift = [f for f in summary.details if f.kind == "status_drift"]
    assert [f.operation_ids for f in drift] == [(request.operation_id,)]
    assert drift[0].evidence["database"] == "doing"
    assert drift[0].evidence["temporal"] == "TERMINATED"
    assert summary.unchecked == ()  # Temporal was listed: drift was checked
    assert receiver.bodies == []  # drift is reported, not paged


async def test_robots_killed_leave_a_stuck_operation(
    h: Harness, receiver: Receiver, tmp_path: Path
) -> None:
    """The legacy robots are killed mid-renewal: the operation is stuck past its deadline."""
    h.seed("de", "stuck.de", expiry=EXPIRY)
    h.admin.configure("de", latency_ms=5000)
    request = h.request("stuck.de", EXPIRY)
    await LegacyEngine(h.pool).create(request)
    env = {"PATH": os.environ.get("PATH", ""), **worker_env(h.settings)}
    robots = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            "-m",
            "dualrun",
            "legacy-engine",
            "--robots",
            "2",
            "--poll-interval",
            "0.1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "robots.log").open("wb"),
        start_new_session=True,
    )
    try:

        async def working() -> bool:
            return (await h.row(request.operation_id))["step"] is not None

        await h.wait_for(working)
    finally:
        os.killpg(robots.pid, signal.SIGKILL)
        robots.wait(10)
    summary = await reconciler(h, receiver, stuck_after=dt.timedelta(0)).run(window())
    stuck = [f for f in summary.details if f.kind == "stuck_operation"]
    assert [f.operation_ids for f in stuck] == [(request.operation_id,)]
    assert stuck[0].evidence["status"] == "doing"


async def test_premium_changed_between_plan_and_legacy_is_shadow_mismatch(
    h: Harness, receiver: Receiver
) -> None:
    """Shadow plan at one price, legacy charged another: a shadow mismatch with a deepdiff."""
    same, changed = requests_for(h, "info", 2, "shadow")
    async with h.workers():
        for request in (same, changed):
            inp = renew_input(request, RunMode.SHADOW, h.settings)
            await h.result((await start_renewal(h.client, h.settings.task_queue, inp)).workflow_id)
    h.seed("info", changed.domain, expiry=EXPIRY, premium_cents=99_00)
    for request in (same, changed):
        await LegacyEngine(h.pool).create(request)
    await drain_legacy(h)
    summary = await reconciler(h, receiver).run(window())
    assert summary.findings == {"shadow_mismatch": 1}
    (mismatch,) = summary.details
    assert mismatch.idempotency_key == changed.idempotency_key
    assert "charged_cents" in json.dumps(mismatch.evidence["diff"])


async def test_ambiguous_legacy_renewal_is_unrecorded(h: Harness, receiver: Receiver) -> None:
    """Legacy times out after the registry committed, retries, is refused: unrecorded renewal."""
    (request,) = requests_for(h, "eu", 1, "timeout")
    h.admin.configure("eu", commit_timeout_rate=1.0, hold_s=5.0)
    await LegacyEngine(h.pool).create(request)
    await drain_legacy(h, robots=1)
    summary = await reconciler(h, receiver).run(window())
    assert summary.findings == {"unrecorded_renewal": 1}
    assert (await h.row(request.operation_id))["status"] == "failed"


async def _insert(h: Harness, sql: str, *params: Any) -> None:
    async with h.pool.connection() as conn:
        await conn.execute(sql, params)


async def test_direct_data_kinds(h: Harness, receiver: Receiver) -> None:
    """Lost renewal, refund missing and routing violation, which no engine produces on purpose."""
    adapter = LegacyEngine(h.pool)
    lost, cancelled, misrouted = (
        h.request(f"{n}.fr", EXPIRY) for n in ("lost", "norefund", "routed")
    )
    for r in (lost, cancelled, misrouted):
        await adapter.create(r, origin=Origin.AUTORENEW)
    await _insert(
        h,
        "UPDATE operations SET status = 'done', new_expiry = %s WHERE operation_id = %s",
        EXPIRY + dt.timedelta(days=365),
        lost.operation_id,
    )
    await _insert(
        h,
        "UPDATE operations SET status = 'cancelled' WHERE operation_id = %s",
        cancelled.operation_id,
    )
    await BillingLedger(h.pool).charge(
        charge_key="legacy:x",
        idempotency_key=cancelled.idempotency_key,
        operation_id=cancelled.operation_id,
        customer_id="c",
        amount_cents=500,
        currency="EUR",
    )
    await _insert(
        h, "UPDATE operations SET status = 'failed' WHERE operation_id = %s", misrouted.operation_id
    )
    await _insert(
        h,
        """INSERT INTO routing_decisions (idempotency_key, operation_id, domain, tld,
           current_expiry, years, customer_id, mode, engine, flag_source, reason)
           VALUES (%s, 'op-other', 'routed.fr', 'fr', %s, 1, 'cust-1', 'temporal', 'temporal',
                   'unleash', 'fr temporal 100%%')""",
        misrouted.idempotency_key,
        EXPIRY,
    )
    summary = await reconciler(h, receiver).run(window())
    assert summary.findings == {"lost_renewal": 1, "refund_missing": 1, "routing_violation": 1}
    by_kind = {f.kind: f for f in summary.details}
    assert by_kind["lost_renewal"].operation_ids == (lost.operation_id,)
    assert by_kind["refund_missing"].evidence["unrefunded_cents"] == 500
    assert by_kind["routing_violation"].evidence["routed"] == "temporal"
    assert {b["kind"] for b in receiver.bodies} == {"lost_renewal", "refund_missing"}


async def test_one_run_at_a_time(h: Harness, receiver: Receiver) -> None:
    """A second run while one holds the lock says so (or waits with wait=True)."""
    from reconciler.store import RunInProgress, exclusive

    rec = reconciler(h, receiver)
    async with exclusive(h.pool, wait=False):
        with pytest.raises(RunInProgress):
            await rec.run(window())
        waiting = asyncio.create_task(rec.run(window(), wait=True))
        await asyncio.sleep(0.3)
        assert not waiting.done()
    assert (await waiting).operations == 0


@pytest.mark.slow
async def test_clean_run_of_1000_renewals_has_no_finding(h: Harness, receiver: Receiver) -> None:
    """1,000 renewals across both engines, nothing wrong: zero findings."""
    legacy = requests_for(h, "fr", 500, "clean-l")
    temporal = requests_for(h, "de", 500, "clean-t")
    for r in legacy:
        await LegacyEngine(h.pool).create(r)
    async with h.workers():
        sem = asyncio.Semaphore(50)

        async def one(r: RenewalRequest) -> None:
            async with sem:
                started = await h.submit(r)
                await h.result(started.workflow_id, within=300)

        await asyncio.gather(drain_legacy(h, robots=8), *(one(r) for r in temporal))
    summary = await reconciler(h, receiver).run(window())
    assert summary.operations == 1000
    assert summary.findings == {}
    assert receiver.bodies == []


async def test_duplicates_command_is_a_sweep_and_leaves_the_full_run_latest(
    h: Harness,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`dualrun duplicates` finds the duplicates, is recorded as a sweep, and the report still
    reads the latest full reconciliation (a sweep checks duplicates only)."""
    batch = await create_batch(
        h.pool, requests_for(h, "fr", 6, "sweep"), duplicate_share=0.5, seed=3, around_guards=True
    )
    full = await reconciler(h, receiver).run(window())
    env = {**worker_env(h.settings), "DUALRUN_WEBHOOK_URL": receiver.url}
    cli = cli_runner(env, monkeypatch, capsys)
    logging = structlog.get_config()  # the CLI logs to captured streams: restore before teardown
    try:
        code, out, _ = await asyncio.to_thread(cli, "duplicates", "--json")  # its own loop
    finally:
        structlog.configure(**logging)
    assert code == 0
    swept = json.loads(out)
    keys = {f["idempotency_key"] for f in swept["details"] if f["kind"] == "duplicate_operation"}
    assert keys == set(batch.duplicated_keys) and keys
    runs = await h.query("SELECT run_id, kind FROM reconciliation_runs ORDER BY run_id")
    assert [r["kind"] for r in runs] == ["manual", "sweep"]
    assert await latest_run_id(h.pool) == full.run_id
