"""A real Unleash server (`unleash-server` 7 from npm, run by Node) on its own PostgreSQL database.

`npm ci` in this directory installs it into `node_modules/` on first use (ops.unleash.install:
the tests' fixture and `stack up` call `ensure_installed`, which reinstalls when the lockfile
changed). Tokens travel in the child's environment only (INIT_ADMIN_API_TOKENS /
INIT_BACKEND_API_TOKENS), never on a command line. `UnleashServer` is what the test fixtures
start (`start`/`stop` are idempotent); the local stack runs the same script as one of its
services (ops.unleash.stack).
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ops.processes import HOST, log_tail, port_open, spawn, stop_group, wait_until
from ops.unleash.install import HERE, installed_version, node
from renewals.errors import DualrunError

START_SCRIPT = HERE / "start.mjs"


class UnleashStartError(DualrunError):
    def __init__(self, problem: str, tail: str) -> None:
        super().__init__(f"unleash: {problem}\n--- last lines of its log ---\n{tail}")


def create_database(server_dsn: str, name: str) -> str:
    """CREATE DATABASE `name` on the server of `server_dsn` (when missing); its DSN as a URL."""
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(server_dsn)
    host = params.get("host") or HOST
    port = params.get("port") or 5432
    user = params.get("user") or "postgres"
    password = params.get("password")
    auth = f"{user}:{password}" if password else str(user)
    return f"postgresql://{auth}@{host}:{port}/{name}"


def drop_database(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _token() -> str:
    return secrets.token_hex(24)


def new_tokens(environment: str = "development") -> tuple[str, str]:
    """A new (admin, client) token pair in Unleash's format: `*:*.<hex>`, `default:<env>.<hex>`."""
    return f"*:*.{_token()}", f"default:{environment}.{_token()}"


@dataclass
class UnleashServer:
    """One Unleash server process on 127.0.0.1:`port`, storing into `database_url`."""

    database_url: str
    port: int
    state_dir: Path
    admin_token: str = field(default_factory=lambda: f"*:*.{_token()}")
    client_token: str = field(default_factory=lambda: f"default:development.{_token()}")
    pid: int | None = None
    started_in_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def sdk_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "unleash.log"

    def healthy(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(self.state_dir)),
            "NODE_ENV": "production",
            "DUALRUN_UNLEASH_DB_URL": self.database_url,
            "DUALRUN_UNLEASH_HOST": HOST,
            "DUALRUN_UNLEASH_PORT": str(self.port),
            "INIT_ADMIN_API_TOKENS": self.admin_token,
            "INIT_BACKEND_API_TOKENS": self.client_token,
            "SEND_TELEMETRY": "false",
            "CHECK_VERSION": "false",
            "LOG_LEVEL": "warn",
        }

    def start(self, timeout_s: float = 90.0) -> None:
        """Start Node on the start script and wait until /health answers."""
        if self.pid is not None and self.healthy():
            return
        installed_version()
        if port_open(HOST, self.port):
            raise UnleashStartError(f"port {self.port} is already in use", "")
        began = time.monotonic()
        process = spawn(
            [node(), str(START_SCRIPT)],
            log_file=self.log_file,
            pid_file=self.state_dir / "unleash.pid",
            env=self.env(),
            cwd=HERE,
        )
        self.pid = process.pid
        if not wait_until(self.healthy, timeout_s, give_up=lambda: process.poll() is not None):
            code = process.poll()
            self.stop()
            problem = f"exited with {code}" if code is not None else f"not healthy in {timeout_s}s"
            raise UnleashStartError(problem, log_tail(self.log_file))
        self.started_in_s = round(time.monotonic() - began, 2)

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL)."""
        if self.pid is None:
            return
        stop_group(self.pid, timeout=10)
        (self.state_dir / "unleash.pid").unlink(missing_ok=True)
        self.pid = None
        wait_until(lambda: not port_open(HOST, self.port), 10)
