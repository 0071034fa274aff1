"""`dualrun submit|status|cancel|route explain|flags` as a user runs them, on real PostgreSQL:
one decision per key under concurrency (threads and processes), bad input, sticky rollouts."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from dualrun.flags.local import SEED
from tests.harness import Cli, cli_runner, count

pytestmark = pytest.mark.integration

EXPIRY = (dt.date.today() + dt.timedelta(days=40)).isoformat()


@pytest.fixture
def cli_env(db_dsn: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI run on this test's schema and its own bootstrap file."""
    boot = tmp_path / "bootstrap.json"
    boot.write_text(SEED.read_text())
    return {
        "DUALRUN_DATABASE_URL": db_dsn,
        "DUALRUN_STATE_DIR": str(tmp_path),
        "DUALRUN_FLAGS_BOOTSTRAP": str(boot),
        "DUALRUN_TEMPORAL_ADDRESS": "127.0.0.1:9",  # these tests route to legacy only
        "DUALRUN_LOG_FORMAT": "json",
    }


@pytest.fixture
def cli(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Cli:
    """Run `dualrun ARGS` in process; (exit status, stdout, stderr)."""
    return cli_runner(cli_env, monkeypatch, capsys)


def _submit_args(domain: str, years: str = "1", customer: str = "cust-1") -> list[str]:
    return ["submit", "--domain", domain, "--years", years, "--current-expiry", EXPIRY,
            "--customer", customer, "--json"]  # fmt: skip


def test_submit_status_cancel(cli: Cli) -> None:
    """submit prints the six fields; status and cancel answer for that operation."""
    code, out, _ = cli(*_submit_args("Bücher.de"))
    sub = json.loads(out)
    assert code == 0 and sub["idempotency_key"] == f"renew:xn--bcher-kva.de:{EXPIRY}"
    assert set(sub) == {"operation_id", "idempotency_key", "engine", "mode", "status",
                        "deduplicated"}  # fmt: skip
    code, out, _ = cli("status", sub["operation_id"], "--json")
    assert code == 0 and json.loads(out)["status"] == "todo"
    code, out, _ = cli("cancel", sub["operation_id"], "--json")
    assert code == 0 and json.loads(out)["accepted"] is True
    code, out, _ = cli("cancel", "op-nobody", "--json")
    assert code == 1


BAD = [
    (["--domain", "bad_name.fr", "--years", "1", "--current-expiry", EXPIRY, "--customer", "c"],
     "domain"),
    (["--domain", "a.zz", "--years", "1", "--current-expiry", EXPIRY, "--customer", "c"], "domain"),
    (["--domain", "a.fr", "--years", "11", "--current-expiry", EXPIRY, "--customer", "c"], "years"),
    (["--domain", "a.fr", "--years", "two", "--current-expiry", EXPIRY, "--customer", "c"],
     "years"),
    (["--domain", "a.fr", "--years", "1", "--current-expiry", "2026-02-30", "--customer", "c"],
     "current_expiry"),
    (["--domain", "a.fr", "--years", "1", "--current-expiry", EXPIRY], "customer_id"),
    (["--domain", "a.fr", "--years", "1", "--current-expiry", EXPIRY, "--customer", "c c"],
     "customer_id"),
    (["--domain", "a.fr", "--years", "1", "--current-expiry", EXPIRY, "--customer", "c",
      "--operation-id", "-x"], "operation_id"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "field"), BAD)
def test_bad_input_exit_2_one_line_nothing_written(
    cli: Cli, db_dsn: str, args: list[str], field: str
) -> None:
    """Each bad submission: exit 2, one line naming the field, zero rows anywhere."""
    code, out, err = cli("submit", *args)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and out == "" and len(lines) == 1 and f"error: {field}:" in lines[0]
    for table in ("operations", "routing_decisions", "operation_events"):
        assert count(db_dsn, f"SELECT count(*) FROM {table}") == 0


def test_conflict_exit_2_writes_nothing(cli: Cli, db_dsn: str) -> None:
    """Same key, other years: exit 2 naming years; still one operation, one decision."""
    assert cli(*_submit_args("same.eu"))[0] == 0
    code, _, err = cli(*_submit_args("same.eu", years="2"))
    assert code == 2 and "error: years:" in err
    assert count(db_dsn, "SELECT count(*) FROM operations") == 1
    assert count(db_dsn, "SELECT count(*) FROM routing_decisions") == 1


def test_20_threads_and_4_processes_make_one_decision(cli_env: dict[str, str], db_dsn: str) -> None:
    """24 concurrent submissions of one renewal: one decision, one operation, 23 deduplicated."""
    args = [sys.executable, "-m", "dualrun", *_submit_args("crowd.info")]
    env = {**os.environ, **cli_env}
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]  # fmt: skip
    results: list[dict[str, object]] = []
    barrier = threading.Barrier(20)

    def one() -> None:
        import asyncio

        from dualrun.wiring import renewal_service
        from renewals.model import RenewalRequest
        from renewals.settings import Settings

        settings = Settings.from_env(cli_env)
        request = RenewalRequest.parse(
            {"domain": "crowd.info", "years": 1, "current_expiry": EXPIRY, "customer_id": "cust-1"}
        )

        async def go() -> dict[str, object]:
            async with renewal_service(settings, pool_size=1) as svc:
                barrier.wait()
                return (await svc.submit(request)).as_dict()

        results.append(asyncio.run(go()))

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out))
    assert len(results) == 24
    assert len({r["operation_id"] for r in results}) == 1
    assert sum(1 for r in results if not r["deduplicated"]) == 1
    assert count(db_dsn, "SELECT count(*) FROM routing_decisions") == 1
    assert count(db_dsn, "SELECT count(*) FROM operations") == 1


def test_route_explain_2000_names_sticky_rollout(cli: Cli, db_dsn: str, tmp_path: Path) -> None:
    """flags set fr temporal 25 → 50 (local file): ~25% then ~50%, every moved name stays."""
    names = tmp_path / "names.txt"
    names.write_text("".join(f"shop-{i}.fr\n" for i in range(2000)))

    def on_temporal() -> tuple[set[str], float]:
        began = time.monotonic()
        code, out, _ = cli("route", "explain", "--file", str(names), "--json")
        elapsed = time.monotonic() - began
        lines = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and len(lines) == 2000
        assert {"domain", "engine", "mode", "bucket", "source", "reason"} <= set(lines[0])
        return {x["domain"] for x in lines if x["engine"] == "temporal"}, elapsed

    assert cli("flags", "set", "fr", "temporal", "--rollout", "25")[0] == 0
    quarter, seconds = on_temporal()
    assert cli("flags", "set", "fr", "temporal", "--rollout", "50")[0] == 0
    half, _ = on_temporal()
    assert abs(len(quarter) - 500) <= 60 and abs(len(half) - 1000) <= 60
    assert quarter <= half
    assert seconds < 10, f"route explain of 2,000 names took {seconds:.1f} s"
    assert count(db_dsn, "SELECT count(*) FROM routing_decisions") == 0  # explains store nothing


def test_flags_set_bad_input_names_the_field(cli: Cli, cli_env: dict[str, str]) -> None:
    """Unknown TLD, mode, or rollout out of range: exit 2 naming it; the file is unchanged."""
    boot = Path(cli_env["DUALRUN_FLAGS_BOOTSTRAP"])
    before = boot.read_text()
    for args, field in [
        (("xx", "temporal"), "tld"),
        (("fr", "fast"), "mode"),
        (("fr", "temporal", "--rollout", "101"), "rollout"),
        (("fr", "temporal", "--rollout", "-1"), "rollout"),
        (("fr", "temporal", "--rollout", "lots"), "rollout"),
    ]:
        code, _, err = cli("flags", "set", *args)
        assert code == 2 and f"error: {field}:" in err, (args, err)
    assert boot.read_text() == before


def _operation(dsn: str, op_id: str, domain: str, engine: str, mode: str | None) -> str:
    """An operation (and its routing decision when `mode`), written as the router does."""
    key = f"renew:{domain}:{EXPIRY}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO operations (operation_id, idempotency_key, domain, tld, years,"
            " current_expiry, customer_id, engine, status, workflow_id)"
            " VALUES (%s, %s, %s, %s, 1, %s, 'c-1', %s, 'doing', %s)",
            (op_id, key, domain, domain.rsplit(".", 1)[1], EXPIRY, engine,
             key if engine == "temporal" else None),
        )  # fmt: skip
        if mode is not None:
            conn.execute(
                "INSERT INTO routing_decisions (idempotency_key, operation_id, domain, tld,"
                " current_expiry, years, customer_id, mode, engine, flag_source, reason)"
                " VALUES (%s, %s, %s, %s, %s, 1, 'c-1', %s, %s, 'bootstrap', 'test')",
                (key, op_id, domain, domain.rsplit(".", 1)[1], EXPIRY, mode, engine),
            )
    return key


def test_status_links_the_workflow_in_the_temporal_web_ui(
    cli_env: dict[str, str],
    db_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`dualrun status` prints a Temporal renewal's workflow link (a shadow renewal's: its
    plan's) at DUALRUN_TEMPORAL_UI_URL; a legacy renewal gets none."""
    ui = "https://temporal.example.test/ui"
    env = {**cli_env, "DUALRUN_TEMPORAL_UI_URL": ui, "DUALRUN_TEMPORAL_NAMESPACE": "prod"}
    cli = cli_runner(env, monkeypatch, capsys)
    _operation(db_dsn, "op-link-t", "linked.fr", "temporal", "temporal")
    _operation(db_dsn, "op-link-s", "planned.info", "legacy", "shadow")
    _operation(db_dsn, "op-link-l", "plain.com", "legacy", "legacy")
    base = f"{ui}/namespaces/prod/workflows"

    code, out, _ = cli("status", "op-link-t")
    wanted = f"{base}/renew%3Alinked.fr%3A{EXPIRY}"
    assert code == 0 and f"workflow in the Temporal Web UI: {wanted}" in out
    code, out, _ = cli("status", "op-link-t", "--json")
    assert (json.loads(out)["workflow_url"], json.loads(out)["plan_url"]) == (wanted, None)
    code, out, _ = cli("status", "op-link-s", "--json")
    plan = f"{base}/shadow%3Arenew%3Aplanned.info%3A{EXPIRY}"
    assert (json.loads(out)["workflow_url"], json.loads(out)["plan_url"]) == (None, plan)
    code, out, _ = cli("status", "op-link-l")
    assert code == 0 and "Temporal Web UI" not in out
