"""What a submit answers: one renewal's `Submitted`, a batch row's result or error, a batch's
results and summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Submitted:
    operation_id: str
    idempotency_key: str
    engine: str
    mode: str
    status: str
    deduplicated: bool
    dispatch_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "operation_id": self.operation_id,
            "idempotency_key": self.idempotency_key,
            "engine": self.engine,
            "mode": self.mode,
            "status": self.status,
            "deduplicated": self.deduplicated,
        }
        if self.dispatch_error is not None:
            out["dispatch_error"] = self.dispatch_error
        return out


@dataclass(frozen=True)
class RowError:
    code: str  # idempotency_conflict | operation_id_in_use
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class RowResult:
    """What became of one row of a batch (its 0-based index): submitted, or refused."""

    index: int
    idempotency_key: str
    submitted: Submitted | None = None
    error: RowError | None = None

    @property
    def operation_id(self) -> str | None:
        return self.submitted.operation_id if self.submitted else None

    @property
    def deduplicated(self) -> bool:
        return self.submitted.deduplicated if self.submitted else False

    @property
    def dispatch_error(self) -> str | None:
        return self.submitted.dispatch_error if self.submitted else None

    def as_dict(self) -> dict[str, Any]:
        if self.submitted is None:
            error = self.error.as_dict() if self.error else None
            return {"index": self.index, "ok": False, "idempotency_key": self.idempotency_key,
                    "error": error}  # fmt: skip
        return {"index": self.index, "ok": True, **self.submitted.as_dict()}


@dataclass(frozen=True)
class BatchResult:
    rows: tuple[RowResult, ...]

    def summary(self) -> dict[str, int]:
        counts = Counter(
            "refused" if r.error is not None else ("deduplicated" if r.deduplicated else "created")
            for r in self.rows
        )
        return {
            "rows": len(self.rows),
            "created": counts["created"],
            "deduplicated": counts["deduplicated"],
            "refused": counts["refused"],
            "dispatch_errors": sum(1 for r in self.rows if r.dispatch_error is not None),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "results": [r.as_dict() for r in self.rows]}
