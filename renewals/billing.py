"""The billing ledger client both engines use to charge and refund customers.

Every movement carries a `charge_key`: the same key twice is the same movement (answered with
the existing entry), the same key with another amount or customer is a conflict. The Temporal
side passes the renewal's idempotency key; the legacy engine has no key of its own and sends a
fresh one per call, which is exactly how it can charge twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from renewals.errors import DualrunError

log = structlog.get_logger(__name__)


class EntryKind(StrEnum):
    CHARGE = "charge"
    REFUND = "refund"


class BillingConflict(DualrunError):
    """The charge key is already used for another amount or customer."""

    def __init__(self, charge_key: str, field: str, existing: object, given: object) -> None:
        super().__init__(
            f"{field}: charge key {charge_key} already used with {existing!r}, not {given!r}"
        )
        self.charge_key = charge_key
        self.field = field


class NothingToRefund(DualrunError):
    """A refund was asked for a charge that does not exist."""

    def __init__(self, charge_key: str) -> None:
        super().__init__(f"charge_key: no charge {charge_key} to refund")
        self.charge_key = charge_key


@dataclass(frozen=True)
class LedgerEntry:
    entry_id: int
    charge_key: str
    kind: EntryKind
    idempotency_key: str
    operation_id: str
    customer_id: str
    amount_cents: int
    currency: str
    created_at: dt.datetime
    replayed: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any], replayed: bool = False) -> LedgerEntry:
        return cls(
            entry_id=row["entry_id"],
            charge_key=row["charge_key"],
            kind=EntryKind(row["kind"]),
            idempotency_key=row["idempotency_key"],
            operation_id=row["operation_id"],
            customer_id=row["customer_id"],
            amount_cents=row["amount_cents"],
            currency=row["currency"],
            created_at=row["created_at"],
            replayed=replayed,
        )


_INSERT = """
INSERT INTO billing_ledger
    (charge_key, kind, idempotency_key, operation_id, customer_id, amount_cents, currency)
VALUES (%(charge_key)s, %(kind)s, %(idempotency_key)s, %(operation_id)s, %(customer_id)s,
        %(amount_cents)s, %(currency)s)
ON CONFLICT (charge_key, kind) DO NOTHING
RETURNING *
"""
_SELECT = "SELECT * FROM billing_ledger WHERE charge_key = %s AND kind = %s"


class BillingLedger:
    """Charges and refunds, keyed, in the registrar's database."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def _record(self, params: dict[str, Any]) -> LedgerEntry:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_INSERT, params)
            row = await cur.fetchone()
            if row is not None:
                entry = LedgerEntry.from_row(row)
                log.info(
                    "billing.recorded",
                    kind=entry.kind.value,
                    charge_key=entry.charge_key,
                    operation_id=entry.operation_id,
                    amount_cents=entry.amount_cents,
                )
                return entry
            await cur.execute(_SELECT, (params["charge_key"], params["kind"]))
            existing = await cur.fetchone()
        if existing is None:  # pragma: no cover - a conflicting row cannot vanish (no deletes)
            raise BillingConflict(params["charge_key"], "charge_key", None, params["charge_key"])
        for field in ("amount_cents", "customer_id", "currency"):
            if existing[field] != params[field]:
                raise BillingConflict(params["charge_key"], field, existing[field], params[field])
        return LedgerEntry.from_row(existing, replayed=True)

    async def charge(
        self,
        *,
        charge_key: str,
        idempotency_key: str,
        operation_id: str,
        customer_id: str,
        amount_cents: int,
        currency: str,
    ) -> LedgerEntry:
        """Charge once per charge_key; a replay returns the first entry with `replayed=True`."""
        if amount_cents < 0:
            raise ValueError("amount_cents: must not be negative")
        return await self._record(
            {
                "charge_key": charge_key,
                "kind": EntryKind.CHARGE.value,
                "idempotency_key": idempotency_key,
                "operation_id": operation_id,
                "customer_id": customer_id,
                "amount_cents": amount_cents,
                "currency": currency,
            }
        )

    async def refund(self, *, charge_key: str) -> LedgerEntry:
        """Refund the whole charge made under charge_key, once."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_SELECT, (charge_key, EntryKind.CHARGE.value))
            charge = await cur.fetchone()
        if charge is None:
            raise NothingToRefund(charge_key)
        return await self._record({**charge, "kind": EntryKind.REFUND.value})

    async def unrefunded_charge(self, charge_key: str) -> LedgerEntry | None:
        """The charge made under charge_key, unless it was refunded."""
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT * FROM billing_ledger c WHERE c.charge_key = %s AND c.kind = 'charge'"
                " AND NOT EXISTS (SELECT 1 FROM billing_ledger r"
                "                 WHERE r.charge_key = c.charge_key AND r.kind = 'refund')",
                (charge_key,),
            )
            row = await cur.fetchone()
        return None if row is None else LedgerEntry.from_row(row)

    async def entries(self, idempotency_key: str) -> list[LedgerEntry]:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT * FROM billing_ledger WHERE idempotency_key = %s ORDER BY entry_id",
                (idempotency_key,),
            )
            return [LedgerEntry.from_row(r) for r in await cur.fetchall()]


async def charges_of_operation(pool: AsyncConnectionPool, operation_id: str) -> list[LedgerEntry]:
    """Every charge made for one operation (the legacy engine refunds them all on cancel)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT * FROM billing_ledger WHERE operation_id = %s AND kind = 'charge'"
            " ORDER BY entry_id",
            (operation_id,),
        )
        return [LedgerEntry.from_row(r) for r in await cur.fetchall()]
