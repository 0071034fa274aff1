"""The reference legacy engine and its adapter against real PostgreSQL and the registry simulator.

Robots run in process (LegacyEngine) or as real `dualrun legacy-engine` processes, with small
poll intervals, leases and retry delays so each test takes seconds.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import os
import random
import signal
import subprocess
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from legacy_adapter.errors import CancelRefused, RequeueRefused
from ops.legacy_engine.autorenew import create_batch
from renewals import operations
from renewals.model import OperationStatus, add_years
from renewals.registry import RegistryClient
from tests.integration.legacy_support import (
    EXPIRY,
    PRICE,
    STEP_EVENTS,
    Legacy,
    cli_env,
    dualrun,
    log_events,
    poll,
    run_cli,
)

pytestmark = [pytest.mark.integration]


# -- 1. one renewal ------------------------------------------------------------------------------
async def test_renewal_is_renewed_once_charged_once_and_reads_back_done(legacy: Legacy) -> None:
    """A renewal submitted through the adapter is renewed once, charged once and reads back done."""
    legacy.seed("com", "single.com")
    op = await legacy.submit("single.com")
    assert (await operations.get(legacy.pool, op)).status == OperationStatus.TODO

    stats = await legacy.drain()

    outcome = await operations.get(legacy.pool, op)
    assert outcome.status == OperationStatus.DONE
    assert outcome.new_expiry == add_years(EXPIRY, 1)
    assert outcome.charged_cents == PRICE["com"]
    assert outcome.attempts == 1 and outcome.error_code is None
    ledger = legacy.admin.ledger("com", domain="single.com")
    assert len(ledger) == 1
    assert outcome.registry_transaction_id == ledger[0]["server_tx_id"]
    assert await legacy.charges(op) == [("charge", PRICE["com"])]
    assert (stats.processed, stats.done) == (1, 1)
    assert [e["event"] for e in await operations.events(legacy.pool, op)] == STEP_EVENTS


# -- 2. many robots, no double processing -----------------------------------------------------
async def test_200_operations_4_robots_each_processed_exactly_once(legacy: Legacy) -> None:
    """200 operations, 4 robots: one renewal and one charge per operation, all done."""
    legacy.admin.configure("com", rate_limit=100_000.0, burst=100_000)
    domains = [f"bulk{i:03d}.com" for i in range(200)]
    legacy.seed("com", *domains)
    ops = [await legacy.submit(d) for d in domains]

    stats = await legacy.drain(robots=4, within=120)

    assert (stats.processed, stats.done, stats.retried, stats.failed) == (200, 200, 0, 0)
    ledger = legacy.admin.ledger("com", limit=10_000)
    assert Counter(r["domain"] for r in ledger) == Counter(domains)
    charges = await legacy.query(
        "SELECT operation_id, count(*) AS n FROM billing_ledger WHERE kind = 'charge'"
        " GROUP BY operation_id"
    )
    assert {r["operation_id"]: r["n"] for r in charges} == dict.fromkeys(ops, 1)
    rows = await legacy.query(
        "SELECT status, attempts, count(*) AS n FROM operations GROUP BY status, attempts"
    )
    assert [(r["status"], r["attempts"], r["n"]) for r in rows] == [("done", 1, 200)]
    renews = await legacy.query(
        "SELECT operation_id, count(*) AS n FROM operation_events WHERE event = 'renew.started'"
        " GROUP BY operation_id"
    )
    assert {r["operation_id"]: r["n"] for r in renews} == dict.fromkeys(ops, 1)
    robots = await legacy.query(
        "SELECT DISTINCT detail->>'robot' AS robot FROM operation_events WHERE event <> 'created'"
    )
    assert {r["robot"] for r in robots} == {f"test/robot-{n}" for n in range(4)}  # all worked


# -- 3. a robot killed mid-renewal ----------------------------------------------------------
@pytest.mark.faults
async def test_robot_killed_mid_renewal_is_finished_once_by_another(
    legacy: Legacy, tmp_path: Path
) -> None:
    """SIGKILL a robot process while its renew is in flight: another finishes it, renewed once."""
    legacy.seed("fr", "killed.fr")
    legacy.admin.configure("fr", latency_ms=800)
    log = tmp_path / "robot.log"
    args = ["legacy-engine", "--robots", "1", "--poll-interval", "0.05", "--lease", "3"]
    with log.open("wb") as out, dualrun(args, cli_env(legacy), out, subprocess.STDOUT) as robot:
        op = await legacy.submit("killed.fr")
        await legacy.until(op, lambda r: r["step"] == "renew", within=60)

        async def renew_reached_registry() -> bool:  # status, price, then the renew itself
            return int(legacy.admin.traffic("fr")["admitted"]) >= 3

        await poll(renew_reached_registry)
        os.killpg(robot.pid, signal.SIGKILL)
        assert robot.wait(10) == -signal.SIGKILL
    legacy.admin.configure("fr", latency_ms=0)
    held = await legacy.row(op)
    assert (held["status"], held["step"]) == ("doing", "renew")
    assert held["lease_owner"].endswith("/robot-0")

    stats = await legacy.drain(lease_s=3.0, owner="rescuer")

    row = await legacy.row(op)
    assert row["status"] == "done", row
    assert row["new_expiry"] == add_years(EXPIRY, 1)
    assert row["attempts"] == 1  # a takeover is not a new attempt
    assert (await legacy.registry.status("killed.fr")).expiry == add_years(EXPIRY, 1)
    assert len(legacy.admin.ledger("fr", domain="killed.fr")) == 1
    assert await legacy.charges(op) == [("charge", PRICE["fr"])]
    assert stats.done == 1
    assert "legacy.engine.started" in log.read_text()


async def test_a_robot_extends_its_lease_at_each_step(legacy: Legacy) -> None:
    """A renewal longer than the lease, each step shorter: no other robot takes it over."""
    legacy.seed("com", "slow.com")
    legacy.admin.configure("com", latency_ms=350)  # status + price + renew > the 0.8 s lease
    op = await legacy.submit("slow.com")
    stats = await legacy.drain(robots=3, lease_s=0.8)
    row = await legacy.row(op)
    assert (row["status"], row["attempts"]) == ("done", 1)
    events = await operations.events(legacy.pool, op)
    assert [e["event"] for e in events] == STEP_EVENTS  # no step was started twice
    assert len({e["detail"].get("robot") for e in events[1:]}) == 1
    # the robot that renewed recorded its own registry transaction (no takeover resolved it)
    ledger = legacy.admin.ledger("com", domain="slow.com")
    assert [r["server_tx_id"] for r in ledger] == [row["registry_transaction_id"]]
    assert (stats.processed, stats.done) == (1, 1)


async def test_renew_timed_out_after_commit_is_retried_blindly_and_refused(
    legacy: Legacy,
) -> None:
    """Legacy flaw kept on purpose: a renew committed but unanswered is retried like any timeout,
    so a strict registry refuses the replay and the operation fails although it was renewed."""
    legacy.seed("fr", "ambiguous.fr")
    legacy.admin.configure("fr", commit_timeout_rate=1.0, hold_s=3.0)
    async with RegistryClient(base_url=legacy.sim_url, timeout_s=0.5) as impatient:
        op = await legacy.submit("ambiguous.fr")
        async with legacy.running(registry=impatient, retry_delay_s=3600):
            row = await legacy.until(op, lambda r: r["status"] == "error")
        assert (row["step"], row["error_code"], row["attempts"]) == (
            "renew",
            "registry_timeout",
            1,
        )
        assert len(legacy.admin.ledger("fr", domain="ambiguous.fr")) == 1  # it did commit
        await legacy.query(  # its next attempt, now
            "UPDATE operations SET next_attempt_at = now() WHERE operation_id = %s RETURNING 1",
            op,
        )
        await legacy.drain(registry=impatient)
    row = await legacy.row(op)
    assert (row["status"], row["attempts"], row["error_code"]) == ("failed", 2, "expiry_mismatch")
    assert row["new_expiry"] is None
    assert (await legacy.registry.status("ambiguous.fr")).expiry == add_years(EXPIRY, 1)
    assert len(legacy.admin.ledger("fr", domain="ambiguous.fr")) == 1
    assert await legacy.charges(op) == [("charge", PRICE["fr"])]


# -- 4. duplicates from the auto-renew batch ----------------------------------------------------
async def _duplicated_batch(legacy: Legacy, tld: str, n: int) -> dict[str, list[dict[str, Any]]]:
    domains = [f"twin{i}.{tld}" for i in range(n)]
    legacy.seed(tld, *domains)
    result = await create_batch(  # written around the database's guards: both twins run
        legacy.pool,
        [legacy.request(d) for d in domains],
        duplicate_share=1.0,
        seed=7,
        around_guards=True,
    )
    assert result.created == 2 * n and len(result.duplicated_keys) == n
    await legacy.drain(robots=2)
    rows = await legacy.query("SELECT * FROM operations ORDER BY idempotency_key, finished_at")
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row["idempotency_key"], []).append(row)
    assert sorted(by_key) == sorted(result.duplicated_keys)
    assert all(
        len(pair) == 2 and {r["origin"] for r in pair} == {"autorenew"} for pair in by_key.values()
    )
    return by_key


async def test_batch_duplicates_strict_registry_refuses_the_second(legacy: Legacy) -> None:
    """Strict registry: of each duplicate pair one is renewed, the other fails expiry_mismatch."""
    by_key = await _duplicated_batch(legacy, "fr", 4)
    for key, pair in by_key.items():
        assert sorted(r["status"] for r in pair) == ["done", "failed"], key
        done = next(r for r in pair if r["status"] == "done")
        failed = next(r for r in pair if r["status"] == "failed")
        assert done["new_expiry"] == add_years(EXPIRY, 1)
        assert failed["error_code"] == "expiry_mismatch" and failed["step"] == "renew"
        assert failed["attempts"] == 1  # a refusal is permanent: no retry
        domain = pair[0]["domain"]
        assert len(legacy.admin.ledger("fr", domain=domain)) == 1
        # the legacy engine charges before the registry refuses, and keeps the money: the
        # double charge the reconciler has to find
        charges = await legacy.query(
            "SELECT kind FROM billing_ledger WHERE idempotency_key = %s", key
        )
        assert [c["kind"] for c in charges] == ["charge", "charge"]


async def test_batch_duplicates_lenient_registry_renews_and_charges_twice(legacy: Legacy) -> None:
    """Lenient registry: each duplicate pair renews the domain twice and charges it twice."""
    legacy.admin.configure("info", strict=False)
    by_key = await _duplicated_batch(legacy, "info", 4)
    for key, pair in by_key.items():
        assert [r["status"] for r in pair] == ["done", "done"], key
        assert sorted(r["new_expiry"] for r in pair) == [add_years(EXPIRY, 1), add_years(EXPIRY, 2)]
        assert len(legacy.admin.ledger("info", domain=pair[0]["domain"])) == 2
        charges = await legacy.query(
            "SELECT kind, amount_cents FROM billing_ledger WHERE idempotency_key = %s", key
        )
        assert [(c["kind"], c["amount_cents"]) for c in charges] == [("charge", PRICE["info"])] * 2


async def test_batch_twins_are_superseded_at_birth_and_renew_once(legacy: Legacy) -> None:
    """Lenient registry, the batch writing every key twice through the database's guards: the
    second row of each key is superseded at birth (pointing to the first) and never runs; each
    domain is renewed once and charged once."""
    legacy.admin.configure("info", strict=False)
    domains = [f"guarded{i}.info" for i in range(4)]
    legacy.seed("info", *domains)
    result = await create_batch(
        legacy.pool, [legacy.request(d) for d in domains], duplicate_share=1.0, seed=7
    )
    assert result.created == 8
    await legacy.drain(robots=2)
    rows = await legacy.query("SELECT * FROM operations ORDER BY idempotency_key, created_at")
    by_key: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(row["idempotency_key"], []).append(row)
    for key, pair in by_key.items():
        twin = next(r for r in pair if r["superseded_by"] is not None)
        first = next(r for r in pair if r is not twin)
        assert (first["status"], twin["status"]) == ("done", "superseded"), key
        assert twin["superseded_by"] == first["operation_id"]
        assert len(legacy.admin.ledger("info", domain=first["domain"])) == 1
        charges = await legacy.query(
            "SELECT kind FROM billing_ledger WHERE idempotency_key = %s", key
        )
        assert [c["kind"] for c in charges] == ["charge"]


# -- 5. cancellation -----------------------------------------------------------------------------
async def test_cancel_during_charge_step_refunds(legacy: Legacy) -> None:
    """A cancel while the robot is charging is honoured before the registry step, with a refund."""
    legacy.seed("com", "cancelme.com")
    op = await legacy.submit("cancelme.com")
    locker = await psycopg.AsyncConnection.connect(legacy.dsn)
    try:
        await locker.execute("LOCK TABLE billing_ledger IN ACCESS EXCLUSIVE MODE")
        async with legacy.running():
            await legacy.until(op, lambda r: r["step"] == "charge")
            requested = await legacy.adapter.cancel_now(op)
            assert requested.status == OperationStatus.DOING  # flagged, for the robot to honour
            await locker.rollback()  # the charge goes through, then the robot sees the cancel
            row = await legacy.until(op, lambda r: r["status"] == "cancelled")
    finally:
        await locker.close()
    assert row["cancel_requested_at"] is not None and row["finished_at"] is not None
    assert row["charged_cents"] == PRICE["com"] and row["refunded_cents"] == PRICE["com"]
    assert row["lease_owner"] is None
    assert await legacy.charges(op) == [("charge", PRICE["com"]), ("refund", PRICE["com"])]
    assert legacy.admin.ledger("com", domain="cancelme.com") == []
    events = [e["event"] for e in await operations.events(legacy.pool, op)]
    assert "cancel_requested" in events and events[-1] == "cancelled"
    assert "renew.started" not in events


async def test_cancel_of_a_todo_operation_is_immediate(legacy: Legacy) -> None:
    """Cancelling an operation no robot has picked up cancels it at once, nothing charged."""
    legacy.seed("com", "early.com")
    op = await legacy.submit("early.com")
    outcome = await legacy.adapter.cancel_now(op)
    assert outcome.status == OperationStatus.CANCELLED and outcome.finished_at is not None
    assert (await legacy.adapter.cancel_now(op)).status == OperationStatus.CANCELLED  # idempotent
    stats = await legacy.drain()
    assert stats.processed == 0
    assert (await legacy.row(op))["status"] == "cancelled"
    assert await legacy.charges(op) == []
    assert legacy.admin.ledger("com") == []


async def test_cancel_after_the_registry_step_is_refused(legacy: Legacy) -> None:
    """Cancel is refused once the renew step began, and for a finished renewal."""
    legacy.seed("com", "late.com", "finished.com")
    legacy.admin.configure("com", latency_ms=300)
    op = await legacy.submit("late.com")
    async with legacy.running():
        await legacy.until(op, lambda r: r["step"] == "renew")
        with pytest.raises(CancelRefused) as refused:
            await legacy.adapter.cancel_now(op)
        assert refused.value.step == "renew"
        row = await legacy.until(op, lambda r: r["status"] == "done")
    assert row["cancel_requested_at"] is None and row["refunded_cents"] is None
    assert len(legacy.admin.ledger("com", domain="late.com")) == 1

    legacy.admin.configure("com", latency_ms=0)
    finished = await legacy.submit("finished.com")
    await legacy.drain()
    with pytest.raises(CancelRefused) as refused:
        await legacy.adapter.cancel_now(finished)
    assert refused.value.status == "done"
    assert await legacy.charges(finished) == [("charge", PRICE["com"])]


async def test_cancels_racing_the_robots_are_honoured_or_refused_never_both(
    legacy: Legacy,
) -> None:
    """Cancels fired at random moments: each accepted one ends cancelled and refunded with no
    renewal; each refused one ends done, renewed and charged once."""
    legacy.admin.configure("com", latency_ms=5, rate_limit=100_000.0, burst=100_000)
    domains = [f"race{i:02d}.com" for i in range(40)]
    legacy.seed("com", *domains)
    rng = random.Random(11)
    accepted: dict[str, bool] = {}

    async def cancel_later(op: str, delay: float) -> None:
        await asyncio.sleep(delay)  # a random moment of the renewal, not a timing assertion
        try:
            await legacy.adapter.cancel_now(op)
            accepted[op] = True
        except CancelRefused:
            accepted[op] = False

    async with legacy.running(robots=4):
        ops = [await legacy.submit(d) for d in domains]
        await asyncio.gather(*(cancel_later(op, rng.uniform(0, 0.4)) for op in ops))
    await legacy.drain(robots=4)
    for op in ops:
        row = await legacy.row(op)
        renewals = legacy.admin.ledger("com", domain=row["domain"])
        money = await legacy.charges(op)
        if accepted[op]:
            assert row["status"] == "cancelled", row
            assert renewals == []
            assert money in ([], [("charge", PRICE["com"]), ("refund", PRICE["com"])]), money
        else:
            assert row["status"] == "done", row
            assert len(renewals) == 1 and money == [("charge", PRICE["com"])]
    assert set(accepted.values()) == {True, False}  # both sides of the race happened


# -- 6. retries, the legacy way ---------------------------------------------------------------
async def test_transient_errors_are_retried_after_a_delay_then_finish(legacy: Legacy) -> None:
    """An outage puts the operation in error with a later next attempt; it finishes afterwards."""
    legacy.seed("com", "flaky.com")
    legacy.admin.configure("com", error_rate=1.0)
    op = await legacy.submit("flaky.com")
    async with legacy.running(retry_delay_s=1.0):
        row = await legacy.until(op, lambda r: r["status"] == "error")
    assert row["attempts"] == 1
    assert row["error_code"] == "registry_unavailable"
    assert row["lease_owner"] is None and row["finished_at"] is None
    assert row["next_attempt_at"] - row["updated_at"] >= dt.timedelta(seconds=0.99)
    assert await legacy.charges(op) == []  # it failed at the status step

    legacy.admin.configure("com", error_rate=0.0)
    stats = await legacy.drain(retry_delay_s=1.0)
    row = await legacy.row(op)
    assert row["status"] == "done" and row["attempts"] == 2
    assert row["error_code"] is None and row["error_message"] is None
    assert stats.done == 1
    assert len(legacy.admin.ledger("com", domain="flaky.com")) == 1


async def test_max_attempts_reached_ends_failed(legacy: Legacy) -> None:
    """With max_attempts reached the operation ends failed, not retried again."""
    legacy.seed("com", "down.com")
    legacy.admin.configure("com", error_rate=1.0)
    op = await legacy.submit("down.com")
    stats = await legacy.drain(max_attempts=3, retry_delay_s=0.05)
    row = await legacy.row(op)
    assert (row["status"], row["attempts"], row["max_attempts"]) == ("failed", 3, 3)
    assert row["error_code"] == "registry_unavailable" and row["finished_at"] is not None
    assert (stats.retried, stats.failed) == (2, 1)
    events = [e["event"] for e in await operations.events(legacy.pool, op)]
    assert events.count("error") == 2 and events[-1] == "failed"


# -- 7. requeue ----------------------------------------------------------------------------------
async def test_requeue_puts_a_failed_operation_back_and_it_finishes(legacy: Legacy) -> None:
    """requeue sends a failed operation back to todo and the robots finish it; done is refused."""
    legacy.seed("com", "again.com")
    legacy.admin.configure("com", error_rate=1.0)
    op = await legacy.submit("again.com")
    await legacy.drain(max_attempts=1)
    assert (await legacy.row(op))["status"] == "failed"

    legacy.admin.configure("com", error_rate=0.0)
    requeued = await legacy.adapter.requeue(op)
    assert requeued.status == OperationStatus.TODO and requeued.attempts == 0
    assert requeued.error_code is None and requeued.finished_at is None
    await legacy.drain(max_attempts=1)
    outcome = await operations.get(legacy.pool, op)
    assert outcome.status == OperationStatus.DONE and outcome.attempts == 1
    assert outcome.new_expiry == add_years(EXPIRY, 1)
    assert len(legacy.admin.ledger("com", domain="again.com")) == 1
    assert await legacy.charges(op) == [("charge", PRICE["com"])]
    with pytest.raises(RequeueRefused) as refused:
        await legacy.adapter.requeue(op)
    assert refused.value.status == "done"


async def test_requeue_refuses_an_operation_a_robot_holds(legacy: Legacy) -> None:
    """requeue of an operation under a live lease is refused (two robots would run it)."""
    legacy.seed("com", "held.com")
    legacy.admin.configure("com", latency_ms=400)
    op = await legacy.submit("held.com")
    async with legacy.running():
        await legacy.until(op, lambda r: r["status"] == "doing")
        with pytest.raises(RequeueRefused):
            await legacy.adapter.requeue(op)
        await legacy.until(op, lambda r: r["status"] == "done")


# -- 8. the auto-renew batch command ----------------------------------------------------------
def _write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["domain", "current_expiry", "customer_id", "years"])
        writer.writerows(rows)
    return path


async def test_autorenew_batch_command_creates_rows_with_duplicates(
    legacy: Legacy, tmp_path: Path
) -> None:
    """`dualrun autorenew-batch --duplicate-share 0.5 --json` writes N + N/2 rows in legacy."""
    rows = [(f"batch{i}.fr", EXPIRY.isoformat(), f"cust-{i}", "1") for i in range(10)]
    path = _write_csv(tmp_path / "batch.csv", rows)
    status, out, err = run_cli(
        legacy,
        "autorenew-batch",
        "--file",
        str(path),
        "--duplicate-share",
        "0.5",
        "--seed",
        "3",
        "--json",
    )
    assert status == 0, err
    result = json.loads(out)
    assert result["created"] == 15 and len(result["duplicated_keys"]) == 5
    assert len(result["operation_ids"]) == 15
    counts = await legacy.query(
        "SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys,"
        " count(*) FILTER (WHERE engine = 'legacy' AND origin = 'autorenew'"
        "                  AND status = 'todo') AS legacy_todo,"
        " count(*) FILTER (WHERE status = 'superseded') AS twins"
        " FROM operations"
    )
    assert counts == [{"n": 15, "keys": 10, "legacy_todo": 10, "twins": 5}]  # twins never run
    doubled = await legacy.query(
        "SELECT idempotency_key FROM operations GROUP BY idempotency_key HAVING count(*) = 2"
    )
    assert sorted(r["idempotency_key"] for r in doubled) == sorted(result["duplicated_keys"])


async def test_autorenew_batch_command_rejects_a_bad_file_and_writes_nothing(
    legacy: Legacy, tmp_path: Path
) -> None:
    """A bad domain on line 3 of the CSV: exit 2, the field and line named, no row written."""
    rows = [
        ("good.fr", EXPIRY.isoformat(), "cust-1", "1"),
        ("bad_name!.fr", EXPIRY.isoformat(), "cust-2", "1"),
        ("fine.fr", EXPIRY.isoformat(), "cust-3", "1"),
    ]
    path = _write_csv(tmp_path / "bad.csv", rows)
    status, out, err = run_cli(legacy, "autorenew-batch", "--file", str(path), "--json")
    assert status == 2, (out, err)
    assert "domain" in err and "bad.csv line 3" in err, err
    assert out == ""
    assert await legacy.count("SELECT count(*) AS n FROM operations") == 0
    assert await legacy.count("SELECT count(*) AS n FROM operation_events") == 0

    blank = tmp_path / "blank.csv"  # a blank line still counts as a line of the file
    blank.write_text(
        f"domain,current_expiry,customer_id\n\nok.fr,{EXPIRY},c1\nok2.fr,not-a-date,c2\n"
    )
    status, _, err = run_cli(legacy, "autorenew-batch", "--file", str(blank))
    assert status == 2 and "current_expiry" in err and "blank.csv line 4" in err, err
    assert await legacy.count("SELECT count(*) AS n FROM operations") == 0


# -- 9 and 10. the engine command: --drain, --json, and its log lines -------------------------
async def test_legacy_engine_drain_command_exits_with_counts(legacy: Legacy) -> None:
    """`dualrun legacy-engine --drain --json` exits 0 once no work is left, printing its counts."""
    domains = [f"drain{i}.com" for i in range(6)]
    legacy.seed("com", *domains)
    legacy.seed("com", "locked.com", statuses=["serverRenewProhibited"])
    for d in [*domains, "locked.com"]:
        await legacy.submit(d)
    status, out, err = run_cli(
        legacy, "legacy-engine", "--drain", "--json", "--robots", "3", "--poll-interval", "0.05"
    )
    assert status == 0, err
    assert json.loads(out) == {
        "processed": 7,
        "done": 6,
        "failed": 1,
        "retried": 0,
        "cancelled": 0,
        "waited_429": 0,
    }
    assert await legacy.count("SELECT count(*) AS n FROM operations WHERE status = 'done'") == 6
    assert (
        await legacy.count(
            "SELECT count(*) AS n FROM operations WHERE status = 'failed'"
            " AND error_code = 'renew_prohibited'"
        )
        == 1
    )

    status, out, err = run_cli(legacy, "legacy-engine", "--drain", "--json")  # nothing left
    assert status == 0, err
    assert json.loads(out)["processed"] == 0


async def test_renewal_finished_log_line(legacy: Legacy) -> None:
    """Each finished renewal logs legacy.renewal.finished (JSON) with domain, status, attempts,
    duration_s."""
    legacy.seed("com", "logged.com")
    legacy.seed("com", "refused.com", statuses=["clientRenewProhibited"])
    await legacy.submit("logged.com")
    await legacy.submit("refused.com")
    status, _, err = run_cli(
        legacy, "legacy-engine", "--drain", "--robots", "1", "--poll-interval", "0.05"
    )
    assert status == 0, err
    lines = {e["domain"]: e for e in log_events(err, "legacy.renewal.finished")}
    assert sorted(lines) == ["logged.com", "refused.com"]
    for entry in lines.values():
        assert entry["level"] == "info"
        assert entry["attempts"] == 1
        assert isinstance(entry["duration_s"], float) and entry["duration_s"] >= 0
        assert entry["operation_id"].startswith("op-")
    assert lines["logged.com"]["status"] == "done"
    assert lines["refused.com"]["status"] == "failed"
