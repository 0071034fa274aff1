"""Shadow plans on the real Temporal dev server, PostgreSQL and the registry simulator: a plan
the registry refuses is a `would_refuse` plan (a business decision to compare), and the A/A
sample's second plan is really started and recorded under its own workflow id."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from temporalio.client import Client, WorkflowFailureError

from legacy_adapter import LegacyEngine
from renewals.model import RenewalRequest
from renewals.settings import Settings
from temporal_flow.engine import TemporalEngine
from temporal_flow.ids import workflow_id
from temporal_flow.starter import in_aa_sample, renew_input, start_renewal
from temporal_flow.types import RunMode
from tests.harness import TODAY, Harness, cli_runner, save_history, worker_env
from tests.integration.test_report import report_env
from tests.integration.test_report_engines import drain_legacy, requests_for

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=20)


async def test_a_plan_the_registry_refuses_would_refuse(h: Harness) -> None:
    """A shadow plan of a domain the registry does not know completes as `would_refuse`
    DomainNotFound (it used to fail, and the comparator could only call it not comparable)."""
    request = h.request("unknown-to-it.info", EXPIRY)
    async with h.workers():
        inp = renew_input(request, RunMode.SHADOW, h.settings)
        started = await start_renewal(h.client, h.settings.task_queue, inp)
        result = await h.result(started.workflow_id)
        await save_history(h, started.workflow_id, "shadow_refused_not_found")
    assert (result.status, result.new_expiry) == ("planned", None)
    (plan,) = await h.query("SELECT * FROM shadow_plans")
    assert (plan["verdict"], plan["refusal"]) == ("would_refuse", "DomainNotFound")
    assert (plan["would_charge_cents"], plan["expected_new_expiry"]) == (None, None)


async def plan_all(
    h: Harness, requests: list[RenewalRequest], settings: Settings, *, fail: bool = False
) -> None:
    """The shadow plan(s) of each request, as the router's planner starts them, finished
    (`fail`: each run fails)."""
    engine = TemporalEngine(h.pool, settings, lambda: _client(h))
    async with h.workers():
        for request in requests:
            assert await engine.plan(request) is None  # started, no dispatch failure
            if fail:
                with pytest.raises(WorkflowFailureError):
                    await h.result(workflow_id(request.idempotency_key, RunMode.SHADOW))
                continue
            await h.result(workflow_id(request.idempotency_key, RunMode.SHADOW))
            if in_aa_sample(request.idempotency_key, settings.shadow_aa_share):
                await h.result(workflow_id(request.idempotency_key, RunMode.SHADOW, "b"))


async def _client(h: Harness) -> Client:
    return h.client


async def reconciled(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> dict[str, Any]:
    """`dualrun reconcile`, then the fresh JSON report of that run."""
    env = {**report_env(h.settings.dsn, tmp_path), **worker_env(h.settings)}
    env["DUALRUN_REPORT_MIN_VOLUME"] = "1"
    logging = structlog.get_config()  # the CLI logs to captured streams: restore before teardown
    try:
        cli = cli_runner(env, monkeypatch, capsys)
        code, _, err = await asyncio.to_thread(cli, "reconcile", "--json")
        assert code == 0, err
        code, out, err = await asyncio.to_thread(cli, "report", "--format", "json", "--fresh")
        assert code == 0, err
    finally:
        structlog.configure(**logging)
    return dict(json.loads(out))


async def test_business_mismatches_block_and_legacy_timeouts_do_not(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Real plans, then the real legacy robots, on shadowed .de: a premium price changed between
    plan and legacy, and a domain made renew-prohibited in between (legacy refuses, the plan
    renews), are business mismatches with deepdiff evidence and the verdict is blocked; a renew
    legacy timed out (committed) and replayed into an expiry mismatch, and a plan whose registry
    reads kept failing, are not comparable (the latter the plan side's transient failure)."""
    timed_out, same, premium, refused, flaky = requests_for(h, "de", 5, "cmp")
    await plan_all(h, [timed_out, same, premium, refused], h.settings)
    h.admin.configure("de", error_rate=1.0)  # 503s: the plan's two attempts fail
    await plan_all(h, [flaky], dataclasses.replace(h.settings, registry_max_attempts=2), fail=True)
    h.admin.configure("de", error_rate=0.0)
    h.admin.configure("de", commit_timeout_rate=1.0, hold_s=h.settings.registry_timeout_s + 1)
    await LegacyEngine(h.pool).create(timed_out)
    await drain_legacy(h)  # times out (committed), retried blindly: refused, failed
    h.admin.configure("de", commit_timeout_rate=0.0)
    h.seed("de", premium.domain, expiry=EXPIRY, premium_cents=99_00)
    h.seed("de", refused.domain, expiry=EXPIRY, statuses=["clientRenewProhibited"])
    for request in (same, premium, refused, flaky):
        await LegacyEngine(h.pool).create(request)
    await drain_legacy(h)
    assert (await h.row(timed_out.operation_id))["error_code"] == "expiry_mismatch"

    doc = await reconciled(h, tmp_path, monkeypatch, capsys)
    de = doc["tlds"]["de"]
    assert (de["shadow"]["compared"], de["shadow"]["mismatched"]) == (3, 2)
    assert de["shadow"]["not_comparable"] == 2
    assert (de["shadow"]["plan_failed"], de["shadow"]["plan_failure_rate"]) == (1, 20.0)
    assert de["readiness"]["verdict"] == "blocked"
    assert any("shadow match 33.33%" in r for r in de["readiness"]["reasons"])
    findings = await h.query(
        "SELECT idempotency_key, evidence FROM findings WHERE kind = 'shadow_mismatch'"
    )
    diffs = {r["idempotency_key"]: json.dumps(r["evidence"]["diff"]) for r in findings}
    assert set(diffs) == {premium.idempotency_key, refused.idempotency_key}
    assert "charged_cents" in diffs[premium.idempotency_key]
    assert "outcome" in diffs[refused.idempotency_key]


async def test_the_aa_sample_gets_a_second_plan(
    h: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """With DUALRUN_SHADOW_AA_SHARE=1 every shadowed renewal is planned twice: `shadow:{key}`
    and `shadow:b:{key}`, both recorded, and the pair is compared (agree)."""
    settings = dataclasses.replace(h.settings, shadow_aa_share=1.0)
    (request,) = requests_for(h, "de", 1, "aa")
    assert in_aa_sample(request.idempotency_key, 1.0)
    assert not in_aa_sample(request.idempotency_key, 0.0)
    await LegacyEngine(h.pool).create(request)
    await plan_all(h, [request], settings)
    rows = await h.query("SELECT plan, workflow_id, verdict FROM shadow_plans ORDER BY plan")
    key = request.idempotency_key
    assert [(r["plan"], r["workflow_id"]) for r in rows] == [
        ("a", f"shadow:{key}"),
        ("b", f"shadow:b:{key}"),
    ]
    assert {r["verdict"] for r in rows} == {"would_renew"}
    await reconciled(h, tmp_path, monkeypatch, capsys)
    pairs = await h.query("SELECT pair, class FROM shadow_comparisons WHERE pair = 'aa'")
    assert [(p["pair"], p["class"]) for p in pairs] == [("aa", "agree")]
