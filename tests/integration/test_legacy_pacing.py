"""The legacy robots at month start: their claims, and `legacy-engine --pace` as real processes.

Paced, the robots ask each provider no faster than its limit, wait a 429 out in place (a
provider shared with the Temporal engine answers some) and leave a slow provider only its
places, so one provider's backlog never holds every robot. Paced or not, a claim costs the
same however many rows wait.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from ops.legacy_engine.rows import _NEXT_ANY, _NEXT_OF_TLDS
from tests.integration.legacy_support import EXPIRY, Legacy, cli_env, dualrun

pytestmark = [pytest.mark.integration]


async def _run(
    legacy: Legacy, rates: str, *flags: str, legacy_rates: str | None = None
) -> tuple[dict[str, Any], str]:
    argv = [
        "legacy-engine",
        "--drain",
        "--json",
        "--poll-interval",
        "0.05",
        "--retry-delay",
        "0.05",
    ]
    env = {**cli_env(legacy), "DUALRUN_REGISTRY_RATE_LIMITS": rates}
    if legacy_rates is not None:
        env["DUALRUN_LEGACY_RATE_LIMITS"] = legacy_rates
    with dualrun([*argv, *flags], env, subprocess.PIPE, subprocess.PIPE) as proc:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    return json.loads(out), err.decode()


async def _submit(legacy: Legacy, tld: str, prefix: str, n: int) -> list[str]:
    domains = [f"{prefix}{i}.{tld}" for i in range(n)]
    legacy.seed(tld, *domains)
    return [await legacy.submit(d) for d in domains]


async def test_paced_robots_never_draw_a_429_where_unpaced_ones_do(legacy: Legacy) -> None:
    """Eight paced robots on a 4 calls/s registry renew every domain on its first attempt
    without one 429; unpaced, the same robots draw 429s and burn attempts."""
    legacy.admin.configure("com", rate_limit=4.0, burst=4)

    async def run(prefix: str, *flags: str) -> tuple[dict[str, Any], int]:
        await _submit(legacy, "com", prefix, 10)
        before = legacy.admin.traffic("com")["rejected"]
        stats, _ = await _run(legacy, "com=4", "--robots", "8", *flags)
        return stats, legacy.admin.traffic("com")["rejected"] - before

    paced, paced_429s = await run("paced", "--pace")
    assert (paced["done"], paced["retried"], paced_429s) == (10, 0, 0)
    assert (
        await legacy.count(
            "SELECT count(*) AS n FROM operations WHERE domain LIKE 'paced%%' AND attempts = 1"
        )
        == 10
    )
    unpaced, unpaced_429s = await run("blind")
    assert unpaced["done"] + unpaced["failed"] == 10
    assert unpaced_429s > 0 and unpaced["retried"] > 0


async def test_paced_robots_wait_out_a_429_in_place_without_spending_an_attempt(
    legacy: Legacy,
) -> None:
    """A provider slower than the robots' pace (as one shared with the other engine is) answers
    429s: paced robots wait each out and ask again under their lease, so every renewal is done
    on its first attempt, renewed once, the waits recorded as `<step>.rate_limited` events."""
    legacy.admin.configure("com", rate_limit=2.0, burst=1)
    ops = await _submit(legacy, "com", "shared", 4)
    stats, _ = await _run(legacy, "com=8", "--robots", "2", "--pace")
    rejected = legacy.admin.traffic("com")["rejected"]
    assert (stats["done"], stats["retried"], stats["failed"]) == (4, 0, 0)
    assert rejected > 0 and stats["waited_429"] == rejected
    rows = await legacy.query(
        "SELECT domain, attempts, status FROM operations WHERE operation_id = ANY(%s)", ops
    )
    assert {(r["attempts"], r["status"]) for r in rows} == {(1, "done")}
    assert sorted(e["domain"] for e in legacy.admin.ledger("com")) == sorted(
        r["domain"] for r in rows
    )
    waits = await legacy.count(
        "SELECT count(*) AS n FROM operation_events"
        " WHERE operation_id = ANY(%s) AND event LIKE '%%.rate_limited'",
        ops,
    )
    assert waits == rejected


async def test_paced_robots_keep_to_their_share_of_a_shared_provider(legacy: Legacy) -> None:
    """Where Temporal shares a provider, DUALRUN_LEGACY_RATE_LIMITS is the robots' pace: with
    the provider's whole limit at 8 calls/s but the robots' share at 2 (what the provider gives
    them, its burst of 2 absorbing the jitter of the way there), they draw no 429 and wait none
    out."""
    legacy.admin.configure("com", rate_limit=2.0, burst=2)
    await _submit(legacy, "com", "share", 4)
    stats, _ = await _run(legacy, "com=8", "--robots", "2", "--pace", legacy_rates="com=2")
    assert (stats["done"], stats["waited_429"], stats["retried"]) == (4, 0, 0)
    assert legacy.admin.traffic("com")["rejected"] == 0


def _most_at_once(spans: list[tuple[Any, Any]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
    at_once = most = 0
    for _, step in edges:
        at_once += step
        most = max(most, at_once)
    return most


async def test_a_slow_provider_holds_only_its_places_and_the_rest_go_on(legacy: Legacy) -> None:
    """The oldest rows are all of a 2 calls/s provider: paced, six robots hold at most its two
    places there and renew the younger rows of a fast provider meanwhile, all on the first
    attempt; unpaced, they take the oldest rows whatever their provider."""
    legacy.admin.configure("com", rate_limit=2.0, burst=1)
    legacy.admin.configure("eu", rate_limit=20.0, burst=20)
    slow = await _submit(legacy, "com", "slow", 4)
    fast = await _submit(legacy, "eu", "fast", 6)
    stats, _ = await _run(legacy, "com=2,eu=20", "--robots", "6", "--pace")
    assert (stats["done"], stats["retried"]) == (10, 0)

    async def spans(ops: list[str]) -> list[tuple[Any, Any]]:
        rows = await legacy.query(
            "SELECT started_at, finished_at, attempts FROM operations WHERE operation_id = ANY(%s)",
            ops,
        )
        assert {r["attempts"] for r in rows} == {1}
        return [(r["started_at"], r["finished_at"]) for r in rows]

    slow_spans, fast_spans = await spans(slow), await spans(fast)
    assert _most_at_once(slow_spans) <= 2
    assert max(f for _, f in fast_spans) < max(f for _, f in slow_spans)


async def test_a_claim_walks_an_index_in_claim_order_not_a_sort_of_every_open_row(
    legacy: Legacy,
) -> None:
    """With 6,000 open legacy rows, both claims (the oldest row; paced, the oldest of each TLD
    with a free place) read the partial indexes of migration 0014 in claim order: no scan of
    the table, no sort of its rows (before, each claim sorted all of them)."""
    async with legacy.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO operations (operation_id, idempotency_key, domain, tld, years,"
            " current_expiry, customer_id, engine, next_attempt_at)"
            " SELECT 'op-' || i, 'key-' || i, 'd' || i || '.' || t, t, 1, %s, 'cust-1', 'legacy',"
            "        now() - interval '1 hour' + i * interval '1 ms'"
            " FROM generate_series(1, 6000) i,"
            "      LATERAL (SELECT (ARRAY['com', 'eu', 'info'])[1 + i %% 3] AS t) x",
            (EXPIRY,),
        )
        await conn.execute("ANALYZE operations")
        plans = {}
        for name, sql, tlds in (("any", _NEXT_ANY, None), ("tlds", _NEXT_OF_TLDS, ["com", "eu"])):
            cur = await conn.execute(f"EXPLAIN {sql}", {"tlds": tlds})
            plans[name] = "\n".join(r[0] for r in await cur.fetchall())
    assert "Index Scan using operations_legacy_ready_idx" in plans["any"], plans["any"]
    assert "Index Scan using operations_legacy_ready_tld_idx" in plans["tlds"], plans["tlds"]
    for plan in plans.values():
        assert "Seq Scan" not in plan and "Sort Key: operations." not in plan, plan
