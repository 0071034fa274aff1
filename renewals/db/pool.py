"""psycopg pools and connection strings. Nothing connects at import time.

Pools check a connection as they hand it out (one empty round trip) unless it was checked
less than a second ago: after a database restart or a terminated backend, a dead connection
is replaced instead of failing its next user, and a busy pool does not pay a round trip on
every checkout.
"""

from __future__ import annotations

import re
import weakref
from time import monotonic
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CHECK_EVERY_S = 1.0
_checked_at: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()


def _due(conn: object) -> bool:
    return monotonic() - _checked_at.get(conn, float("-inf")) >= CHECK_EVERY_S


def _check(conn: psycopg.Connection[Any]) -> None:
    if _due(conn):
        ConnectionPool.check_connection(conn)
        _checked_at[conn] = monotonic()


async def _acheck(conn: psycopg.AsyncConnection[Any]) -> None:
    if _due(conn):
        await AsyncConnectionPool.check_connection(conn)
        _checked_at[conn] = monotonic()


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
        dsn, min_size=min_size, max_size=max_size, name=name, open=False, check=_check
    )
    pool.open(wait=True, timeout=30)
    return pool


async def async_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "dualrun",
    autocommit: bool = False,
) -> AsyncConnectionPool:
    """An opened async pool; the caller closes it (`await pool.close()`).

    `autocommit`: each statement is its own transaction, one round trip instead of three
    (BEGIN, the statement, COMMIT). For callers whose every write is one statement, like the
    Temporal worker's activities and step writes; `conn.transaction()` still groups statements.
    """
    pool = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        check=_acheck,
        kwargs={"autocommit": autocommit},
    )
    await pool.open(wait=True, timeout=30)
    return pool
