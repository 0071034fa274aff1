"""The seed's month-start lesson under load, both engines racing for the same keys: the upstream
batch writes renewals (some twice: legacy twins) into the legacy tables while the router gets
submissions of the same keys before and after .fr flips from legacy to Temporal in the middle,
and after the flip the batch also writes keys the Temporal side already owns. A real Temporal
worker and real legacy robots (processes of their own) run throughout, on a lenient registry (no
curExpDate check: only our keys protect).

Proved: no domain is renewed twice and no key charged twice, by either engine or both; the
batch's twins are superseded at birth (one renewal, one operation, whatever made it); every
duplicate is answered (deduplicated) or reported; no cross-engine finding."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dualrun.flags.local import LocalFlags
from dualrun.flags.model import RuleChange
from ops.legacy_engine.autorenew import create_batch
from renewals.model import Mode, RenewalRequest, new_operation_id
from renewals.operations import TERMINAL_SQL
from tests.faults.support import Processes, reconcile
from tests.harness import TODAY, Harness
from tests.integration.test_router import FLAG, flag_file, routed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPIRY = TODAY + dt.timedelta(days=10)
N = 300
# Keys by who sends them: A the batch alone (before the flip); B1 the batch and the router
# before the flip, the router again after it; B2 the batch and the router at once after the
# flip, from either end (they meet on some keys); C the router (after the flip), then the
# batch writes them again (Temporal has them).
A, B1, B2, C = range(0, 100), range(100, 150), range(150, 200), range(200, N)
TWINS = 0.15  # of each batch chunk, written twice (the month-start duplicates)


async def test_both_engines_racing_one_key_make_one_renewal_per_key(
    h: Harness, tmp_path: Path
) -> None:
    """Batch rows with twins, router submissions of the same keys on both sides of a legacy →
    Temporal flip, batch rows of keys Temporal owns, a real worker and real robots: no key
    renewed or charged by both engines; every duplicate answered or reported."""
    domains = [f"overlap{i:03d}.fr" for i in range(N)]
    h.seed("fr", *domains, expiry=EXPIRY)
    h.admin.configure("fr", strict=False, rate_limit=2000.0, burst=2000)
    reqs = [h.request(d, EXPIRY, customer_id=f"cust-{i % 7}") for i, d in enumerate(domains)]
    path = flag_file(tmp_path, fr=(Mode.LEGACY, 100))
    procs = Processes(tmp_path / "logs")
    rng = random.Random(12)
    answers: list[Any] = []
    try:
        procs.worker(h)
        procs.robots(h, robots="4", poll_interval="0.05", lease="30", retry_delay="0.2")
        async with routed(h, path) as svc:

            async def batch(keys: range, chunk: int = 25) -> None:  # as the month starts
                for i in range(keys.start, keys.stop, chunk):
                    rows = [resent(r) for r in reqs[i : min(i + chunk, keys.stop)]]
                    await create_batch(h.pool, rows, duplicate_share=TWINS, seed=i)
                    await asyncio.sleep(rng.uniform(0.0, 0.05))

            async def submit(keys: range) -> None:
                sem = asyncio.Semaphore(6)

                async def one(r: RenewalRequest) -> None:
                    async with sem:
                        answers.append(await svc.submit(resent(r)))

                await asyncio.gather(*(one(reqs[i]) for i in keys))

            await asyncio.gather(batch(A), batch(B1), submit(B1))
            LocalFlags(path, FLAG).set_rule(RuleChange("fr", Mode.TEMPORAL, 100))
            await h.wait_for(flipped(svc), within=10)
            backwards = range(B2.stop - 1, B2.start - 1, -1)  # meets the batch mid-way
            await asyncio.gather(batch(B2), submit(backwards), submit(B1), submit(C))
            await batch(C)  # keys the Temporal side already owns
            await h.wait_for(lambda: finished(h), within=120, every=0.25)
        summary = await reconcile(h, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    except BaseException:
        print(procs.tails())
        raise
    finally:
        procs.close()

    ops = await h.query(
        "SELECT operation_id, idempotency_key, domain, engine, origin, status FROM operations"
    )
    by_key: dict[str, list[dict[str, Any]]] = {}
    for o in ops:
        by_key.setdefault(o["idempotency_key"], []).append(o)
    assert len(by_key) == N
    live = {k: [o for o in v if o["status"] != "superseded"] for k, v in by_key.items()}
    assert all(o["status"] == "done" for v in live.values() for o in v), Counter(
        o["status"] for v in live.values() for o in v
    )
    # one running operation per key: a second one of any creator was superseded at birth
    assert all(len(v) == 1 for v in live.values())
    twins = {
        k for k, v in by_key.items() if len(v) > 1 and {o["origin"] for o in v} == {"autorenew"}
    }
    assert twins  # the batch did write keys twice
    temporal = {k for k, v in live.items() if v[0]["engine"] == "temporal"}
    assert temporal & {reqs[i].idempotency_key for i in C} == {reqs[i].idempotency_key for i in C}
    raced = {reqs[i].idempotency_key for i in B2}
    assert temporal & raced and raced - temporal  # the router won some keys, the batch others

    # the registry's ledger: once per key
    renewed = await h.query(
        "SELECT domain, count(*) AS n, bool_or(client_tx_id LIKE 'renew:%%') AS ours,"
        " bool_or(client_tx_id LIKE 'legacy-%%') AS legacy FROM sim_renewals GROUP BY domain"
    )
    times = {f"renew:{r['domain']}:{EXPIRY.isoformat()}": r for r in renewed}
    assert set(times) == set(by_key)
    assert {k for k, r in times.items() if r["n"] > 1} == set()  # no domain renewed twice
    assert not [k for k, r in times.items() if r["ours"] and r["legacy"]]  # never both engines
    assert {k for k, r in times.items() if r["ours"]} == temporal

    # the billing ledger, net of refunds: one engine per key, once
    money = await h.query(
        "SELECT b.idempotency_key, o.engine, count(*) FILTER (WHERE b.kind = 'charge')"
        " - count(*) FILTER (WHERE b.kind = 'refund') AS net FROM billing_ledger b"
        " JOIN operations o USING (operation_id) GROUP BY b.idempotency_key, o.engine"
    )
    charged: dict[str, dict[str, int]] = {}
    for m in money:
        if m["net"]:
            charged.setdefault(m["idempotency_key"], {})[m["engine"]] = int(m["net"])
    assert set(charged) == set(by_key) and all(len(e) == 1 for e in charged.values())
    assert {k for k, e in charged.items() if sum(e.values()) > 1} == set()  # none charged twice
    assert all(charged[k] == {"temporal": 1} for k in temporal)

    # every duplicate answered or reported
    made_twice = {k for k, v in by_key.items() if len(v) > 1}
    reported = {f.idempotency_key for f in summary.details if f.kind.value == "duplicate_operation"}
    assert reported == made_twice
    second_asks = [a for a in answers if a.deduplicated]
    assert second_asks and all(a.operation_id in owners(live) for a in second_asks)
    found = Counter((f.kind.value, f.engine) for f in summary.details)
    assert found[("cross_engine_duplicate", "legacy,temporal")] == 0
    assert set(k for k, _ in found) == {"duplicate_operation"}  # no double renewal nor charge


def resent(request: RenewalRequest) -> RenewalRequest:
    """The same renewal as another creator sends it: its own operation id."""
    return dataclasses.replace(request, operation_id=new_operation_id())


def owners(live: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {o["operation_id"] for v in live.values() for o in v}


async def finished(h: Harness) -> bool:
    rows = await h.query(f"SELECT count(*) AS n FROM operations WHERE status NOT IN {TERMINAL_SQL}")
    return bool(rows[0]["n"] == 0)


def flipped(svc: Any) -> Any:
    async def check() -> bool:
        return bool(svc.router.route("probe.fr").mode == Mode.TEMPORAL)

    return check
