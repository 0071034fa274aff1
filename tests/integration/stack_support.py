"""Shared helpers of the stack tests: the CLI run as a subprocess on its own state dir and free
ports (never the defaults), processes and ports looked at through /proc and sockets."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(*offsets: int) -> int:
    """A base port P such that P + each offset is free (Temporal derives P+2000 and P+3000)."""
    for _ in range(200):
        base = random.randint(20000, 40000)
        if all(port_free(base + offset) for offset in offsets):
            return base
    raise RuntimeError("no free port block found")


def is_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def children(pid: int) -> list[int]:
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


def line(output: str, service: str) -> str:
    return next(row for row in output.splitlines() if row.startswith(service))


REPO = Path(__file__).resolve().parents[2]


def fresh_checkout(dest: Path) -> Path:
    """The files a fresh clone of this working tree has (tracked and untracked, not ignored:
    no node_modules, no .venv, no .dualrun) copied to `dest`; returns `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@dataclass
class Stack:
    """The CLI run as a subprocess against one temporary state dir (from `code`'s packages
    when given: a checkout other than the installed one)."""

    state_dir: Path
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    code: Path | None = None

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = self.env if self.code is None else {**self.env, "PYTHONPATH": str(self.code)}
        return subprocess.run(
            [sys.executable, "-m", "dualrun", *args],
            env=env,
            cwd=self.code,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.cli("stack", *args, timeout=timeout)

    def status(self) -> tuple[int, dict[str, Any]]:
        result = self.run("status", "--json")
        document = json.loads(result.stdout)
        return result.returncode, {s["name"]: s for s in document["services"]}

    def up_ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.run("up", *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result


def new_stack(state_dir: Path) -> Stack:
    """A stack on `state_dir` with free ports for every service."""
    temporal = free_ports(0, 1000, 2000, 3000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUALRUN_", "TEMPORAL_"))}
    ports = {
        "pg": free_ports(0),
        "temporal": temporal,
        "ui": temporal + 1000,
        "http": temporal + 2000,
        "metrics": temporal + 3000,
        "sim": free_ports(0),
        "unleash": free_ports(0),
    }
    env.update(
        DUALRUN_STATE_DIR=str(state_dir),
        DUALRUN_PG_PORT=str(ports["pg"]),
        DUALRUN_TEMPORAL_PORT=str(ports["temporal"]),
        DUALRUN_TEMPORAL_UI_PORT=str(ports["ui"]),
        DUALRUN_REGISTRY_SIM_PORT=str(ports["sim"]),
        DUALRUN_UNLEASH_PORT=str(ports["unleash"]),
        DUALRUN_LOG_FORMAT="json",
    )
    return Stack(state_dir, env, ports)


@pytest.fixture
def stack() -> Iterator[Stack]:
    """A stack on its own state dir and ports; always brought down (and the dir removed) after."""
    # PostgreSQL refuses root, so as root it runs as an unprivileged user; with a state dir it
    # can traverse, its data stays in the state dir (test_stack_root covers one it cannot).
    state_dir = Path(tempfile.mkdtemp(prefix="dualrun-stack-"))
    os.chmod(state_dir, 0o755)
    s = new_stack(state_dir)
    try:
        yield s
    finally:
        result = s.run("down")
        shutil.rmtree(state_dir, ignore_errors=True)
        assert result.returncode == 0, result.stdout + result.stderr
