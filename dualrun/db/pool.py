"""psycopg pools and connection strings. Nothing connects at import time.

Pools check each connection as they hand it out (one empty round trip): after a database
restart or a terminated backend, a dead connection is replaced instead of failing its next
user once per pooled connection.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def with_schema(dsn: str, schema: str) -> str:
    """The same DSN with `search_path` set to `schema` (tests: one schema each)."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"schema: {schema!r} is not a plain lower-case identifier")
    params = conninfo_to_dict(dsn)
    params["options"] = f"{params.get('options') or ''} -c search_path={schema}".strip()
    return make_conninfo("", **params)


def connect(dsn: str, *, autocommit: bool = False) -> psycopg.Connection[dict[str, object]]:
    return psycopg.connect(dsn, autocommit=autocommit, row_factory=dict_row)


def sync_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 8, name: str = "dualrun"
) -> ConnectionPool:
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        check=ConnectionPool.check_connection,
    )
    pool.open(wait=True, timeout=30)
    return pool


async def async_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, name: str = "dualrun"
) -> AsyncConnectionPool:
    """An opened async pool; the caller closes it (`await pool.close()`)."""
    pool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        check=AsyncConnectionPool.check_connection,
    )
    await pool.open(wait=True, timeout=30)
    return pool
