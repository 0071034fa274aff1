"""The upstream auto-renew batch: creates renewal operations straight in the legacy tables.

It bypasses the router (no routing decision, no idempotency check), as the registrar's batch
did, and can be told to create a share of them twice: the month-start duplicate incident.
"""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from psycopg_pool import AsyncConnectionPool

from renewals.errors import InvalidInput
from renewals.model import RenewalRequest, new_operation_id

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BatchResult:
    created: int
    duplicated_keys: tuple[str, ...]
    operation_ids: tuple[str, ...]


def read_batch_file(path: Path, known_tlds: frozenset[str]) -> list[RenewalRequest]:
    """CSV with a header: domain,current_expiry,customer_id[,years]. Validated, all or nothing.

    Errors name the field and the file's line (blank lines and quoted newlines counted).
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return _read_batch(csv.DictReader(handle), path.name, known_tlds)
    except UnicodeDecodeError as exc:
        raise InvalidInput("file", f"{path.name}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InvalidInput("file", f"{path.name}: not a readable CSV file ({exc})") from None


def _read_batch(
    reader: csv.DictReader[str], name: str, known_tlds: frozenset[str]
) -> list[RenewalRequest]:
    missing = {"domain", "current_expiry", "customer_id"} - set(reader.fieldnames or ())
    if missing:
        raise InvalidInput("file", f"{name}: header lacks {', '.join(sorted(missing))}")
    requests = []
    for raw in reader:
        line = reader.line_num
        years_raw = (raw.get("years") or "1").strip()
        if not years_raw.isdigit():
            raise InvalidInput("years", f"{name} line {line}: must be an integer")
        fields = {  # an empty cell is a missing field ("is required")
            "domain": (raw["domain"] or "").strip() or None,
            "current_expiry": (raw["current_expiry"] or "").strip() or None,
            "customer_id": (raw["customer_id"] or "").strip() or None,
            "years": int(years_raw),
        }
        try:
            requests.append(RenewalRequest.parse(fields, known_tlds))
        except InvalidInput as exc:
            raise InvalidInput(exc.field, f"{name} line {line}: {exc.problem}") from None
    return requests


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
) -> BatchResult:
    """Insert one legacy operation per request, and a second one for `duplicate_share` of them,
    in one transaction (pipelined)."""
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
