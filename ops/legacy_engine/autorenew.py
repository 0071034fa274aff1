"""The upstream auto-renew batch: creates renewal operations straight in the legacy tables.

It bypasses the router (no routing decision, no idempotency check), as the registrar's batch
did, and can be told to create a share of them twice: the month-start duplicate incident.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from psycopg_pool import AsyncConnectionPool

from renewals.errors import InvalidInput
from renewals.model import RenewalRequest, new_operation_id
from renewals.renewal_file import read_all

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BatchResult:
    created: int
    duplicated_keys: tuple[str, ...]
    operation_ids: tuple[str, ...]


def read_batch_file(path: Path, known_tlds: frozenset[str]) -> list[RenewalRequest]:
    """The renewals file (`renewals.renewal_file`), all or nothing: the first bad row is
    raised, naming its line and field."""
    return read_all(path, known_tlds)


# The batch writes the legacy tables itself, as the registrar's upstream batch does: no
# routing decision, no idempotency check.
_INSERT = """
INSERT INTO operations (operation_id, idempotency_key, domain, tld, years, current_expiry,
                        customer_id, engine, origin, status)
VALUES (%s, %s, %s, %s, %s, %s, %s, 'legacy', 'autorenew', 'todo')
"""
_EVENT = """
INSERT INTO operation_events (operation_id, event, detail)
VALUES (%s, 'created', '{"engine": "legacy", "origin": "autorenew"}')
"""


async def create_batch(
    pool: AsyncConnectionPool,
    requests: Sequence[RenewalRequest] | Iterable[RenewalRequest],
    *,
    duplicate_share: float = 0.0,
    seed: int | None = None,
    around_guards: bool = False,
) -> BatchResult:
    """Insert one legacy operation per request, and a second one for `duplicate_share` of them,
    in one transaction (pipelined). The registrar's database supersedes a second row of a key
    at birth (it never runs); `around_guards` writes with its triggers off, as a bulk load or a
    hand fix would (a superuser's session_replication_role = replica): both rows then run, as
    the legacy system's twins always did, for the reconciler to find."""
    if not 0.0 <= duplicate_share <= 1.0:
        raise InvalidInput("duplicate_share", f"must be between 0 and 1, got {duplicate_share}")
    rng = random.Random(seed)
    requests = list(requests)
    dup_count = round(len(requests) * duplicate_share)
    doubled = set(rng.sample(range(len(requests)), dup_count)) if dup_count else set()
    rows: list[RenewalRequest] = []
    keys: list[str] = []
    for i, request in enumerate(requests):
        rows.append(request)
        if i in doubled:
            rows.append(dataclasses.replace(request, operation_id=new_operation_id()))
            keys.append(request.idempotency_key)
    async with pool.connection() as conn, conn.transaction():
        if around_guards:
            await conn.execute("SET LOCAL session_replication_role = replica")
        cur = conn.cursor()
        await cur.executemany(
            _INSERT,
            [
                (r.operation_id, r.idempotency_key, r.domain, r.tld, r.years, r.current_expiry,
                 r.customer_id)
                for r in rows
            ],
        )  # fmt: skip
        await cur.executemany(_EVENT, [(r.operation_id,) for r in rows])
    ids = tuple(r.operation_id for r in rows)
    log.info("legacy.autorenew.batch", created=len(ids), duplicated=len(keys))
    return BatchResult(created=len(ids), duplicated_keys=tuple(keys), operation_ids=ids)
