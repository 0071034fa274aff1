"""psycopg pools and connection strings. Nothing connects at import time.

Pools check a connection as they hand it out (one empty round trip) unless it was checked
less than a second ago: after a database restart or a terminated backend, a dead connection
is replaced instead of failing its next user, and a busy pool does not pay a round trip on
every checkout. Every connection logs and counts the status moves the database refuses
(`dualrun.move_refused` notices of the forward-only trigger: a status move, a final row's outcome
rewritten, a row deleted).
"""

from __future__ import annotations

import json
import re
import weakref
from time import monotonic
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from renewals.metrics import MOVES_REFUSED

log = structlog.get_logger(__name__)
REFUSED_NOTICE = "dualrun.move_refused "
_MOVE_FIELDS = ("operation_id", "engine", "from", "to", "columns")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CHECK_EVERY_S = 1.0
_checked_at: weakref.WeakKeyDictionary[object, float] = weakref.WeakKeyDictionary()


def _due(conn: object) -> bool:
    return monotonic() - _checked_at.get(conn, float("-inf")) >= CHECK_EVERY_S


def _check(conn: psycopg.Connection[Any]) -> None:
    if _due(conn):
        ConnectionPool.check_connection(conn)
        _checked_at[conn] = monotonic()


def _on_notice(diag: psycopg.errors.Diagnostic) -> None:
    """The forward-only trigger refused a write (a status move; a final row's outcome or a
    row's renewal rewritten: `columns`; a delete: to `deleted`): log it and count it."""
    text = diag.message_primary or ""
    if not text.startswith(REFUSED_NOTICE):
        return
    try:
        move = json.loads(text[len(REFUSED_NOTICE) :])
    except ValueError:
        move = {}
    MOVES_REFUSED.labels(
        engine=str(move.get("engine")),
        from_status=str(move.get("from")),
        to_status=str(move.get("to")),
    ).inc()
    log.warning(
        "operation.move_refused",
        refusal=move.get("event"),  # status.refused, outcome.refused or delete.refused
        **{k: move.get(k) for k in _MOVE_FIELDS},
    )


def _watch(conn: psycopg.Connection[Any]) -> None:
    conn.add_notice_handler(_on_notice)


async def _awatch(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.add_notice_handler(_on_notice)


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
    conn = psycopg.connect(dsn, autocommit=autocommit, row_factory=dict_row)
    _watch(conn)
    return conn


def sync_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 8, name: str = "dualrun"
) -> ConnectionPool:
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        check=_check,
        configure=_watch,
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
    timeout_s: float = 30.0,
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
        configure=_awatch,
        kwargs={"autocommit": autocommit},
    )
    await pool.open(wait=True, timeout=timeout_s)
    return pool
