"""What a relaunch selects and how it reports: validated selection, items, summary."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

from renewals.errors import InvalidInput
from renewals.outcomes import BUSINESS_REFUSALS

STATUSES = ("failed", "stuck")
DEFAULT_WINDOW = dt.timedelta(days=1)
DEFAULT_STUCK_AFTER_MIN = 30.0
DEFAULT_RATE = 10.0
MAX_RATE = 10_000.0

# Business outcomes (Temporal error types, legacy error codes): a relaunch would end the same.
REFUSALS = BUSINESS_REFUSALS


def parse_time(raw: str | None, name: str) -> dt.datetime | None:
    """ISO date or date-time; naive values are UTC."""
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(name, f"must be an ISO date or date-time, got {raw[:40]!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_positive(raw: str | float, name: str, high: float = math.inf) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(name, f"must be a number, got {str(raw)[:20]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(name, f"must be greater than 0, got {raw}")
    if value > high:
        raise InvalidInput(name, f"must be at most {high:g}, got {raw}")
    return value


@dataclass(frozen=True)
class Selection:
    """Operations of one TLD created in [since, until) that failed, or are stuck."""

    tld: str
    status: str
    since: dt.datetime | None = None  # None: `until` minus DEFAULT_WINDOW
    until: dt.datetime | None = None  # None: now
    stuck_after_min: float = DEFAULT_STUCK_AFTER_MIN
    include_refusals: bool = False

    @classmethod
    def parse(
        cls,
        *,
        tld: str | None,
        status: str,
        since: str | None,
        until: str | None,
        stuck_after: str | float,
        include_refusals: bool,
        known_tlds: frozenset[str],
    ) -> Selection:
        """Validate untrusted options; InvalidInput names the first bad one."""
        if not tld:
            raise InvalidInput("tld", "is required (or --resume JOB)")
        name = tld.strip().lower().lstrip(".")
        if name not in known_tlds:
            raise InvalidInput("tld", f"unknown TLD {tld[:20]!r} (known: {sorted(known_tlds)})")
        if status not in STATUSES:
            raise InvalidInput("status", f"must be failed or stuck, got {status[:20]!r}")
        start, end = parse_time(since, "since"), parse_time(until, "until")
        if start is not None and end is not None and start >= end:
            raise InvalidInput("since", f"must be before until ({start} >= {end})")
        if start is not None and end is None and start >= dt.datetime.now(dt.UTC):
            raise InvalidInput("since", f"must be in the past, got {start}")
        stuck = parse_positive(stuck_after, "stuck_after", 10 * 365 * 24 * 60)
        return cls(name, status, start, end, stuck, include_refusals)

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        until = self.until or now
        return self.since or until - DEFAULT_WINDOW, until

    @property
    def key(self) -> str:
        """The canonical selection: relaunching the same one again resumes its unfinished job."""
        return json.dumps(self.as_dict(), sort_keys=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tld": self.tld,
            "status": self.status,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "stuck_after_min": self.stuck_after_min if self.status == "stuck" else None,
            "include_refusals": self.include_refusals,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Selection:
        return cls(
            data["tld"],
            data["status"],
            parse_time(data.get("since"), "since"),
            parse_time(data.get("until"), "until"),
            data.get("stuck_after_min") or DEFAULT_STUCK_AFTER_MIN,
            bool(data.get("include_refusals")),
        )


@dataclass
class Summary:
    job_id: int | None
    dry_run: bool = False
    resumed: bool = False
    selected: int = 0
    relaunched: int = 0  # done: reset, started afresh or requeued
    skipped: int = 0
    failed: int = 0
    pending: int = 0  # left for a resume
    by_action: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    rate_achieved: float | None = None  # relaunches per second in this process
    items: list[dict[str, Any]] = field(default_factory=list)  # dry run; skipped/failed otherwise

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "selected": self.selected,
            "relaunched": self.relaunched,
            "skipped": self.skipped,
            "failed": self.failed,
            "pending": self.pending,
            "by_action": dict(sorted(self.by_action.items())),
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_achieved": None if self.rate_achieved is None else round(self.rate_achieved, 2),
            "items": self.items,
        }
