"""The registry simulator: EPP-like registries over HTTP with rate limits and injectable faults."""

from pathlib import Path

import psycopg

from renewals.db.migrate import migrate

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate_tables(dsn: str) -> list[int]:
    """Create or update the simulator's tables (it keeps them in the registrar's database)."""
    with psycopg.connect(dsn) as conn:
        return migrate(conn, "registry_sim", MIGRATIONS)
