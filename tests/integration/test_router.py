"""The router with real PostgreSQL, the Temporal dev server and the registry simulator: routing,
pinning, conflicts, dispatch and cancel (flags from a bootstrap file; Unleash has its own tests)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dualrun.flags.local import SEED, LocalFlags
from dualrun.flags.model import RuleChange
from dualrun.routing.service import RenewalService
from dualrun.wiring import renewal_service
from renewals.errors import IdempotencyConflict
from renewals.model import Mode, RenewalRequest
from renewals.settings import Settings
from tests.harness import TODAY, Harness, count

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=30)
FLAG = "dualrun.renewals"


def flag_file(tmp_path: Path, **modes: tuple[Mode, int]) -> Path:
    path = tmp_path / "bootstrap.json"
    path.write_text(SEED.read_text())
    for tld, (mode, rollout) in modes.items():
        LocalFlags(path, FLAG).set_rule(RuleChange(tld, mode, rollout))
    return path


def with_flags(settings: Settings, path: Path, **more: object) -> Settings:
    return dataclasses.replace(settings, flags_bootstrap=path, state_dir=path.parent, **more)


@asynccontextmanager
async def routed(h: Harness, path: Path) -> AsyncIterator[RenewalService]:
    async with renewal_service(with_flags(h.settings, path), temporal_client=h.client) as svc:
        yield svc


def req(domain: str, years: int = 1, op: str | None = None) -> RenewalRequest:
    raw: dict[str, object] = {
        "domain": domain,
        "years": years,
        "current_expiry": EXPIRY.isoformat(),
        "customer_id": "cust-7",
    }
    if op:
        raw["operation_id"] = op
    return RenewalRequest.parse(raw)


async def test_each_mode_reaches_its_engine(h: Harness, tmp_path: Path) -> None:
    """temporal → a live workflow renews; shadow → legacy row plus a plan; legacy → legacy row."""
    path = flag_file(tmp_path, fr=(Mode.TEMPORAL, 100), info=(Mode.SHADOW, 100))
    h.seed("fr", "live.fr", expiry=EXPIRY)
    h.seed("info", "plan.info", expiry=EXPIRY)
    async with h.workers(), routed(h, path) as svc:
        live = await svc.submit(req("live.fr"))
        plan = await svc.submit(req("plan.info"))
        old = await svc.submit(req("old.de"))

        async def finished() -> bool:
            row = await h.row(live.operation_id)
            plans = await h.query("SELECT verdict FROM shadow_plans")
            return row["status"] == "done" and len(plans) == 1

        await h.wait_for(finished, within=60)
    assert (live.engine, live.mode, live.deduplicated) == ("temporal", "temporal", False)
    assert (plan.engine, plan.mode) == ("legacy", "shadow")
    assert (old.engine, old.mode) == ("legacy", "legacy")
    assert (await h.row(plan.operation_id))["engine"] == "legacy"
    assert len(h.admin.ledger("fr", domain="live.fr")) == 1
    assert h.admin.ledger("info", domain="plan.info") == []  # a plan renews nothing
    decisions = await h.query("SELECT tld, mode, engine, flag_source FROM routing_decisions")
    assert sorted((d["tld"], d["mode"], d["flag_source"]) for d in decisions) == [
        ("de", "legacy", "bootstrap"),
        ("fr", "temporal", "bootstrap"),
        ("info", "shadow", "bootstrap"),
    ]


async def test_a_decided_renewal_never_moves(h: Harness, tmp_path: Path) -> None:
    """Decide temporal, flip .fr to legacy: the same key stays temporal, deduplicated, one row."""
    path = flag_file(tmp_path, fr=(Mode.TEMPORAL, 100))
    async with routed(h, path) as svc:
        first = await svc.submit(req("pinned.fr"))
        LocalFlags(path, FLAG).set_rule(RuleChange("fr", Mode.LEGACY, None))

        async def flipped() -> bool:
            return svc.router.route("other.fr").mode == Mode.LEGACY

        await h.wait_for(flipped, within=10)
        again = await svc.submit(req("pinned.fr", op="op-another-id"))
        fresh = await svc.submit(req("fresh.fr"))
    assert first.engine == again.engine == "temporal"
    assert again.deduplicated and again.operation_id == first.operation_id
    assert fresh.engine == "legacy"
    key = req("pinned.fr").idempotency_key
    assert (
        count(h.settings.dsn, "SELECT count(*) FROM operations WHERE idempotency_key = %s", key)
        == 1
    )
    n = count(
        h.settings.dsn, "SELECT count(*) FROM routing_decisions WHERE idempotency_key = %s", key
    )
    assert n == 1


async def test_same_key_other_parameters_is_a_conflict(h: Harness, tmp_path: Path) -> None:
    """Other years or customer under a decided key: IdempotencyConflict, nothing written."""
    path = flag_file(tmp_path)
    async with routed(h, path) as svc:
        await svc.submit(req("conflict.eu"))
        before = count(h.settings.dsn, "SELECT count(*) FROM operation_events")
        with pytest.raises(IdempotencyConflict) as caught:
            await svc.submit(req("conflict.eu", years=3))
        other = dataclasses.replace(req("conflict.eu"), customer_id="cust-8")
        with pytest.raises(IdempotencyConflict):
            await svc.submit(other)
    assert caught.value.field == "years"
    assert count(h.settings.dsn, "SELECT count(*) FROM operations") == 1
    assert count(h.settings.dsn, "SELECT count(*) FROM routing_decisions") == 1
    assert count(h.settings.dsn, "SELECT count(*) FROM operation_events") == before


async def test_failed_start_stays_todo_and_a_resubmission_starts_it(
    h: Harness, tmp_path: Path
) -> None:
    """Temporal unreachable: the row stays todo and says why; resubmitting starts the workflow."""
    path = flag_file(tmp_path, com=(Mode.TEMPORAL, 100))
    dead = with_flags(h.settings, path, temporal_address="127.0.0.1:9")
    async with renewal_service(dead) as svc:
        failed = await svc.submit(req("later.com"))
    assert failed.dispatch_error and failed.status == "todo"
    assert (await h.row(failed.operation_id))["status"] == "todo"
    async with routed(h, path) as svc:
        again = await svc.submit(req("later.com"))
    assert again.deduplicated and again.dispatch_error is None
    described = await h.client.get_workflow_handle(req("later.com").idempotency_key).describe()
    assert described.id == req("later.com").idempotency_key


async def test_cancel_accepted_before_registry_refused_after(h: Harness, tmp_path: Path) -> None:
    """Cancel in the status step is accepted (flag set, refunded); once at the registry, refused."""
    path = flag_file(tmp_path, fr=(Mode.TEMPORAL, 100), de=(Mode.TEMPORAL, 100))
    h.seed("fr", "slow.fr", expiry=EXPIRY)
    h.seed("de", "held.de", expiry=EXPIRY)
    h.admin.configure("fr", latency_ms=1500)
    h.admin.configure("de", commit_timeout_rate=1.0, hold_s=6.0)
    async with h.workers(), routed(h, path) as svc:
        slow = await svc.submit(req("slow.fr"))
        held = await svc.submit(req("held.de"))
        accepted = await svc.cancel(slow.operation_id)
        handle = h.client.get_workflow_handle(req("held.de").idempotency_key)

        async def at_registry() -> bool:
            return bool((await handle.query("progress"))["registry_started"])

        await h.wait_for(at_registry, within=30)
        refused = await svc.cancel(held.operation_id)

        async def settled() -> bool:
            rows = [await h.row(slow.operation_id), await h.row(held.operation_id)]
            return [r["status"] for r in rows] == ["cancelled", "done"]

        await h.wait_for(settled, within=60)
    assert accepted.accepted and not refused.accepted
    assert "registry step has begun" in refused.message
    assert (await h.row(slow.operation_id))["cancel_requested_at"] is not None
    assert (await h.row(held.operation_id))["cancel_requested_at"] is None
    assert h.admin.ledger("fr", domain="slow.fr") == []


async def test_legacy_cancel_and_status(h: Harness, tmp_path: Path) -> None:
    """A legacy renewal nobody picked up cancels at once; status shows the routing."""
    async with routed(h, flag_file(tmp_path)) as svc:
        sub = await svc.submit(req("gone.de"))
        result = await svc.cancel(sub.operation_id)
        doc = await svc.status(sub.operation_id)
    assert result.accepted and result.status == "cancelled"
    assert doc["status"] == "cancelled" and doc["engine"] == "legacy"
    assert doc["routing"]["source"] == "bootstrap" and doc["cancel_requested"]


async def test_cancel_with_no_worker_is_flagged_and_honoured(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker takes the cancel update: the answer comes back (no hang), the row is flagged,
    and the workflow stops before its charge once a worker runs: refunded nothing, renewed
    nothing, cancelled."""
    monkeypatch.setattr("temporal_flow.engine.CANCEL_ANSWER_S", 1.0)
    path = flag_file(tmp_path, eu=(Mode.TEMPORAL, 100))
    h.seed("eu", "nobody.eu", expiry=EXPIRY)
    async with routed(h, path) as svc:
        sub = await svc.submit(req("nobody.eu"))
        result = await asyncio.wait_for(svc.cancel(sub.operation_id), 10)
    assert result.accepted and "flagged" in result.message
    assert (await h.row(sub.operation_id))["cancel_requested_at"] is not None
    async with h.workers():
        done = await h.result(sub.idempotency_key)
    assert done.status == "cancelled"
    assert (await h.row(sub.operation_id))["status"] == "cancelled"
    assert h.admin.ledger("eu", domain="nobody.eu") == []
    assert count(h.settings.dsn, "SELECT count(*) FROM billing_ledger") == 0
