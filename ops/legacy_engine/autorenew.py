"""The upstream auto-renew batch: creates renewal operations straight in the legacy tables.

It bypasses the router (no routing decision, no idempotency check), as the registrar's batch
did, and can be told to create a share of them twice: the month-start duplicate incident.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from psycopg_pool import AsyncConnectionPool

from renewals.errors import InvalidInput
from renewals.model import Engine, RenewalRequest, new_operation_id
from renewals.operations import insert_operation

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


async def create_batch(
    pool: AsyncConnectionPool,
    requests: Sequence[RenewalRequest] | Iterable[RenewalRequest],
    *,
    duplicate_share: float = 0.0,
    seed: int | None = None,
) -> BatchResult:
    """Insert one legacy operation per request, and a second one for `duplicate_share` of them."""
    if not 0.0 <= duplicate_share <= 1.0:
        raise InvalidInput("duplicate_share", f"must be between 0 and 1, got {duplicate_share}")
    rng = random.Random(seed)
    requests = list(requests)
    dup_count = round(len(requests) * duplicate_share)
    doubled = set(rng.sample(range(len(requests)), dup_count)) if dup_count else set()
    ids: list[str] = []
    keys: list[str] = []
    async with pool.connection() as conn, conn.transaction():
        for i, request in enumerate(requests):
            await insert_operation(conn, request, Engine.LEGACY, origin="autorenew")
            ids.append(request.operation_id)
            if i in doubled:
                twin = RenewalRequest(
                    domain=request.domain,
                    years=request.years,
                    current_expiry=request.current_expiry,
                    customer_id=request.customer_id,
                    operation_id=new_operation_id(),
                )
                await insert_operation(conn, twin, Engine.LEGACY, origin="autorenew")
                ids.append(twin.operation_id)
                keys.append(request.idempotency_key)
    log.info("legacy.autorenew.batch", created=len(ids), duplicated=len(keys))
    return BatchResult(created=len(ids), duplicated_keys=tuple(keys), operation_ids=tuple(ids))
