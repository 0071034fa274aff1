"""The seed's month-start lesson under load: the upstream batch writes renewals into the legacy
tables while the router gets submissions of the same keys, and .fr flips from legacy to Temporal
in the middle, on a lenient registry (no curExpDate check: only our keys protect). No domain is
renewed twice, no key is charged twice, every duplicate is answered or reported."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest

from dualrun.flags.local import LocalFlags
from dualrun.flags.model import RuleChange
from ops.legacy_engine.autorenew import create_batch
from ops.legacy_engine.robots import RobotConfig, Robots
from reconciler.alerts import Webhook
from reconciler.model import Window
from reconciler.run import Reconciler
from reconciler.sources import ApiLedger
from renewals.billing import BillingLedger
from renewals.model import Mode, RenewalRequest
from renewals.operations import TERMINAL_SQL
from tests.harness import TODAY, Harness
from tests.integration.test_router import FLAG, flag_file, routed

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPIRY = TODAY + dt.timedelta(days=10)
N = 120  # domains: the batch writes 0..79, the router gets 40..119 (40 keys from both)


async def test_batch_router_and_a_flip_make_one_renewal_per_key(h: Harness, tmp_path: Path) -> None:
    """Batch rows, router submissions of the same keys and a legacy → Temporal flip mid-burst:
    zero double renewals, zero keys charged twice, every duplicate answered or reported."""
    domains = [f"overlap{i:03d}.fr" for i in range(N)]
    h.seed("fr", *domains, expiry=EXPIRY)
    h.admin.configure("fr", strict=False, rate_limit=500.0, burst=500)
    requests = [h.request(d, EXPIRY, customer_id=f"cust-{i % 7}") for i, d in enumerate(domains)]
    path = flag_file(tmp_path, fr=(Mode.LEGACY, 100))
    robots = Robots(h.pool, h.registry, BillingLedger(h.pool),
                    RobotConfig(robots=4, poll_interval_s=0.05, retry_delay_s=0.2))  # fmt: skip
    stop = asyncio.Event()
    rng = random.Random(7)
    answers: list[Any] = []
    async with h.workers(), routed(h, path) as svc:
        legacy = asyncio.create_task(robots.run(stop))

        async def batch() -> None:  # the upstream batch, in chunks, as the month starts
            chunk = requests[:80]
            for i in range(0, len(chunk), 10):
                await create_batch(h.pool, [_resent(r) for r in chunk[i : i + 10]])
                await asyncio.sleep(rng.uniform(0.0, 0.1))

        async def router() -> None:
            for i, r in enumerate(requests[40:]):
                if i == 40:  # half-way: .fr moves to Temporal (the router rereads the file)
                    LocalFlags(path, FLAG).set_rule(RuleChange("fr", Mode.TEMPORAL, 100))
                    await h.wait_for(_flipped(svc), within=10)
                answers.append(await svc.submit(_resent(r)))
                await asyncio.sleep(rng.uniform(0.0, 0.02))

        await asyncio.gather(batch(), router())

        async def finished() -> bool:
            rows = await h.query(
                f"SELECT count(*) AS n FROM operations WHERE status NOT IN {TERMINAL_SQL}"
            )
            return rows[0]["n"] == 0

        await h.wait_for(finished, within=120, every=0.2)
        stop.set()
        await legacy
    renewed = [e["domain"] for e in h.admin.ledger("fr", limit=10_000)]
    assert sorted(renewed) == sorted(set(renewed)) and len(renewed) == N  # once each, all
    charged = await h.query(
        "SELECT idempotency_key, count(*) FILTER (WHERE kind = 'charge')"
        " - count(*) FILTER (WHERE kind = 'refund') AS net FROM billing_ledger"
        " GROUP BY idempotency_key"
    )
    assert len(charged) == N and {c["net"] for c in charged} == {1}
    engines = await h.query(
        "SELECT idempotency_key, count(DISTINCT engine) FILTER (WHERE status = 'done') AS n"
        " FROM operations GROUP BY idempotency_key"
    )
    assert {e["n"] for e in engines} == {1}  # one engine did each renewal
    both = {r.idempotency_key for r in requests[40:80]}
    answered = {a.idempotency_key for a in answers if a.deduplicated}
    superseded = {
        r["idempotency_key"]
        for r in await h.query("SELECT idempotency_key FROM operations WHERE status = 'superseded'")
    }
    assert answered | superseded == both and not answered & superseded
    assert any(a.engine == "temporal" for a in answers)  # the flip took effect
    now = dt.datetime.now(dt.UTC)
    rec = Reconciler(h.pool, ApiLedger(h.registry, h.settings.tlds), Webhook(None),
                     temporal=h.client, task_queue=h.settings.task_queue)  # fmt: skip
    summary = await rec.run(Window(now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1)))
    reported = {f.idempotency_key for f in summary.details if f.kind == "duplicate_operation"}
    assert reported == superseded  # two operations of one key: reported, harmless
    assert set(summary.findings) <= {"duplicate_operation"}, summary.findings


def _resent(request: RenewalRequest) -> RenewalRequest:
    """The same renewal as another creator sends it: its own operation id."""
    return RenewalRequest(
        request.domain, request.years, request.current_expiry, request.customer_id,
        f"op-{random.getrandbits(48):012x}",
    )  # fmt: skip


def _flipped(svc: Any) -> Any:
    async def check() -> bool:
        return bool(svc.router.route("probe.fr").mode == Mode.TEMPORAL)

    return check
