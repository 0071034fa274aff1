"""A final row keeps its outcome, every row keeps the renewal it names, and no row is deleted
(migration 0010): whoever writes, the write is refused, logged as an event, counted, and the
writer's statement does not fail."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from prometheus_client import REGISTRY

from legacy_adapter import LegacyEngine
from renewals.model import RenewalRequest
from tests.harness import TODAY, Harness

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=30)


def refused(engine: str, frm: str, to: str) -> float:
    labels = {"engine": engine, "from_status": frm, "to_status": to}
    return REGISTRY.get_sample_value("dualrun_operation_moves_refused_total", labels) or 0.0


async def write(h: Harness, statement: str, *params: Any) -> int:
    """Send one statement as any writer could; the number of rows it changed."""
    async with h.pool.connection() as conn:
        cur = await conn.execute(statement, params)
        return cur.rowcount


async def done_row(h: Harness, domain: str) -> RenewalRequest:
    """A legacy operation done with its outcome, as a robot records it."""
    request = h.request(domain, EXPIRY)
    await LegacyEngine(h.pool).create(request)
    await write(
        h,
        "UPDATE operations SET status = 'done', new_expiry = %s, registry_transaction_id = 'tx-1',"
        " charged_cents = 1099, currency = 'EUR' WHERE operation_id = %s",
        EXPIRY + dt.timedelta(days=365),
        request.operation_id,
    )
    return request


async def refusals(h: Harness, operation_id: str) -> list[tuple[str, Any]]:
    rows = await h.query(
        "SELECT event, detail FROM operation_events WHERE operation_id = %s"
        " AND event LIKE '%%.refused' ORDER BY event_id",
        operation_id,
    )
    return [(r["event"], r["detail"].get("columns")) for r in rows]


async def test_a_done_rows_outcome_cannot_be_rewritten_but_may_be_repeated(h: Harness) -> None:
    """A late writer changing a done row's expiry or transaction is refused (row unchanged,
    `outcome.refused` naming the columns, counted); one repeating the same values passes."""
    request = await done_row(h, "held.fr")
    op = request.operation_id
    before = refused("legacy", "done", "done")
    changed = await write(
        h,
        "UPDATE operations SET new_expiry = new_expiry + 365, registry_transaction_id = 'tx-2',"
        " updated_at = now() WHERE operation_id = %s",
        op,
    )
    assert changed == 0
    row = await h.row(op)
    assert (row["new_expiry"], row["registry_transaction_id"]) == (
        EXPIRY + dt.timedelta(days=365),
        "tx-1",
    )
    assert await refusals(h, op) == [("outcome.refused", ["new_expiry", "registry_transaction_id"])]
    assert refused("legacy", "done", "done") == before + 1
    same = await write(
        h,
        "UPDATE operations SET status = 'done', registry_transaction_id = 'tx-1',"
        " run_id = 'a-rerun', updated_at = now() WHERE operation_id = %s",
        op,
    )
    assert same == 1 and (await h.row(op))["run_id"] == "a-rerun"
    assert len(await refusals(h, op)) == 1


async def test_cancelled_and_superseded_rows_keep_their_outcome(h: Harness) -> None:
    """A cancelled row's refund and a superseded row's pointer cannot be rewritten either."""
    legacy = LegacyEngine(h.pool)
    owner, late = h.request("owner.de", EXPIRY), h.request("owner.de", EXPIRY)
    gone = h.request("gone.de", EXPIRY)
    for r in (owner, late, gone):
        await legacy.create(r)
    await legacy.cancel_now(gone.operation_id)
    await write(
        h,
        "UPDATE operations SET status = 'superseded', superseded_by = %s WHERE operation_id = %s",
        owner.operation_id,
        late.operation_id,
    )
    await write(h, "UPDATE operations SET refunded_cents = 500 WHERE operation_id = %s",
                gone.operation_id)  # fmt: skip
    await write(h, "UPDATE operations SET superseded_by = NULL WHERE operation_id = %s",
                late.operation_id)  # fmt: skip
    assert (await h.row(gone.operation_id))["refunded_cents"] is None
    assert (await h.row(late.operation_id))["superseded_by"] == owner.operation_id
    assert await refusals(h, gone.operation_id) == [("outcome.refused", ["refunded_cents"])]
    assert await refusals(h, late.operation_id) == [("outcome.refused", ["superseded_by"])]


async def test_a_rows_renewal_cannot_be_renamed_and_no_row_is_deleted(h: Harness) -> None:
    """Rewriting the key or engine of a live row, or deleting any row, is refused and counted;
    the rows and their key claims stay."""
    live = h.request("named.eu", EXPIRY)
    await LegacyEngine(h.pool).create(live)
    done = await done_row(h, "kept.eu")
    before = refused("legacy", "done", "deleted")
    renamed = await write(
        h,
        "UPDATE operations SET idempotency_key = 'renew:other.eu:2030-01-01', engine = 'temporal'"
        " WHERE operation_id = %s",
        live.operation_id,
    )
    deleted = await write(h, "DELETE FROM operations WHERE operation_id IN (%s, %s)",
                          live.operation_id, done.operation_id)  # fmt: skip
    assert (renamed, deleted) == (0, 0)
    row = await h.row(live.operation_id)
    assert (row["idempotency_key"], row["engine"]) == (live.idempotency_key, "legacy")
    assert (await h.row(done.operation_id))["status"] == "done"
    assert await refusals(h, live.operation_id) == [
        ("outcome.refused", ["idempotency_key", "engine"]),
        ("delete.refused", None),
    ]
    assert refused("legacy", "done", "deleted") == before + 1
    keys = await h.query("SELECT count(*) AS n FROM renewal_keys")
    assert keys[0]["n"] == 2
