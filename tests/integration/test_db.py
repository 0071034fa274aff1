"""Migrations and the billing ledger on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from renewals.billing import BillingConflict, BillingLedger, NothingToRefund
from renewals.db import pool as pool_module
from renewals.db.pool import async_pool

pytestmark = pytest.mark.integration

TABLES = {
    "operations",
    "operation_events",
    "routing_decisions",
    "billing_ledger",
    "shadow_plans",
    "reconciliation_runs",
    "findings",
    "schema_migrations",
    "sim_domains",
    "sim_renewals",
}


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


def _dualrun(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dualrun", *args],
        env={"PATH": "/usr/bin:/bin", "DUALRUN_DATABASE_URL": dsn, "DUALRUN_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_twice_changes_nothing_the_second_time(empty_schema_dsn: str) -> None:
    """`dualrun db migrate` applies everything once; the second run applies nothing."""
    first = _dualrun(empty_schema_dsn, "db", "migrate", "--json")
    assert first.returncode == 0, first.stderr
    assert '"core": [1' in first.stdout
    assert _tables(empty_schema_dsn) >= TABLES
    second = _dualrun(empty_schema_dsn, "db", "migrate", "--json")
    assert second.returncode == 0, second.stderr
    assert '"applied": {"core": [], "registry_sim": []}' in second.stdout


def test_migrate_from_two_processes_at_once(empty_schema_dsn: str) -> None:
    """Two processes migrating the same schema together: no error, applied exactly once."""
    env = {"PATH": "/usr/bin:/bin", "DUALRUN_DATABASE_URL": empty_schema_dsn}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dualrun", "db", "migrate", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [r[1] for r in results]
    with psycopg.connect(empty_schema_dsn) as conn:
        rows = conn.execute(
            "SELECT component, version, count(*) FROM schema_migrations GROUP BY 1, 2"
        ).fetchall()
    assert rows and all(count == 1 for _, _, count in rows)
    applied_now = sum(out.count('"core": [1') for out, _ in results)
    assert applied_now == 1


def test_bad_database_url_fails_without_leaking_the_password(empty_schema_dsn: str) -> None:
    """An unreachable database fails with exit 1 and the password masked."""
    result = _dualrun("postgresql://app:hunter2@127.0.0.1:1/x", "db", "migrate")
    assert result.returncode == 1
    assert "hunter2" not in result.stderr + result.stdout


def test_operations_allow_duplicate_keys_but_decisions_do_not(db_dsn: str) -> None:
    """Two operations may share a key (duplicates must be representable); two decisions may not."""
    insert_op = """INSERT INTO operations (operation_id, idempotency_key, domain, tld, years,
                   current_expiry, customer_id, engine) VALUES (%s, 'renew:a.fr:2027-01-01',
                   'a.fr', 'fr', 1, '2027-01-01', 'c1', 'legacy')"""
    insert_decision = """INSERT INTO routing_decisions (idempotency_key, operation_id, domain,
                   tld, current_expiry, years, customer_id, mode, engine, flag_source, reason)
                   VALUES ('renew:a.fr:2027-01-01', %s, 'a.fr', 'fr', '2027-01-01', 1, 'c1',
                   'legacy', 'legacy', 'default', 'test')"""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(insert_op, ("op-1",))
        conn.execute(insert_op, ("op-2",))
        conn.execute(insert_decision, ("op-1",))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert_decision, ("op-2",))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert_op.replace("1, '2027", "11, '2027"), ("op-3",))


async def test_charge_is_idempotent_per_key_and_refund_once(db_dsn: str) -> None:
    """A keyed charge replays to the same entry; another amount under the key is a conflict."""
    pool = await async_pool(db_dsn, max_size=2)
    try:
        ledger = BillingLedger(pool)
        args = {
            "charge_key": "renew:a.fr:2027-01-01",
            "idempotency_key": "renew:a.fr:2027-01-01",
            "operation_id": "op-1",
            "customer_id": "c1",
            "amount_cents": 1200,
            "currency": "EUR",
        }
        first = await ledger.charge(**args)
        again = await ledger.charge(**args)
        assert again.entry_id == first.entry_id and again.replayed and not first.replayed
        with pytest.raises(BillingConflict) as err:
            await ledger.charge(**{**args, "amount_cents": 999})
        assert err.value.field == "amount_cents"
        refund = await ledger.refund(charge_key=args["charge_key"])
        assert refund.amount_cents == 1200
        assert (await ledger.refund(charge_key=args["charge_key"])).entry_id == refund.entry_id
        with pytest.raises(NothingToRefund):
            await ledger.refund(charge_key="nope")
        kinds = [e.kind.value for e in await ledger.entries(args["idempotency_key"])]
        assert kinds == ["charge", "refund"]
        # the legacy engine sends a fresh charge key per call: it can charge twice
        await ledger.charge(**{**args, "charge_key": "legacy:op-1:a"})
        await ledger.charge(**{**args, "charge_key": "legacy:op-1:b"})
        assert len(await ledger.entries(args["idempotency_key"])) == 4
    finally:
        await pool.close()


async def test_pool_replaces_a_connection_whose_backend_died(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once its check is due, a connection killed under the pool is replaced, not handed out."""
    monkeypatch.setattr(pool_module, "CHECK_EVERY_S", 0.05)
    pool = await async_pool(db_dsn, max_size=1, autocommit=True)
    try:
        async with pool.connection() as conn:
            first = conn.info.backend_pid
        with psycopg.connect(db_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        await asyncio.sleep(0.1)
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT pg_backend_pid()")
            row = await cur.fetchone()
        assert row is not None and row[0] != first
    finally:
        await pool.close()


async def test_pool_checks_a_busy_connection_at_most_once_a_window(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkouts in quick succession cost one check, not one round trip each."""
    checks: list[object] = []
    real_check = AsyncConnectionPool.check_connection

    async def counting(conn: psycopg.AsyncConnection[object]) -> None:
        checks.append(conn)
        await real_check(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", counting)
    monkeypatch.setattr(pool_module, "CHECK_EVERY_S", 60.0)
    pool = await async_pool(db_dsn, max_size=1, autocommit=True)
    try:
        for _ in range(10):
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
        assert len(checks) == 1
        monkeypatch.setattr(pool_module, "CHECK_EVERY_S", 0.0)  # every checkout is due
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        assert len(checks) == 2
    finally:
        await pool.close()
