"""One renewal, one operation, and a source of truth that moves forward only (DESIGN §3), held
by the database whoever writes: the router, the upstream batch, a reset run's sync, a stale
writer, a requeue. And the reconciler still finds what is forced around the guards."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from legacy_adapter import LegacyEngine
from legacy_adapter.errors import RequeueRefused
from ops.legacy_engine.autorenew import create_batch
from reconciler.alerts import Webhook
from reconciler.model import Window
from reconciler.run import Reconciler
from reconciler.sources import ApiLedger
from renewals import operations
from renewals.errors import IdempotencyConflict
from renewals.model import HAS_RENEWAL, Engine, Mode, OperationStatus, RenewalRequest
from tests.harness import TODAY, Harness, count
from tests.integration.test_router import flag_file, req, routed

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=30)


async def sql(h: Harness, statement: str, *params: Any) -> None:
    async with h.pool.connection() as conn:
        await conn.execute(statement, params)


async def set_status(h: Harness, operation_id: str, status: str) -> None:
    """A plain write of the status, as any writer could send it."""
    await sql(h, "UPDATE operations SET status = %s WHERE operation_id = %s", status, operation_id)


async def temporal_op(h: Harness, request: RenewalRequest) -> operations.Operation:
    async with h.pool.connection() as conn, conn.transaction():
        return await h.engine.submit(conn, request)


def refused_moves(frm: str, to: str) -> float:
    labels = {"engine": "legacy", "from_status": frm, "to_status": to}
    return REGISTRY.get_sample_value("dualrun_operation_moves_refused_total", labels) or 0.0


# -- forward only ------------------------------------------------------------------------------
async def test_final_statuses_stay_final_whoever_writes(h: Harness) -> None:
    """done, cancelled and superseded refuse any move: the row stays, the refusal is an event
    and a counted, logged notice; the writer's statement does not fail."""
    legacy = LegacyEngine(h.pool)
    done, cancelled = h.request("final.com", EXPIRY), h.request("gone.com", EXPIRY)
    for r in (done, cancelled):
        await legacy.create(r)
    await set_status(h, done.operation_id, "done")
    await legacy.cancel_now(cancelled.operation_id)
    before = refused_moves("done", "failed")
    await sql(
        h, "UPDATE operations SET status = 'failed' WHERE operation_id = %s", done.operation_id
    )
    await sql(
        h, "UPDATE operations SET status = 'todo' WHERE operation_id = %s", cancelled.operation_id
    )
    assert (await h.row(done.operation_id))["status"] == "done"
    assert (await h.row(cancelled.operation_id))["status"] == "cancelled"
    assert refused_moves("done", "failed") == before + 1
    refusals = await h.query(
        "SELECT operation_id, detail FROM operation_events WHERE event = 'status.refused'"
        " ORDER BY event_id"
    )
    assert [(r["operation_id"], r["detail"]["from"], r["detail"]["to"]) for r in refusals] == [
        (done.operation_id, "done", "failed"),
        (cancelled.operation_id, "cancelled", "todo"),
    ]


async def test_a_late_run_end_cannot_undo_a_done_renewal(h: Harness) -> None:
    """A reset run's or late activity's `failed` on a done row is refused; its `done` passes
    when it repeats the outcome, and is refused when it would rewrite it."""
    request = h.request("late.fr", EXPIRY)
    await temporal_op(h, request)
    op = request.operation_id
    await sql(h, "UPDATE operations SET status = 'done', step = 'record',"
                 " new_expiry = '2030-01-01' WHERE operation_id = %s", op)  # fmt: skip
    end = operations.RunEnd(op, OperationStatus.FAILED, request.idempotency_key, "run-2",
                            error_code="RegistryUnavailable")  # fmt: skip
    await operations.record_run(h.pool, end)
    assert (await h.row(op))["status"] == "done"
    again = dataclasses.replace(end, status=OperationStatus.DONE, error_code=None)
    await operations.record_run(h.pool, dataclasses.replace(again, new_expiry="2030-01-01"))
    assert (await h.row(op))["run_id"] == "run-2"  # the same outcome, recorded again
    await operations.record_run(h.pool, dataclasses.replace(again, new_expiry="2031-01-01",
                                                            run_id="run-3"))  # fmt: skip
    row = await h.row(op)
    assert (row["new_expiry"], row["run_id"]) == (dt.date(2030, 1, 1), "run-2")


async def test_failed_goes_back_to_work_only_through_requeue_or_relaunch(h: Harness) -> None:
    """failed → todo is refused to a plain write, done by a requeue; failed → done is allowed."""
    legacy = LegacyEngine(h.pool)
    a, b = h.request("again.eu", EXPIRY), h.request("proved.eu", EXPIRY)
    for r in (a, b):
        await legacy.create(r)
        await set_status(h, r.operation_id, "failed")
    await set_status(h, a.operation_id, "todo")
    assert (await h.row(a.operation_id))["status"] == "failed"
    assert (await legacy.requeue(a.operation_id)).status == OperationStatus.TODO
    await set_status(h, b.operation_id, "done")
    assert (await h.row(b.operation_id))["status"] == "done"


# -- one renewal, one operation ----------------------------------------------------------------
async def test_an_operation_of_the_other_engine_is_superseded_at_birth(h: Harness) -> None:
    """The batch writing a key Temporal has: superseded, pointing to it; so is the batch's own
    second row of a key (a legacy twin): one renewal, one operation, whatever made it."""
    taken = h.request("taken.fr", EXPIRY)
    await temporal_op(h, taken)
    twin_key = h.request("twin.com", EXPIRY)
    batch = await create_batch(
        h.pool,
        [dataclasses.replace(taken, operation_id="op-batch-1"), twin_key],
        duplicate_share=1.0,
        seed=1,
    )
    rows = {r["operation_id"]: r for r in await h.query("SELECT * FROM operations")}
    batch_fr = [o for o in batch.operation_ids if rows[o]["domain"] == "taken.fr"]
    assert {rows[o]["status"] for o in batch_fr} == {"superseded"}
    assert {rows[o]["superseded_by"] for o in batch_fr} == {taken.operation_id}
    twins = [rows[o] for o in batch.operation_ids if rows[o]["domain"] == "twin.com"]
    assert [t["status"] for t in twins] == ["todo", "superseded"]  # the twin never runs
    assert twins[1]["superseded_by"] == twins[0]["operation_id"]
    events = await h.query("SELECT operation_id FROM operation_events WHERE event = 'superseded'")
    assert sorted(e["operation_id"] for e in events) == sorted(
        [*batch_fr, twins[1]["operation_id"]]
    )
    assert (await h.row(taken.operation_id))["status"] == "todo"


async def test_the_router_answers_an_operation_the_batch_made(h: Harness, tmp_path: Path) -> None:
    """A submission of a key the batch created is that renewal (same engine, deduplicated); with
    other parameters it is a conflict; nothing new is written either way."""
    path = flag_file(tmp_path, fr=(Mode.TEMPORAL, 100))
    batch = await create_batch(h.pool, [dataclasses.replace(req("early.fr"), operation_id="op-b")])
    async with routed(h, path) as svc:
        answer = await svc.submit(req("early.fr"))
        with pytest.raises(IdempotencyConflict) as caught:
            await svc.submit(req("early.fr", years=2))
    assert answer.deduplicated and answer.operation_id == batch.operation_ids[0]
    assert (answer.engine, answer.mode) == ("legacy", "legacy")
    assert caught.value.field == "years"
    assert count(h.settings.dsn, "SELECT count(*) FROM operations") == 1
    assert count(h.settings.dsn, "SELECT count(*) FROM routing_decisions") == 0


async def test_batch_racing_submits_leaves_one_renewal_per_key(h: Harness, tmp_path: Path) -> None:
    """The batch and router submissions of the same 200 keys at once, .fr on Temporal: every key
    ends with exactly one operation that has its renewal, the others superseded or answered."""
    path = flag_file(tmp_path, fr=(Mode.TEMPORAL, 100))
    requests = [req(f"race{i:03d}.fr") for i in range(200)]
    twins = [dataclasses.replace(r, operation_id=f"op-batch-{i}") for i, r in enumerate(requests)]
    async with routed(h, path) as svc:
        sem = asyncio.Semaphore(8)

        async def submit(r: RenewalRequest) -> Any:
            async with sem:
                return await svc.submit(r)

        halves = [create_batch(h.pool, twins[i::4]) for i in range(4)]
        results = await asyncio.gather(*halves, *(submit(r) for r in requests))
    answers = results[4:]
    owners = await h.query(
        "SELECT idempotency_key, count(*) FILTER (WHERE status = ANY(%s)) AS having,"
        " count(*) FILTER (WHERE status = 'superseded') AS superseded, count(*) AS n"
        " FROM operations GROUP BY idempotency_key",
        [s.value for s in HAS_RENEWAL],
    )
    assert len(owners) == 200 and all(o["having"] == 1 for o in owners)
    assert all(o["superseded"] == o["n"] - 1 for o in owners)
    by_key = {o["idempotency_key"]: o for o in owners}
    for answer in answers:  # the router made one (2 rows: the batch's superseded), or answered
        assert by_key[answer.idempotency_key]["n"] == (1 if answer.deduplicated else 2)


async def test_an_operation_cannot_go_back_to_work_once_another_has_it(h: Harness) -> None:
    """A failed legacy renewal whose key Temporal took over cannot be requeued."""
    legacy = LegacyEngine(h.pool)
    first = h.request("handover.de", EXPIRY)
    await legacy.create(first)
    await set_status(h, first.operation_id, "failed")
    second = h.request("handover.de", EXPIRY)
    assert (await temporal_op(h, second)).status == OperationStatus.TODO  # the key moved over
    with pytest.raises(RequeueRefused, match=second.operation_id):
        await legacy.requeue(first.operation_id)
    assert (await h.row(first.operation_id))["status"] == "failed"


# -- the reconciler, past the guards -----------------------------------------------------------
# Rows that ended without their renewal but kept a charge, forced in: (status, error_code,
# whether refund_missing must name it). A transient failure may still be relaunched: not yet.
KEPT_CHARGES = {
    "superseded.fr": ("superseded", None, True),
    "elsewhere.fr": ("failed", "RenewedElsewhere", True),
    "refused.fr": ("failed", "policy_refused", True),
    "cancelled.fr": ("cancelled", None, True),
    "waiting.fr": ("failed", "RegistryUnavailable", False),
}


async def charge(conn: Any, request: RenewalRequest, operation_id: str, charge_key: str) -> None:
    await conn.execute(
        "INSERT INTO billing_ledger (charge_key, kind, idempotency_key, operation_id,"
        " customer_id, amount_cents, currency) VALUES (%s, 'charge', %s, %s, 'c', 1099, 'EUR')",
        (charge_key, request.idempotency_key, operation_id),
    )


async def test_forced_data_is_still_found(h: Harness) -> None:
    """Written with the triggers off (a bulk load, a hand fix): both engines done and charged for
    one key, renewed twice, a done row forced to failed, and rows that ended without their
    renewal (superseded, refused, renewed elsewhere, cancelled) but kept a charge are found."""
    both, forced = h.request("both.fr", EXPIRY), h.request("forced.fr", EXPIRY)
    kept = {d: h.request(d, EXPIRY) for d in KEPT_CHARGES}
    h.seed("fr", "both.fr", "forced.fr", expiry=EXPIRY)
    async with h.pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await operations.insert(conn, both, Engine.TEMPORAL)
        await operations.insert(conn, dataclasses.replace(both, operation_id="op-legacy"),
                                Engine.LEGACY)  # fmt: skip
        await operations.insert(conn, forced, Engine.TEMPORAL)
        await conn.execute("UPDATE operations SET status = 'done', step = 'record'"
                           " WHERE domain = 'both.fr'")  # fmt: skip
        await conn.execute("UPDATE operations SET status = 'failed' WHERE domain = 'forced.fr'")
        await charge(conn, both, both.operation_id, both.idempotency_key)
        await charge(conn, both, "op-legacy", "legacy:x")
        for domain, (status, code, _) in KEPT_CHARGES.items():
            r = kept[domain]
            await operations.insert(conn, r, Engine.TEMPORAL)
            await conn.execute("UPDATE operations SET status = %s, error_code = %s,"
                               " step = 'renew' WHERE operation_id = %s",
                               (status, code, r.operation_id))  # fmt: skip
            await charge(conn, r, r.operation_id, r.idempotency_key)
    for client_tx in ("legacy-1", "legacy-2"):
        await h.registry.renew("both.fr", EXPIRY, 1, client_tx_id=client_tx)
        h.admin.seed_domains("fr", [{"domain": "both.fr", "expiry": EXPIRY}])
    await h.registry.renew("forced.fr", EXPIRY, 1, client_tx_id=forced.idempotency_key)
    now = dt.datetime.now(dt.UTC)
    rec = Reconciler(h.pool, ApiLedger(h.registry, h.settings.tlds), Webhook(None))
    summary = await rec.run(Window(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1)))
    found = {(f.kind.value, f.idempotency_key) for f in summary.details}
    assert ("cross_engine_duplicate", both.idempotency_key) in found
    assert ("double_charge", both.idempotency_key) in found
    assert ("double_renewal", both.idempotency_key) in found
    assert ("unrecorded_renewal", forced.idempotency_key) in found
    missing = {f.idempotency_key for f in summary.details if f.kind.value == "refund_missing"}
    assert missing == {kept[d].idempotency_key for d, (*_, due) in KEPT_CHARGES.items() if due}
