"""`dualrun stack up|status|down` with real processes on a temporary state dir and free ports."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "not-a-real-secret-7f3a9"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(*offsets: int) -> int:
    """A base port P such that P + each offset is free (Temporal derives P+2000 and P+3000)."""
    for _ in range(200):
        base = random.randint(20000, 40000)
        if all(_port_free(base + offset) for offset in offsets):
            return base
    raise RuntimeError("no free port block found")


def _open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2 :].split()[1] == str(pid):
                found.append(int(entry.name))
    return found


def _line(output: str, service: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(service))


@dataclass
class Stack:
    """The CLI run as a subprocess against one temporary state dir."""

    state_dir: Path
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dualrun", "stack", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self) -> tuple[int, dict[str, Any]]:
        result = self.run("status", "--json")
        document = json.loads(result.stdout)
        return result.returncode, {s["name"]: s for s in document["services"]}

    def up_ok(self) -> subprocess.CompletedProcess[str]:
        result = self.run("up")
        assert result.returncode == 0, result.stdout + result.stderr
        return result


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A stack on its own state dir and ports; always brought down (and the dir removed) after."""
    # PostgreSQL refuses root, so as root it runs as an unprivileged user who must be able to
    # traverse the state dir: pytest's own tmp dirs are private (0700), so use /tmp directly.
    state_dir = Path(tempfile.mkdtemp(prefix="dualrun-stack-"))
    os.chmod(state_dir, 0o755)
    temporal = _free_ports(0, 1000, 2000, 3000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUALRUN_", "TEMPORAL_"))}
    ports = {
        "pg": _free_ports(0),
        "temporal": temporal,
        "ui": temporal + 1000,
        "http": temporal + 2000,
        "metrics": temporal + 3000,
        "sim": _free_ports(0),
    }
    env.update(
        DUALRUN_STATE_DIR=str(state_dir),
        DUALRUN_PG_PORT=str(ports["pg"]),
        DUALRUN_TEMPORAL_PORT=str(ports["temporal"]),
        DUALRUN_TEMPORAL_UI_PORT=str(ports["ui"]),
        DUALRUN_REGISTRY_SIM_PORT=str(ports["sim"]),
        DUALRUN_LOG_FORMAT="json",
    )
    s = Stack(state_dir, env, ports)
    try:
        yield s
    finally:
        result = s.run("down")
        shutil.rmtree(state_dir, ignore_errors=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_up_starts_every_service_and_twice_is_harmless(stack: Stack) -> None:
    """`stack up` starts PostgreSQL, Temporal and the simulator; a second `up` changes nothing."""
    first = stack.up_ok()
    for name, port in (("postgres", "pg"), ("temporal", "temporal"), ("registry_sim", "sim")):
        line = _line(first.stdout, name)
        assert "started" in line and str(stack.ports[port]) in line
    assert f"http://127.0.0.1:{stack.ports['ui']}" in first.stdout
    assert '"event": "stack.service.started"' in first.stderr

    code, services = stack.status()
    assert code == 0
    for service in services.values():
        assert service["mode"] == "embedded" and service["healthy"] and service["pid"]
    assert services["temporal"]["ui_url"] == f"http://127.0.0.1:{stack.ports['ui']}"
    for port in stack.ports.values():
        assert _open(port)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{stack.ports['pg']}/postgres") as conn:
        components = conn.execute("SELECT DISTINCT component FROM schema_migrations").fetchall()
    assert {c[0] for c in components} == {"core", "registry_sim"}

    second = stack.up_ok()
    assert "started" not in second.stdout and second.stdout.count("running") == 3
    code, again = stack.status()
    assert code == 0
    assert {n: s["pid"] for n, s in again.items()} == {n: s["pid"] for n, s in services.items()}


def test_down_leaves_no_process_behind(stack: Stack) -> None:
    """`stack down` stops every service and its children, closes the ports, removes pid files."""
    stack.up_ok()
    _, services = stack.status()
    pids = [s["pid"] for s in services.values()]
    family = pids + [child for pid in pids for child in _children(pid)]
    assert len(family) > len(pids)  # PostgreSQL's own workers at least

    result = stack.run("down")
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in services)
    assert [pid for pid in family if _alive(pid)] == []
    assert [name for name, port in stack.ports.items() if _open(port)] == []
    assert sorted(p.name for p in (stack.state_dir / "run").glob("*.pid")) == []
    assert not (stack.state_dir / "postgres" / "data" / "postmaster.pid").exists()

    code, after = stack.status()
    assert code == 1 and not any(s["healthy"] or s["pid"] for s in after.values())
    again = stack.run("down")
    assert again.returncode == 0 and "nothing was running" in again.stdout


def test_stale_pid_files_are_recovered_from(stack: Stack) -> None:
    """Pid files naming a dead or a foreign process are dropped and the services started again."""
    stack.up_ok()
    _, before = stack.status()
    # Temporal dies hard: its pid file stays behind, naming a dead process.
    os.killpg(before["temporal"]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(before["temporal"]["pid"]) and time.monotonic() < deadline:
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

    result = stack.up_ok()
    assert result.stdout.count("started") == 3
    assert "stack.service.stale_pid" in result.stderr
    code, after = stack.status()
    assert code == 0
    for name, service in after.items():
        assert service["pid"] not in (None, os.getpid(), before[name]["pid"])
        pid_file = stack.state_dir / "run" / f"{name}.pid"
        if name != "postgres":
            assert int(pid_file.read_text()) == service["pid"]
    assert _alive(os.getpid())


def test_external_database_is_used_not_started(stack: Stack, empty_schema_dsn: str) -> None:
    """With DUALRUN_DATABASE_URL set, PostgreSQL is reported external, never started or stopped."""
    info = psycopg.conninfo.conninfo_to_dict(empty_schema_dsn)
    if not info.get("password"):
        info["password"] = SECRET  # ignored by a trust server; must never be printed
    dsn = psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items()})
    stack.env["DUALRUN_DATABASE_URL"] = dsn
    secret = str(info["password"])

    result = stack.up_ok()
    assert _line(result.stdout, "postgres").split()[1] == "external"
    assert not (stack.state_dir / "postgres").exists()

    status = stack.run("status", "--json")
    assert status.returncode == 0, status.stderr
    services = {s["name"]: s for s in json.loads(status.stdout)["services"]}
    pg = services["postgres"]
    assert pg["mode"] == "external" and pg["healthy"] and pg["pid"] is None
    assert pg["address"] == f"{info.get('host')}:{info.get('port') or 5432}/{info.get('dbname')}"
    assert services["temporal"]["mode"] == services["registry_sim"]["mode"] == "embedded"
    human = stack.run("status")
    down = stack.run("down")
    assert down.returncode == 0 and "postgres" not in down.stdout
    for output in (result, status, human, down):
        assert secret not in output.stdout + output.stderr
    with psycopg.connect(empty_schema_dsn) as conn:  # the external server is untouched
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() is not None
