"""The real Unleash server for the flag tests: one per session, on its own database."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.unleash import UnleashServer, create_database, drop_database, ensure_installed


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def unleash_server(pg_server_dsn: str) -> Iterator[UnleashServer]:
    """`unleash-server` 7 (npm, ops/unleash) on a free port and a database of its own."""
    ensure_installed()  # `npm ci` on first use (and after a lockfile change), as `stack up` does
    name = f"unleash_{uuid.uuid4().hex[:10]}"
    url = create_database(pg_server_dsn, name)
    server = UnleashServer(url, _free_port(), Path(tempfile.mkdtemp(prefix="dualrun-unleash-")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        drop_database(pg_server_dsn, name)
