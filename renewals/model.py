"""The renewal: request, idempotency key, statuses and engine-independent outcome (DESIGN §3)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from renewals.domains import DEFAULT_TLDS, normalise_domain, tld_of
from renewals.errors import InvalidInput

MIN_YEARS = 1
MAX_YEARS = 10
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
REQUEST_FIELDS = ("domain", "years", "current_expiry", "customer_id", "operation_id")
REQUIRED_FIELDS = ("domain", "years", "current_expiry", "customer_id")


class Engine(StrEnum):
    LEGACY = "legacy"
    TEMPORAL = "temporal"


class Mode(StrEnum):
    LEGACY = "legacy"
    SHADOW = "shadow"
    TEMPORAL = "temporal"


class OperationStatus(StrEnum):
    """Statuses of the operations table, as the registrar's tasks service writes them."""

    TODO = "todo"
    DOING = "doing"
    ERROR = "error"  # legacy: failed an attempt, picked up again after a delay
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"  # another operation has this renewal: this one ran nothing

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: frozenset[OperationStatus] = frozenset(
    {
        OperationStatus.DONE,
        OperationStatus.FAILED,
        OperationStatus.CANCELLED,
        OperationStatus.SUPERSEDED,
    }
)
"""Statuses an operation ends in (the one definition; SQL gets it from renewals.operations)."""
HAS_RENEWAL: frozenset[OperationStatus] = frozenset(
    {OperationStatus.TODO, OperationStatus.DOING, OperationStatus.ERROR, OperationStatus.DONE}
)
"""An operation live or done has its renewal; failed, cancelled or superseded ones do not
(the database's `dualrun_has_renewal` says the same)."""


class Origin(StrEnum):
    """What created an operation row."""

    ROUTER = "router"
    AUTORENEW = "autorenew"
    RELAUNCH = "relaunch"
    IMPORT = "import"


class Step(StrEnum):
    """The five steps of a renewal, the same in both engines."""

    STATUS = "status"
    PRICE = "price"
    CHARGE = "charge"
    RENEW = "renew"
    RECORD = "record"


def idempotency_key(domain: str, current_expiry: dt.date) -> str:
    """`renew:{domain}:{current_expiry}`: names this renewal period of this domain."""
    return f"renew:{domain}:{current_expiry.isoformat()}"


def new_operation_id() -> str:
    return f"op-{uuid.uuid4().hex}"


def _years(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidInput("years", f"must be an integer, got {type(raw).__name__}")
    if not MIN_YEARS <= raw <= MAX_YEARS:
        raise InvalidInput("years", f"must be between {MIN_YEARS} and {MAX_YEARS}, got {raw}")
    return raw


def _date(raw: object, field: str) -> dt.date:
    if isinstance(raw, dt.datetime):
        raise InvalidInput(field, "must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(raw, dt.date):
        return raw
    if not isinstance(raw, str):
        raise InvalidInput(field, f"must be a date string YYYY-MM-DD, got {type(raw).__name__}")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise InvalidInput(field, f"must be a date YYYY-MM-DD, got {raw[:40]!r}")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(field, f"is not a real date ({exc})") from None


def _token(raw: object, field: str) -> str:
    if not isinstance(raw, str):
        raise InvalidInput(field, f"must be a string, got {type(raw).__name__}")
    if not _TOKEN.fullmatch(raw):  # `$` would let a trailing newline through
        raise InvalidInput(
            field, "must be 1-64 characters of letters, digits, '.', '_', ':' or '-'"
        )
    return raw


def check_operation_id(raw: object) -> str:
    """An operation id as callers name one (1-64 letters, digits, '.', '_', ':' or '-')."""
    return _token(raw, "operation_id")


@dataclass(frozen=True)
class RenewalRequest:
    """A validated renewal request. Build it with `parse` (untrusted input) or directly in code."""

    domain: str
    years: int
    current_expiry: dt.date
    customer_id: str
    operation_id: str

    @classmethod
    def parse(
        cls, raw: Mapping[str, Any], known_tlds: frozenset[str] = DEFAULT_TLDS
    ) -> RenewalRequest:
        """Validate untrusted input; raises InvalidInput naming the first bad field."""
        if not isinstance(raw, Mapping):
            raise InvalidInput("request", f"must be an object, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(REQUEST_FIELDS))
        if unknown:
            raise InvalidInput(str(unknown[0]), "unknown field")
        for name in REQUIRED_FIELDS:
            if raw.get(name) is None:
                raise InvalidInput(name, "is required")
        operation_id = raw.get("operation_id")
        return cls(
            domain=normalise_domain(raw["domain"], known_tlds),
            years=_years(raw["years"]),
            current_expiry=_date(raw["current_expiry"], "current_expiry"),
            customer_id=_token(raw["customer_id"], "customer_id"),
            operation_id=(
                new_operation_id() if operation_id is None else _token(operation_id, "operation_id")
            ),
        )

    @property
    def tld(self) -> str:
        return tld_of(self.domain)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.domain, self.current_expiry)

    def params(self) -> dict[str, Any]:
        """The parameters that must match for a resubmission under the same key."""
        return {"years": self.years, "customer_id": self.customer_id}


def add_years(day: dt.date, years: int) -> dt.date:
    """Calendar years later; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class Operation:
    """One row of the operations table (the source of truth), as every floor reads it."""

    operation_id: str
    idempotency_key: str
    domain: str
    engine: Engine
    status: OperationStatus
    years: int
    current_expiry: dt.date
    customer_id: str
    origin: Origin = Origin.ROUTER
    step: Step | None = None
    attempts: int = 0
    workflow_id: str | None = None
    run_id: str | None = None
    cancel_requested_at: dt.datetime | None = None
    superseded_by: str | None = None
    lease_expires_at: dt.datetime | None = None
    new_expiry: dt.date | None = None
    registry_transaction_id: str | None = None
    price_cents: int | None = None
    charged_cents: int | None = None
    refunded_cents: int | None = None
    currency: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Operation:
        """From a `SELECT *` of operations (unknown columns are ignored)."""
        fields = {name: row[name] for name in _OPERATION_FIELDS if name in row}
        fields["engine"] = Engine(row["engine"])
        fields["status"] = OperationStatus(row["status"])
        fields["origin"] = Origin(row.get("origin") or Origin.ROUTER)
        fields["step"] = Step(row["step"]) if row.get("step") else None
        return cls(**fields)

    @property
    def tld(self) -> str:
        return tld_of(self.domain)

    @property
    def request(self) -> RenewalRequest:
        """The renewal this operation carries out."""
        return RenewalRequest(
            self.domain, self.years, self.current_expiry, self.customer_id, self.operation_id
        )

    @property
    def duration_s(self) -> float | None:
        if self.created_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()


_OPERATION_FIELDS = tuple(Operation.__dataclass_fields__)
