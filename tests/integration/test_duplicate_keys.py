"""The duplicate-key check on real PostgreSQL: keys with two operations, and among them the keys
both engines touched, found from the window's operations, and from older operations one of
which finished in the window (the touch that came late)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from reconciler.alerts import Webhook
from reconciler.model import Window
from reconciler.run import SWEEP_CHECKS, Reconciler
from reconciler.sources import ApiLedger
from renewals import operations
from renewals.model import Engine
from tests.harness import Harness

pytestmark = pytest.mark.integration

EXPIRY = dt.date.today() + dt.timedelta(days=30)


async def _age(h: Harness, operation_id: str, created_days_ago: float) -> None:
    async with h.pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE operations SET created_at = now() - make_interval(days => %s)"
            " WHERE operation_id = %s",
            (created_days_ago, operation_id),
        )


async def test_a_late_touch_by_the_other_engine_is_found_in_the_window_it_happens(
    h: Harness,
) -> None:
    """Two operations of one key made days ago, both engines; the Temporal one finishes (done)
    now: the sweep of now finds the cross-engine key and the duplicate, the sweep of an
    hour ago (before the touch) finds neither."""
    request = h.request("late.fr", EXPIRY)
    legacy = dataclasses.replace(request, operation_id="op-late-legacy")
    async with h.pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")  # around the guards
        await operations.insert(conn, legacy, Engine.LEGACY)
        await operations.insert(conn, request, Engine.TEMPORAL)
        await conn.execute(
            "UPDATE operations SET status = 'done', step = 'record', finished_at = now()"
            " - interval '2 days' WHERE operation_id = 'op-late-legacy'"
        )
    await _age(h, "op-late-legacy", 3)
    await _age(h, request.operation_id, 2)
    rec = Reconciler(h.pool, ApiLedger(h.registry, h.settings.tlds), Webhook(None))
    now = dt.datetime.now(dt.UTC)
    before = await rec.run(Window(now - dt.timedelta(hours=1), now), selected=SWEEP_CHECKS)
    assert before.findings == {}
    async with h.pool.connection() as conn:  # the Temporal side finishes it now
        await conn.execute(
            "UPDATE operations SET status = 'done', step = 'record', finished_at = now()"
            " WHERE operation_id = %s",
            (request.operation_id,),
        )
    now = dt.datetime.now(dt.UTC)
    window = Window(now - dt.timedelta(minutes=5), now + dt.timedelta(seconds=1))
    after = await rec.run(window, selected=SWEEP_CHECKS)
    found = {(f.kind.value, f.idempotency_key) for f in after.details}
    assert ("cross_engine_duplicate", request.idempotency_key) in found
    assert ("duplicate_operation", request.idempotency_key) in found
    cross = next(f for f in after.details if f.kind.value == "cross_engine_duplicate")
    assert set(cross.operation_ids) == {"op-late-legacy", request.operation_id}
