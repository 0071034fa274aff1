"""`dualrun stack up|status|down` with real processes on a temporary state dir and free ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from ops import temporal
from tests.integration.stack_support import Stack, alive, children, is_open, line
from tests.integration.stack_support import stack as stack  # the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "not-a-real-secret-7f3a9"


def test_up_starts_every_service_and_twice_is_harmless(stack: Stack) -> None:
    """`stack up` starts PostgreSQL, Temporal, the simulator and Unleash; a second `up` changes
    nothing."""
    first = stack.up_ok()
    services_ports = (("postgres", "pg"), ("temporal", "temporal"), ("registry_sim", "sim"),
                      ("unleash", "unleash"))  # fmt: skip
    for name, port in services_ports:
        row = line(first.stdout, name)
        assert "started" in row and str(stack.ports[port]) in row
    assert f"http://127.0.0.1:{stack.ports['ui']}" in first.stdout
    unleash_url = f"http://127.0.0.1:{stack.ports['unleash']}"
    assert f"Web UI {unleash_url} (login admin / unleash4all)" in line(first.stdout, "unleash")
    assert '"event": "stack.service.started"' in first.stderr

    code, services = stack.status()
    assert code == 0
    for service in services.values():
        assert service["mode"] == "embedded" and service["healthy"] and service["pid"]
    assert services["temporal"]["ui_url"] == f"http://127.0.0.1:{stack.ports['ui']}"
    assert services["unleash"]["ui_url"] == unleash_url
    assert services["unleash"]["login"] == "admin / unleash4all"
    login = httpx.post(f"{unleash_url}/auth/simple/login",
                       json={"username": "admin", "password": "unleash4all"})  # fmt: skip
    assert login.status_code == 200  # the login shown lets one into the admin UI
    connection = stack.state_dir / "unleash" / "connection.json"
    assert connection.stat().st_mode & 0o777 == 0o600
    admin_token = json.loads(connection.read_text())["admin_token"]
    for output in (first, stack.run("status"), stack.run("status", "--json")):
        assert admin_token not in output.stdout + output.stderr
    for port in stack.ports.values():
        assert is_open(port)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{stack.ports['pg']}/postgres") as conn:
        components = conn.execute("SELECT DISTINCT component FROM schema_migrations").fetchall()
        databases = conn.execute("SELECT datname FROM pg_database").fetchall()
    assert {c[0] for c in components} == {"core", "registry_sim"}
    assert ("dualrun_unleash",) in databases  # Unleash's own database on the stack's server
    # One partition per task queue, as the `temporal` CLI lists them: a registry's rate limit is
    # not split among partitions that drain unevenly.
    partitions = subprocess.run(
        [str(temporal.binary()), "task-queue", "list-partition",
         "--task-queue", "registry-fr", "--address", f"127.0.0.1:{stack.ports['temporal']}",
         "--output", "json"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert {kind: len(keys) for kind, keys in json.loads(partitions.stdout).items()} == {
        "activityTaskQueuePartitions": 1,
        "workflowTaskQueuePartitions": 1,
    }

    second = stack.up_ok()
    assert "started" not in second.stdout and second.stdout.count("running") == 4
    code, again = stack.status()
    assert code == 0
    assert {n: s["pid"] for n, s in again.items()} == {n: s["pid"] for n, s in services.items()}


def test_down_leaves_no_process_behind(stack: Stack) -> None:
    """`stack down` stops every service and its children, closes the ports, removes pid files."""
    stack.up_ok()
    _, services = stack.status()
    pids = [s["pid"] for s in services.values()]
    family = pids + [child for pid in pids for child in children(pid)]
    assert len(family) > len(pids)  # PostgreSQL's own workers at least

    result = stack.run("down")
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in services)
    assert [pid for pid in family if alive(pid)] == []
    assert [name for name, port in stack.ports.items() if is_open(port)] == []
    assert sorted(p.name for p in (stack.state_dir / "run").glob("*.pid")) == []
    assert not (stack.state_dir / "postgres" / "data" / "postmaster.pid").exists()

    code, after = stack.status()
    assert code == 1 and not any(s["healthy"] or s["pid"] for s in after.values())
    again = stack.run("down")
    assert again.returncode == 0 and "nothing was running" in again.stdout


def test_stale_pid_files_are_recovered_from(stack: Stack) -> None:
    """Pid files naming a dead or a foreign process are dropped and the services started again."""
    stack.up_ok("--no-unleash")
    _, before = stack.status()
    # Temporal dies hard: its pid file stays behind, naming a dead process.
    os.killpg(before["temporal"]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(before["temporal"]["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    # The simulator's pid file names a live process that is not the simulator (pid reuse).
    subprocess.run([sys.executable, "-m", "dualrun", "stack", "down"], env=stack.env, check=True)
    (stack.state_dir / "run" / "registry_sim.pid").write_text(f"{os.getpid()}\n")
    # So does PostgreSQL's postmaster.pid (as after a container restart).
    postmaster = stack.state_dir / "postgres" / "data" / "postmaster.pid"
    postmaster.write_text(f"{os.getpid()}\n{stack.state_dir}/postgres/data\n")
    (stack.state_dir / "run" / "temporal.pid").write_text(f"{before['temporal']['pid']}\n")

    code, stale = stack.status()
    assert code == 1 and not any(s["healthy"] or s["pid"] for s in stale.values())

    result = stack.up_ok("--no-unleash")
    actions = [row.split()[1] for row in result.stdout.splitlines() if len(row.split()) > 1]
    assert actions.count("started") == 3 and actions.count("off") == 1
    assert "stack.service.stale_pid" in result.stderr
    code, after = stack.status()
    assert code == 0
    for name, service in after.items():
        if name == "unleash":
            assert service["mode"] == "off" and "--no-unleash" in service["note"]
            continue
        assert service["pid"] not in (None, os.getpid(), before[name]["pid"])
        pid_file = stack.state_dir / "run" / f"{name}.pid"
        if name != "postgres":
            assert int(pid_file.read_text()) == service["pid"]
    assert alive(os.getpid())


def test_external_database_is_used_not_started(stack: Stack, empty_schema_dsn: str) -> None:
    """With DUALRUN_DATABASE_URL set, PostgreSQL is reported external, never started or stopped."""
    info = psycopg.conninfo.conninfo_to_dict(empty_schema_dsn)
    if not info.get("password"):
        info["password"] = SECRET  # ignored by a trust server; must never be printed
    dsn = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items()})
    stack.env["DUALRUN_DATABASE_URL"] = dsn
    secret = str(info["password"])

    result = stack.up_ok()
    assert line(result.stdout, "postgres").split()[1] == "external"
    assert not (stack.state_dir / "postgres").exists()
    # no database is ever made on a server of the user's: the stack's Unleash is not run
    assert "the database is not the stack's" in line(result.stdout, "unleash")

    status = stack.run("status", "--json")
    assert status.returncode == 0, status.stderr
    services = {s["name"]: s for s in json.loads(status.stdout)["services"]}
    pg = services["postgres"]
    assert pg["mode"] == "external" and pg["healthy"] and pg["pid"] is None
    assert pg["address"] == f"{info.get('host')}:{info.get('port') or 5432}/{info.get('dbname')}"
    assert services["temporal"]["mode"] == services["registry_sim"]["mode"] == "embedded"
    assert services["unleash"]["mode"] == "off"
    human = stack.run("status")
    down = stack.run("down")
    assert down.returncode == 0 and "postgres" not in down.stdout
    for output in (result, status, human, down):
        assert secret not in output.stdout + output.stderr
    with psycopg.connect(empty_schema_dsn) as conn:  # the external server is untouched
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() is not None
