"""`dualrun reconcile` over renewals run by both engines writes the run's three report files,
whose figures match the operations; `dualrun report` prints them back."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
import structlog

from legacy_adapter import LegacyEngine
from ops.legacy_engine.robots import RobotConfig, Robots
from renewals.billing import BillingLedger
from renewals.model import RenewalRequest
from temporal_flow.starter import renew_input, start_renewal
from temporal_flow.types import RunMode
from tests.harness import TODAY, Cli, Harness, cli_runner, worker_env
from tests.integration.test_report import report_env

pytestmark = pytest.mark.integration

EXPIRY = TODAY + dt.timedelta(days=20)


def requests_for(h: Harness, tld: str, n: int, prefix: str) -> list[RenewalRequest]:
    domains = [f"{prefix}{i}.{tld}" for i in range(n)]
    h.seed(tld, *domains, expiry=EXPIRY)
    h.admin.configure(tld, rate_limit=5000.0, burst=5000)
    return [h.request(d, EXPIRY) for d in domains]


async def drain_legacy(h: Harness) -> None:
    config = RobotConfig(robots=4, poll_interval_s=0.05, lease_s=5.0, retry_delay_s=0.1,
                         max_attempts=2, drain=True)  # fmt: skip
    engine = Robots(h.pool, h.registry, BillingLedger(h.pool), config)
    await asyncio.wait_for(engine.run(), 120)


def percentile(values: list[float], q: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


async def test_reconcile_writes_reports_of_both_engines(
    h: Harness,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Legacy .fr, Temporal .info, shadowed .de (one premium changed): files and figures."""
    legacy = requests_for(h, "fr", 3, "rep-l")
    live = requests_for(h, "info", 3, "rep-t")
    same, changed = requests_for(h, "de", 2, "rep-s")
    async with h.workers():
        for request in (same, changed):
            inp = renew_input(request, RunMode.SHADOW, h.settings)
            await h.result((await start_renewal(h.client, h.settings.task_queue, inp)).workflow_id)
        for request in live:
            await h.result((await h.submit(request)).workflow_id)
    h.seed("de", changed.domain, expiry=EXPIRY, premium_cents=99_00)
    for request in (*legacy, same, changed):
        await LegacyEngine(h.pool).create(request)
    await drain_legacy(h)

    env = {**report_env(h.settings.dsn, tmp_path), **worker_env(h.settings)}
    logging = structlog.get_config()  # the CLI logs to captured streams: restore before teardown
    try:
        await check_reports(h, tmp_path, cli_runner(env, monkeypatch, capsys))
    finally:
        structlog.configure(**logging)


async def check_reports(h: Harness, tmp_path: Path, cli: Cli) -> None:
    """`dualrun reconcile` writes the files; their figures match; `dualrun report` reads them."""
    code, out, err = await asyncio.to_thread(cli, "reconcile", "--json")
    assert code == 0, err
    summary = json.loads(out)
    run_id = summary["run_id"]
    assert summary["findings"] == {"shadow_mismatch": 1}
    reports = tmp_path / "reports"
    names = {p.name for p in reports.iterdir() if not p.name.startswith(".")}
    assert names == {f"{stem}.{ext}" for stem in (f"run-{run_id}", "latest")
                     for ext in ("json", "md", "html")}  # fmt: skip
    assert summary["report"]["html"] == str(reports / f"run-{run_id}.html")

    doc = json.loads((reports / f"run-{run_id}.json").read_text())
    assert doc["run"]["run_id"] == run_id
    fr, info, de = (doc["tlds"][t]["engines"] for t in ("fr", "info", "de"))
    assert (fr["legacy"]["total"], fr["legacy"]["done"], fr["legacy"]["success_rate"]) == (
        3, 3, 100.0)  # fmt: skip
    assert (info["temporal"]["total"], info["temporal"]["done"]) == (3, 3)
    assert "temporal" not in fr and "legacy" not in info
    assert de["legacy"]["findings"] == {"shadow_mismatch": 1}
    assert doc["tlds"]["de"]["shadow"] == {"tld": "de", "compared": 2, "mismatched": 1,
                                           "pending": 0, "not_comparable": 0,
                                           "aa_compared": 0, "aa_mismatched": 0,
                                           "plan_failed": 0, "match_rate": 50.0,
                                           "noise_rate": None,
                                           "plan_failure_rate": 0.0}  # fmt: skip
    rows = await h.query(
        "SELECT extract(epoch FROM finished_at - created_at)::float8 AS s FROM operations"
        " WHERE tld = 'info' AND engine = 'temporal'"
    )
    secs = [r["s"] for r in rows]
    durations = info["temporal"]["durations_s"]
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert durations[name] == pytest.approx(percentile(secs, q), abs=0.001)
    assert doc["tlds"]["de"]["flag"] == {"mode": "shadow", "rollout": 100}

    code, out, _ = await asyncio.to_thread(cli, "report", "--format", "json")
    assert code == 0 and json.loads(out) == doc  # the stored file, latest run by default
    code, out, _ = await asyncio.to_thread(cli, "report", "--run", str(run_id), "--format", "md")
    assert code == 0 and out == (reports / f"run-{run_id}.md").read_text()
    assert (reports / "latest.html").read_text() == (reports / f"run-{run_id}.html").read_text()
