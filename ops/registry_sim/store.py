"""The simulator's PostgreSQL storage: domains, the renewal ledger and stored configuration."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ops.registry_sim.models import SimError
from renewals.model import add_years
from renewals.registry import RENEW_PROHIBITING
from renewals.registry_errors import (
    EPP_OBJECT_NOT_FOUND,
    EPP_POLICY_ERROR,
    EPP_STATUS_PROHIBITS,
    REASON_EXPIRY_MISMATCH,
    REASON_MAX_PERIOD,
)

SeedRow = tuple[str, str, dt.date, int | None, list[str]]
MAX_PERIOD_YEARS = 10
_LEDGER_COLUMNS = (
    "renewal_id, tld, domain, client_tx_id, server_tx_id, years, previous_expiry, new_expiry,"
    " cur_exp_date, created_at"
)


def not_found(domain: str) -> SimError:
    return SimError(
        404, f"domain {domain} does not exist", code=EPP_OBJECT_NOT_FOUND, domain=domain
    )


async def load_overrides(pool: AsyncConnectionPool) -> dict[str, dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT tld, overrides FROM sim_registry_config")
        return {row["tld"]: dict(row["overrides"]) for row in await cur.fetchall()}


async def save_overrides(pool: AsyncConnectionPool, tld: str, overrides: dict[str, Any]) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO sim_registry_config (tld, overrides) VALUES (%s, %s)"
            " ON CONFLICT (tld) DO UPDATE SET overrides = EXCLUDED.overrides, updated_at = now()",
            (tld, Jsonb(overrides)),
        )


async def get_domain(pool: AsyncConnectionPool, tld: str, domain: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT domain, expiry, premium_cents, statuses FROM sim_domains"
            " WHERE domain = %s AND tld = %s",
            (domain, tld),
        )
        row = await cur.fetchone()
    if row is None:
        raise not_found(domain)
    return row


async def renew(
    pool: AsyncConnectionPool,
    *,
    tld: str,
    domain: str,
    cur_exp_date: dt.date,
    years: int,
    client_tx_id: str | None,
    strict: bool,
    today: dt.date,
) -> dict[str, Any]:
    """Renew atomically (row lock, new expiry, ledger row); SimError when refused."""
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT expiry, statuses FROM sim_domains WHERE domain = %s AND tld = %s FOR UPDATE",
            (domain, tld),
        )
        row = await cur.fetchone()
        if row is None:
            raise not_found(domain)
        blocking = sorted(RENEW_PROHIBITING.intersection(row["statuses"]))
        if blocking:
            raise SimError(
                403,
                f"{domain}: status {', '.join(blocking)} prohibits renewal",
                code=EPP_STATUS_PROHIBITS,
                domain=domain,
                statuses=blocking,
            )
        expiry: dt.date = row["expiry"]
        if strict and cur_exp_date != expiry:
            raise SimError(
                409,
                f"{domain}: curExpDate {cur_exp_date} is not the current expiry",
                code=EPP_POLICY_ERROR,
                reason=REASON_EXPIRY_MISMATCH,
                domain=domain,
                cur_exp_date=cur_exp_date.isoformat(),
                current_expiry=expiry.isoformat(),
            )
        new_expiry = add_years(expiry, years)
        ceiling = add_years(today, MAX_PERIOD_YEARS)
        if new_expiry > ceiling:
            raise SimError(
                409,
                f"{domain}: new expiry {new_expiry} is over {MAX_PERIOD_YEARS} years away",
                code=EPP_POLICY_ERROR,
                reason=REASON_MAX_PERIOD,
                domain=domain,
                max_expiry=ceiling.isoformat(),
            )
        server_tx_id = f"{tld.upper()}-{uuid.uuid4().hex[:20]}"
        await cur.execute(
            "UPDATE sim_domains SET expiry = %s, updated_at = now() WHERE domain = %s",
            (new_expiry, domain),
        )
        await cur.execute(
            f"INSERT INTO sim_renewals (tld, domain, client_tx_id, server_tx_id, years,"
            f" previous_expiry, new_expiry, cur_exp_date) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {_LEDGER_COLUMNS}",
            (tld, domain, client_tx_id, server_tx_id, years, expiry, new_expiry, cur_exp_date),
        )
        inserted = await cur.fetchone()
    assert inserted is not None
    return inserted


async def ledger(
    pool: AsyncConnectionPool,
    tld: str,
    *,
    domain: str | None = None,
    client_tx_id: str | None = None,
    since: dt.datetime | None = None,
    after_id: int | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    where = ["tld = %s"]
    args: list[Any] = [tld]
    for clause, value in (
        ("domain = %s", domain),
        ("client_tx_id = %s", client_tx_id),
        ("created_at >= %s", since),
        ("renewal_id > %s", after_id),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    args.append(limit)
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"SELECT {_LEDGER_COLUMNS} FROM sim_renewals WHERE {' AND '.join(where)}"
            " ORDER BY renewal_id LIMIT %s",
            args,
        )
        return await cur.fetchall()


async def seed(pool: AsyncConnectionPool, rows: Iterable[SeedRow]) -> int:
    """Upsert domains through COPY into a temporary table; returns how many rows were given."""
    count = 0
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE sim_seed_tmp (domain text, tld text, expiry date,"
            " premium_cents bigint, statuses text[]) ON COMMIT DROP"
        )
        async with conn.cursor().copy(
            "COPY sim_seed_tmp (domain, tld, expiry, premium_cents, statuses) FROM STDIN"
        ) as copy:
            for row in rows:
                await copy.write_row(row)
                count += 1
        await conn.execute(
            "INSERT INTO sim_domains (domain, tld, expiry, premium_cents, statuses)"
            " SELECT domain, tld, expiry, premium_cents, statuses FROM sim_seed_tmp"
            " ON CONFLICT (domain) DO UPDATE SET tld = EXCLUDED.tld, expiry = EXCLUDED.expiry,"
            " premium_cents = EXCLUDED.premium_cents, statuses = EXCLUDED.statuses,"
            " updated_at = now()"
        )
    return count


async def counts(pool: AsyncConnectionPool, tld: str) -> dict[str, int]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT (SELECT count(*) FROM sim_domains WHERE tld = %s) AS domains,"
            " (SELECT count(*) FROM sim_renewals WHERE tld = %s) AS renewals",
            (tld, tld),
        )
        row = await cur.fetchone()
    assert row is not None
    return {"domains": int(row["domains"]), "renewals": int(row["renewals"])}


async def reset(pool: AsyncConnectionPool, tld: str | None) -> None:
    """Forget domains, renewals and stored configuration (of one registry, or of all)."""
    async with pool.connection() as conn, conn.transaction():
        if tld is None:
            await conn.execute("TRUNCATE sim_domains, sim_renewals, sim_registry_config")
            return
        for table in ("sim_domains", "sim_renewals", "sim_registry_config"):
            await conn.execute(f"DELETE FROM {table} WHERE tld = %s", (tld,))
