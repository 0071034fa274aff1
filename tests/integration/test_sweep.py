"""The duplicate sweep and the guard after it, on real PostgreSQL, the registry simulator and
(for the scheduler) real `dualrun scheduler` processes: a renewal finished in a tick is swept
by that tick's sweep whenever it was created, and the scheduler's guard acts on what the sweep
found, counted in dualrun_rollout_rollbacks_total."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dualrun.flags.local import SEED, LocalFlags
from dualrun.flags.model import RuleChange
from legacy_adapter import LegacyEngine
from reconciler.run import SWEEP_CHECKS
from reconciler.schedule import sweep_window
from renewals.model import Mode
from tests.harness import TODAY, Harness, worker_env
from tests.integration.test_reconciler import Receiver, receiver, reconciler

pytestmark = pytest.mark.integration
__all__ = ["receiver"]  # the fixture this module uses

EXPIRY = TODAY + dt.timedelta(days=25)
EVERY = 300.0


async def test_a_sweep_covers_what_finished_in_its_tick(h: Harness, receiver: Receiver) -> None:
    """Created an hour before the tick, done (with no registry renewal) and cancelled (charge
    kept) in it, as the engines write it (finished_at): the tick's sweep finds the lost renewal
    and the missing refund."""
    lost, unrefunded = (h.request(f"{n}.fr", EXPIRY) for n in ("sweep-lost", "sweep-norefund"))
    for request in (lost, unrefunded):
        await LegacyEngine(h.pool).create(request)
    async with h.pool.connection() as conn:
        await conn.execute(
            "UPDATE operations SET created_at = created_at - interval '1 hour'"
            " WHERE operation_id = ANY(%s)",
            ([lost.operation_id, unrefunded.operation_id],),
        )
        await conn.execute(
            "UPDATE operations SET status = 'done', new_expiry = %s, finished_at = now()"
            " WHERE operation_id = %s",
            (EXPIRY + dt.timedelta(days=365), lost.operation_id),
        )
        await conn.execute(
            "UPDATE operations SET status = 'cancelled', finished_at = now()"
            " WHERE operation_id = %s",
            (unrefunded.operation_id,),
        )
    await h.charge(unrefunded, "legacy:sweep", 500)
    now = dt.datetime.now(dt.UTC)
    tick = sweep_window(now + dt.timedelta(seconds=EVERY), EVERY)  # the sweep of this tick
    assert tick.since <= now < tick.until
    summary = await reconciler(h, receiver).run(tick, "sweep", wait=True, selected=SWEEP_CHECKS)
    assert summary.findings == {"lost_renewal": 1, "refund_missing": 1}
    manual = await reconciler(h, receiver).run(tick, "manual", wait=True, selected=SWEEP_CHECKS)
    assert manual.findings == {}  # by creation (a full run's view) the tick has none of them


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_scheduler_guards_after_each_sweep(h: Harness, tmp_path: Path) -> None:
    """A Temporal renewal of .fr charged twice: the scheduler's next sweep finds the double
    charge, its guard flips .fr to legacy and counts the rollback in the metric."""
    boot = tmp_path / "bootstrap.json"
    boot.write_text(SEED.read_text())
    LocalFlags(boot, "dualrun.renewals").set_rule(RuleChange("fr", Mode.TEMPORAL, 100))
    request = h.request("sched-guard.fr", EXPIRY)
    async with h.pool.connection() as conn, conn.transaction():
        await h.engine.submit(conn, request)  # a Temporal operation (its workflow not needed)
    for charge_key in (request.idempotency_key, "stray-sched"):
        await h.charge(request, charge_key)
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        **worker_env(h.settings),
        "DUALRUN_STATE_DIR": str(tmp_path),
        "DUALRUN_FLAGS_BOOTSTRAP": str(boot),
    }
    cmd = [sys.executable, "-m", "dualrun", "scheduler", "--sweep-every", "2",
           "--catch-up-days", "0", "--metrics-port", str(port)]  # fmt: skip
    log = tmp_path / "scheduler.log"
    proc = subprocess.Popen(  # noqa: ASYNC220
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"), start_new_session=True
    )
    try:

        async def rolled_back() -> bool:
            rule = LocalFlags(boot, "dualrun.renewals").state().rule("fr")
            return rule is not None and rule.mode == Mode.LEGACY

        await h.wait_for(rolled_back, within=60, every=0.2)  # a guard against a hang
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, log.read_text()[-3000:]
    assert 'dualrun_rollout_rollbacks_total{tld="fr"} 1.0' in metrics
    assert 'dualrun_rollout_rollbacks_total{tld="de"} 0.0' in metrics  # primed, untouched
    events = await h.query("SELECT action, actor, findings FROM rollout_events WHERE tld = 'fr'")
    assert [(e["action"], e["actor"]) for e in events] == [("guard", "guard")]
    assert events[0]["findings"] == [f"double_charge:{request.idempotency_key}"]
