"""Report test data inserted directly: runs, operations with known durations, shadow plans and
findings (some carrying markup), with the figures the report must show for them."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import psycopg

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)  # the current run's window: [T0, T0 + 1h)
HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_TLD = "<svg onload=alert(2)>"


@dataclass(frozen=True)
class Seeded:
    run_id: int  # the current (manual) run
    previous: tuple[int, ...]  # the earlier nightly runs, oldest first


def _op(
    conn: psycopg.Connection[Any],
    op_id: str,
    domain: str,
    engine: str,
    status: str,
    created: dt.datetime,
    secs: float | None = None,
    tld: str | None = None,
) -> str:
    key = f"renew:{domain}:2027-01-01"
    finished = created + dt.timedelta(seconds=secs) if secs is not None else None
    conn.execute(
        "INSERT INTO operations (operation_id, idempotency_key, domain, tld, years,"
        " current_expiry, customer_id, engine, status, created_at, finished_at)"
        " VALUES (%s, %s, %s, %s, 1, '2027-01-01', 'c-1', %s, %s, %s, %s)",
        (op_id, key, domain, tld or domain.rsplit(".", 1)[-1], engine, status, created, finished),
    )
    return key


def _plan(conn: psycopg.Connection[Any], key: str, domain: str) -> None:
    conn.execute(
        "INSERT INTO shadow_plans (idempotency_key, operation_id, workflow_id, domain, tld,"
        " years, verdict) VALUES (%s, %s, %s, %s, %s, 1, 'would_renew')",
        (key, f"plan-{domain}", f"wf-{domain}", domain, domain.rsplit(".", 1)[-1]),
    )


def _compare(
    conn: psycopg.Connection[Any],
    key: str,
    created: dt.datetime,
    cls: str,
    run_id: int | None,
    pair: str = "legacy",
) -> None:
    """A shadow comparison as the reconciler stores it (decided by `run_id` unless pending)."""
    conn.execute(
        "INSERT INTO shadow_comparisons (idempotency_key, pair, tld, created_at, class,"
        " decided_run_id, updated_run_id) VALUES (%s, %s, 'de', %s, %s, %s, %s)",
        (key, pair, created, cls, None if cls == "pending" else run_id, run_id),
    )


def _run(
    conn: psycopg.Connection[Any], kind: str, since: dt.datetime, counts: dict[str, int]
) -> int:
    row = conn.execute(
        "INSERT INTO reconciliation_runs (kind, window_start, window_end, status, started_at,"
        " finished_at, operations, counts, new_findings)"
        " VALUES (%s, %s, %s, 'ok', %s, %s, 0, %s, 0) RETURNING run_id",
        (kind, since, since + dt.timedelta(hours=1), since, since, json.dumps(counts)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _finding(
    conn: psycopg.Connection[Any],
    kind: str,
    severity: str,
    tld: str | None,
    engine: str | None,
    key: str,
    summary: str,
    run_id: int,
) -> None:
    conn.execute(
        "INSERT INTO findings (finding_key, kind, severity, tld, engine, idempotency_key,"
        " summary, first_run_id, last_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (f"{kind}:{key}", kind, severity, tld, engine, key, summary, run_id, run_id),
    )


def seed(dsn: str) -> Seeded:
    """Two earlier nightly runs with .de shadow plans, then the current run's window:

    - .fr legacy: done in 10, 20, 30 s, failed in 40 s (p50 25 s, p95 38.5 s, p99 39.7 s);
    - .fr temporal: done in 2 and 4 s, one still doing (p50 3 s);
    - .info temporal: done in 1..5 s (p50 3 s, p95 4.8 s);
    - .de legacy with shadow plans: 4 compared, 1 mismatch (75%), 1 pending, 1 not comparable
      (legacy rate limited until it failed), 1 A/A pair that agreed;
    - a legacy operation of a hostile TLD; findings whose summaries carry markup.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        previous = []
        for day, mismatched in ((2, 0), (1, 1)):
            since = T0 - dt.timedelta(days=day)
            run_id = _run(conn, "nightly", since, {"shadow_mismatch": mismatched})
            previous.append(run_id)
            for i in range(10):
                domain = f"old{day}-{i}.de"
                key = _op(conn, f"op-old{day}-{i}", domain, "legacy", "done", since, 5)
                _plan(conn, key, domain)
                cls = "business_mismatch" if i < mismatched else "agree"
                _compare(conn, key, since, cls, run_id)
                if i < mismatched:
                    _finding(
                        conn,
                        "shadow_mismatch",
                        "info",
                        "de",
                        "legacy",
                        key,
                        f"{domain}: plan differs",
                        run_id,
                    )
        run_id = _run(
            conn,
            "manual",
            T0,
            {
                "shadow_mismatch": 1,
                "double_charge": 1,
                "duplicate_operation": 1,
                "stuck_operation": 1,
            },
        )
        at = T0 + dt.timedelta(minutes=5)
        for i, (status, secs) in enumerate(
            (("done", 10), ("done", 20), ("done", 30), ("failed", 40))
        ):
            _op(conn, f"op-fr-l{i}", f"l{i}.fr", "legacy", status, at, secs)
        _op(conn, "op-fr-t0", "t0.fr", "temporal", "done", at, 2)
        _op(conn, "op-fr-t1", "t1.fr", "temporal", "done", at, 4)
        _op(conn, "op-fr-t2", "t2.fr", "temporal", "doing", at)
        for i in range(5):
            _op(conn, f"op-info-{i}", f"i{i}.info", "temporal", "done", at, i + 1)
        for i in range(5):
            domain = f"s{i}.de"
            key = _op(
                conn,
                f"op-de-{i}",
                domain,
                "legacy",
                "done" if i < 4 else "todo",
                at,
                3 if i < 4 else None,
            )
            _plan(conn, key, domain)
            cls = ("business_mismatch", "agree", "agree", "agree", "pending")[i]
            _compare(conn, key, at, cls, run_id)
            if i == 1:  # the A/A sample: a second plan that agreed with the first
                _compare(conn, key, at, "agree", run_id, pair="aa")
            if i == 0:
                _finding(
                    conn,
                    "shadow_mismatch",
                    "info",
                    "de",
                    "legacy",
                    key,
                    f"{domain}: Temporal plan differs | `premium`",
                    run_id,
                )
        busy = _op(conn, "op-de-busy", "busy.de", "legacy", "failed", at, 9)
        conn.execute(
            "UPDATE operations SET error_code = 'rate_limited' WHERE operation_id = 'op-de-busy'"
        )
        _plan(conn, busy, "busy.de")
        _compare(conn, busy, at, "not_comparable", run_id)  # legacy's own transient failure
        _op(conn, "op-hostile", "x.com", "legacy", "done", at, 7, tld=HOSTILE_TLD)
        _finding(
            conn,
            "double_charge",
            "critical",
            "info",
            "legacy,temporal",
            "renew:i0.info:2027-01-01",
            "charged 2 times for i0.info",
            run_id,
        )
        _finding(
            conn,
            "duplicate_operation",
            "warning",
            "fr",
            "legacy",
            f"renew:{HOSTILE}.fr:2027-01-01",
            f"2 operations share {HOSTILE}.fr",
            run_id,
        )
        _finding(
            conn,
            "stuck_operation",
            "warning",
            "fr",
            "temporal",
            "renew:t2.fr:2027-01-01",
            "t2.fr: still doing | step `renew` <b>bold</b>",
            run_id,
        )
    return Seeded(run_id, tuple(previous))
