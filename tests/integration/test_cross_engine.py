"""One renewal on one engine, seen from every side: a Temporal renewal that charged before a
legacy operation of its key appeared is refunded; the legacy adapter and a router on legacy
meet a key Temporal has; the HTTP API answers an operation the upstream batch made."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from legacy_adapter import LegacyEngine
from ops.legacy_engine.autorenew import create_batch
from ops.legacy_engine.robots import RobotConfig, Robots
from reconciler.alerts import Webhook
from reconciler.model import Window
from reconciler.run import Reconciler
from reconciler.sources import ApiLedger
from renewals.billing import BillingLedger
from renewals.db.pool import async_pool
from renewals.model import Mode, RenewalRequest
from tests.harness import TODAY, Harness, count
from tests.integration.api_support import AUTH, TestClient, api, body
from tests.integration.test_router import flag_file, routed
from tests.integration.test_temporal_flow import stalled_in_charge

pytestmark = pytest.mark.integration
__all__ = ["api"]  # the fixture

EXPIRY = TODAY + dt.timedelta(days=30)


async def temporal_op(h: Harness, request: RenewalRequest, status: str) -> None:
    """An operation of the key on Temporal, `todo` (live) or done."""
    async with h.pool.connection() as conn, conn.transaction():
        await h.engine.submit(conn, request)
        if status == "done":
            await conn.execute(
                "UPDATE operations SET status = 'done', step = 'record' WHERE operation_id = %s",
                (request.operation_id,),
            )


async def forced_in(h: Harness, request: RenewalRequest) -> None:
    """A legacy operation of the key written past the triggers (a bulk load, a hand fix)."""
    async with h.pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await LegacyEngine(h.pool).submit(conn, request)


async def test_a_renewal_that_charged_before_a_legacy_operation_appeared_is_refunded(
    h: Harness,
) -> None:
    """The charge is past its gate when a legacy operation of the key is forced in: the renew's
    gate stops it; the charge is refunded, nothing renewed, the run ends superseded."""
    h.seed("fr", "charged-first.fr", expiry=EXPIRY)
    request = h.request("charged-first.fr", EXPIRY)
    legacy = h.request("charged-first.fr", EXPIRY)
    async with h.workers():
        async with stalled_in_charge(h, request):
            await forced_in(h, legacy)
        result = await h.result(request.idempotency_key)
    assert (result.status, result.superseded_by) == ("superseded", legacy.operation_id)
    assert result.refunded_cents and result.refunded_cents > 0
    kinds = await h.query(
        "SELECT kind FROM billing_ledger WHERE operation_id = %s ORDER BY entry_id",
        request.operation_id,
    )
    assert [k["kind"] for k in kinds] == ["charge", "refund"]
    row = await h.row(request.operation_id)
    assert (row["status"], row["superseded_by"]) == ("superseded", legacy.operation_id)
    assert h.admin.ledger("fr", domain="charged-first.fr") == []


@pytest.mark.parametrize("status", ["todo", "done"])
async def test_the_legacy_adapter_supersedes_a_key_temporal_has(h: Harness, status: str) -> None:
    """LegacyEngine.submit of a key Temporal has (live or done): superseded at birth, pointing
    to it; the robots never charge nor renew it."""
    h.seed("de", f"held-{status}.de", expiry=EXPIRY)
    owner, late = (h.request(f"held-{status}.de", EXPIRY) for _ in range(2))
    await temporal_op(h, owner, status)
    created = await LegacyEngine(h.pool).create(late)
    assert (created.status, created.superseded_by) == ("superseded", owner.operation_id)
    robots = Robots(h.pool, h.registry, BillingLedger(h.pool),
                    RobotConfig(robots=1, poll_interval_s=0.05, drain=True))  # fmt: skip
    stats = await robots.run()
    assert stats.processed == 0
    assert await h.net_charges(late.idempotency_key) == 0
    assert h.admin.ledger("de", domain=f"held-{status}.de") == []
    assert (await h.row(owner.operation_id))["status"] == status


@pytest.mark.parametrize("status", ["todo", "done"])
async def test_a_router_on_legacy_answers_with_the_key_temporal_has(
    h: Harness, tmp_path: Path, status: str
) -> None:
    """.fr on legacy, the key's operation on Temporal (live or done): the submission is that
    renewal (deduplicated, engine temporal); nothing new is written."""
    owner = h.request(f"moved-{status}.fr", EXPIRY, customer_id="cust-7")
    await temporal_op(h, owner, status)
    path = flag_file(tmp_path, fr=(Mode.LEGACY, 100))
    async with routed(h, path) as svc:
        answer = await svc.submit(h.request(f"moved-{status}.fr", EXPIRY, customer_id="cust-7"))
    assert answer.deduplicated and answer.operation_id == owner.operation_id
    assert (answer.engine, answer.status) == ("temporal", status)
    assert count(h.settings.dsn, "SELECT count(*) FROM operations") == 1
    assert count(h.settings.dsn, "SELECT count(*) FROM routing_decisions") == 0


async def test_a_batch_row_with_other_parameters_is_reported_as_a_conflict(h: Harness) -> None:
    """The batch writes a key Temporal has, for two years instead of one: superseded at birth,
    and the duplicate finding names the differing field (a conflict, not a plain duplicate)."""
    owner = h.request("other-years.fr", EXPIRY)
    await temporal_op(h, owner, "todo")
    same, other = h.request("same.fr", EXPIRY), h.request("same.fr", EXPIRY)
    await temporal_op(h, same, "todo")
    two_years = RenewalRequest("other-years.fr", 2, EXPIRY, "cust-1", "op-batch-2y")
    await create_batch(h.pool, [two_years, other])
    assert (await h.row("op-batch-2y"))["superseded_by"] == owner.operation_id
    now = dt.datetime.now(dt.UTC)
    rec = Reconciler(h.pool, ApiLedger(h.registry, h.settings.tlds), Webhook(None))
    summary = await rec.run(Window(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1)))
    dups = {f.idempotency_key: f for f in summary.details if f.kind.value == "duplicate_operation"}
    assert dups[owner.idempotency_key].evidence["conflicting_parameters"] == ["years"]
    assert "different years" in dups[owner.idempotency_key].summary
    assert "conflicting_parameters" not in dups[same.idempotency_key].evidence


def batch_made(dsn: str, request: RenewalRequest) -> str:
    """The upstream batch writes the renewal into the legacy tables; its operation id."""

    async def make() -> str:
        pool = await async_pool(dsn, max_size=1)
        try:
            return (await create_batch(pool, [request])).operation_ids[0]
        finally:
            await pool.close()

    return asyncio.run(make())


def test_the_api_answers_an_operation_the_batch_made(api: TestClient, db_dsn: str) -> None:
    """POST /renewals of a key the batch created: 200 with that operation (deduplicated, engine
    legacy); with other parameters 409 naming the field; nothing new written."""
    made = batch_made(db_dsn, RenewalRequest.parse({**body("batch.fr"), "operation_id": "op-b1"}))
    answer = api.post("/renewals", json=body("batch.fr"), headers=AUTH)
    assert answer.status_code == 200, answer.text
    got: dict[str, Any] = answer.json()
    assert (got["operation_id"], got["deduplicated"], got["engine"]) == (made, True, "legacy")
    conflict = api.post("/renewals", json=body("batch.fr", years=2), headers=AUTH)
    assert conflict.status_code == 409 and conflict.json()["error"]["field"] == "years"
    assert count(db_dsn, "SELECT count(*) FROM operations") == 1
