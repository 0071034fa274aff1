"""Versioned SQL migrations, recorded in `schema_migrations`, safe to run from several processes.

Files are `NNNN_name.sql` in a directory per component (core here, registry_sim in ops). A
whole run is one transaction under an advisory lock scoped to the current schema, so two
processes migrating at once serialise: the second finds everything applied and changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import structlog

log = structlog.get_logger(__name__)

CORE_MIGRATIONS = Path(__file__).parent / "migrations"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_CLASS = 0x6475  # "du"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


class MigrationError(Exception):
    def __init__(self, component: str, version: int, problem: str) -> None:
        super().__init__(f"migration {component}/{version:04d}: {problem}")
        self.component = component
        self.version = version


def load(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(directory.name, 0, f"badly named file {path.name}")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(directory.name, 0, "two files share a version number")
    return found


def migrate(conn: psycopg.Connection[object], component: str, directory: Path) -> list[int]:
    """Apply the missing migrations of `component`; returns the versions applied now."""
    migrations = load(directory)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(current_schema(), '')))",
            (_LOCK_CLASS,),
        )
        schema = conn.execute("SELECT current_schema()").fetchone()
        if schema is None or schema[0] is None:  # type: ignore[index]
            raise MigrationError(component, 0, "the search_path names no existing schema")
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   component text NOT NULL,
                   version int NOT NULL,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (component, version))"""
        )
        rows = conn.execute(
            "SELECT version, checksum FROM schema_migrations WHERE component = %s", (component,)
        ).fetchall()
        applied: dict[int, str] = {r[0]: r[1] for r in rows}  # type: ignore[index]
        done: list[int] = []
        for m in migrations:
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    log.warning(
                        "db.migration.changed", component=component, version=m.version, name=m.name
                    )
                continue
            conn.execute(m.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (component, version, name, checksum)"
                " VALUES (%s, %s, %s, %s)",
                (component, m.version, m.name, m.checksum),
            )
            done.append(m.version)
    log.info("db.migrated", component=component, applied=done, already=len(applied))
    return done


def migrate_core(dsn: str) -> list[int]:
    """Migrate dualrun's own tables (the other components migrate theirs: the simulator)."""
    with psycopg.connect(dsn) as conn:
        return migrate(conn, "core", CORE_MIGRATIONS)
