"""Fixtures of the fault suite: processes cleaned up whatever happens, a PostgreSQL server a test
owns (so it may restart it), and the start of the test's reconciliation window."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dualrun.wiring import migrate_all
from ops.postgres import EmbeddedPostgres
from tests.faults.support import Processes, free_port


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    """Processes of one test (logs under tmp_path/logs), all SIGKILLed at teardown."""
    started = Processes(tmp_path / "logs")
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def since() -> dt.datetime:
    """The start of the test's reconciliation window (a little before anything it submits)."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)


@pytest.fixture
def own_pg() -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL this test alone uses (migrated), free to restart or cut off."""
    # not under pytest's tmp dir: it is 0700, and the server runs as another OS user when root
    base = Path(tempfile.mkdtemp(prefix="dualrun-faults-pg-"))
    os.chmod(base, 0o755)
    server = EmbeddedPostgres(base / "data", free_port())
    try:
        server.start()
        migrate_all(server.dsn)
        yield server
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)
