"""The local stack's Unleash server: `unleash-server` 7 (this package) on the stack's PostgreSQL.

`stack up` starts it when Node >= 20 is on PATH (`npm ci` here on first use, and again when
`package-lock.json` changed), on a database of
its own (`dualrun_unleash`) on the stack's embedded PostgreSQL (never on a configured one), at
http://127.0.0.1:$DUALRUN_UNLEASH_PORT.
dualrun's admin and client tokens are made once and kept with the server's URL in
`state_dir/unleash/connection.json` (mode 0600); the composition root reads them there while
the server runs, so the flags commands, the router, the demo and `serve` use it with nothing set
by hand. Without Node, when `npm ci` fails (its output in `state_dir/logs/npm-ci.log`), or with
`--no-unleash`, it is not run, `state_dir/unleash/off` says why and flags come from the
bootstrap file. Its admin UI is the server's URL; the login is Unleash's
default admin user, made on its first start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from ops.processes import HOST, DetachedService, ServiceStatus, StackError, http_ok, log_tail
from ops.unleash.install import (
    UnleashInstallFailed,
    UnleashNotInstalled,
    ensure_installed,
    installed,
    node,
    node_problem,
)
from ops.unleash.server import (
    START_SCRIPT,
    UnleashServer,
    create_database,
    drop_database,
    new_tokens,
)
from renewals.env import Secret
from renewals.settings import Settings

DATABASE = "dualrun_unleash"
LOGIN = "admin / unleash4all"  # Unleash's default admin user (open-source authentication)
FALLBACK = "flags come from the bootstrap file"
# Never a database made on a server of the user's (it may be the registrar's own).
EXTERNAL_DATABASE = (
    "the database is not the stack's (DUALRUN_DATABASE_URL is set): "
    "point DUALRUN_UNLEASH_URL at an Unleash server"
)


@dataclass(frozen=True)
class Connection:
    """The stack's Unleash server: base URL and dualrun's tokens (secrets)."""

    url: str
    admin_token: Secret
    client_token: Secret


def _dir(settings: Settings) -> Path:
    return settings.state_dir / "unleash"


def connection_file(settings: Settings) -> Path:
    return _dir(settings) / "connection.json"


def _off_file(settings: Settings) -> Path:
    return _dir(settings) / "off"


def read_connection(settings: Settings) -> Connection | None:
    """The recorded URL and tokens (None: none recorded, or unreadable)."""
    try:
        raw = json.loads(connection_file(settings).read_text())
        return Connection(raw["url"], Secret(raw["admin_token"]), Secret(raw["client_token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_connection(settings: Settings, conn: Connection) -> None:
    """Written with mode 0600 from the start (the tokens are secrets), replaced atomically."""
    path = connection_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    document = {
        "url": conn.url,
        "admin_token": conn.admin_token.reveal(),
        "client_token": conn.client_token.reveal(),
    }
    with os.fdopen(fd, "w") as f:
        json.dump(document, f)
    tmp.replace(path)


class UnleashService:
    """The stack's Unleash server as a detached service (pid file, log, health on /health)."""

    name = "unleash"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.unleash_port
        self.url = f"http://{HOST}:{self.port}"
        self.log_file = settings.state_dir / "logs" / "unleash.log"

    def _detached(self, env: dict[str, str] | None = None) -> DetachedService:
        marker = str(_dir(self.settings))  # the script's label: which stack's server it is
        return DetachedService(
            "unleash",
            self.settings.state_dir,
            argv=lambda: [node(), str(START_SCRIPT), marker],
            markers=[str(START_SCRIPT), marker],
            ports=[self.port],
            health=lambda: http_ok(f"{self.url}/health"),
            address=self.url,
            ui_url=self.url,
            env=env,
        )

    def pid(self) -> int | None:
        return self._detached().pid()

    def status(self) -> ServiceStatus:
        current = self._detached().status()
        if current.pid is not None:
            return replace(current, login=LOGIN)
        try:
            reason = _off_file(self.settings).read_text().strip()
        except OSError:
            return current
        return ServiceStatus("unleash", "off", "-", False, note=reason)

    def connection(self) -> Connection | None:
        """URL and tokens while the stack's server runs (None when it does not)."""
        return read_connection(self.settings) if self.pid() is not None else None

    def needs_install(self) -> bool:
        """A start would run `npm ci` first (tens of seconds: worth saying)."""
        return self.pid() is None and not installed() and node_problem() is None

    def _off(self, why: str) -> str:
        """Not run: `why` starts the sentence `stack status` and `stack up` show (said by
        whoever reports the status: ops.stack, once)."""
        path = _off_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Unleash not started{why}; {FALLBACK}\n")
        return "off"

    def _install(self) -> str | None:
        """`npm ci` when needed; None when installed, else why not (the start falls back)."""
        npm_log = self.settings.state_dir / "logs" / "npm-ci.log"
        try:
            ensure_installed(log_file=npm_log)
        except UnleashNotInstalled as exc:
            return f": {exc.why} to install unleash-server"
        except UnleashInstallFailed as exc:
            said = exc.first_line()
            return f": `npm ci` {exc.problem}{f': {said}' if said else ''} (see {exc.log_file})"
        return None

    def start(self, enabled: bool = True) -> str:
        """Start unless running ("started", "running"); "off" when not enabled (stopped if it
        ran), when Node is missing or when `npm ci` fails. Raises StackError when it is
        installed but does not start."""
        if not enabled:
            self.stop()
            return self._off(" (--no-unleash)")
        if self.pid() is None:
            problem = node_problem() if self.settings.embedded_database else EXTERNAL_DATABASE
            if problem is not None:
                return self._off(f": {problem}")
            problem = self._install()
            if problem is not None:
                return self._off(problem)
            conn = self._tokens_and_database()
        else:
            running = read_connection(self.settings)
            if running is None:
                raise StackError(
                    "unleash",
                    f"runs without {connection_file(self.settings)}: "
                    "`dualrun stack down`, then `stack up`",
                )
            conn = running
        env = UnleashServer(
            create_database(self.settings.dsn, DATABASE),  # exists: only its URL
            self.port,
            _dir(self.settings),
            admin_token=conn.admin_token.reveal(),
            client_token=conn.client_token.reveal(),
        ).env()
        action = self._detached(env).start()
        _off_file(self.settings).unlink(missing_ok=True)
        self._check_tokens(conn)
        return action

    def _tokens_and_database(self) -> Connection:
        """The recorded tokens, else new ones and a fresh database (a database made with tokens
        no longer known is dropped: Unleash takes its initial tokens only on an empty one)."""
        recorded = read_connection(self.settings)
        if recorded is None:
            drop_database(self.settings.dsn, DATABASE)
            admin, client = new_tokens(self.settings.unleash_environment)
            recorded = Connection(self.url, Secret(admin), Secret(client))
        conn = Connection(self.url, recorded.admin_token, recorded.client_token)
        _write_connection(self.settings, conn)
        return conn

    def _check_tokens(self, conn: Connection) -> None:
        headers = {"Authorization": conn.admin_token.reveal()}
        try:
            answer = httpx.get(f"{self.url}/api/admin/projects", headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            raise StackError("unleash", f"admin API unreachable ({type(exc).__name__})") from exc
        if answer.status_code != 200:
            raise StackError(
                "unleash",
                f"the server refuses the admin token in {connection_file(self.settings)} "
                f"(HTTP {answer.status_code}): remove that file and run `stack up` again",
                log_tail(self.log_file),
            )

    def stop(self) -> bool:
        """Stop the server (its database, tokens and flags stay for the next start)."""
        _off_file(self.settings).unlink(missing_ok=True)
        return self._detached().stop()
