"""Rollout events: every change of a TLD's flag, when, by whom, from what to what, and why."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from dualrun.flags.model import TldRule
from renewals.model import Mode

_INSERT = """
INSERT INTO rollout_events (tld, action, actor, from_mode, from_rollout, to_mode, to_rollout,
                            verdict, run_id, forced, reason, findings)
VALUES (%(tld)s, %(action)s, %(actor)s, %(from_mode)s, %(from_rollout)s, %(to_mode)s,
        %(to_rollout)s, %(verdict)s, %(run_id)s, %(forced)s, %(reason)s, %(findings)s)
RETURNING event_id
"""


def os_actor() -> str:
    """Who runs the CLI: the OS user."""
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


@dataclass(frozen=True)
class Position:
    """A TLD's place on the flag: its mode and rollout (legacy when it has no rule)."""

    mode: Mode
    rollout: int | None = None

    @classmethod
    def of(cls, rule: TldRule | None) -> Position:
        if rule is None or rule.mode == Mode.LEGACY:
            return cls(Mode.LEGACY)
        return cls(rule.mode, rule.rollout if rule.mode == Mode.TEMPORAL else None)

    def as_dict(self) -> dict[str, object]:
        return {"mode": self.mode.value, "rollout": self.rollout}


@dataclass(frozen=True)
class RolloutEvent:
    tld: str
    action: str  # next | back | guard | set
    actor: str
    before: Position | None
    after: Position
    verdict: str | None = None
    run_id: int | None = None
    forced: bool = False
    reason: str | None = None
    findings: tuple[str, ...] = field(default_factory=tuple)


async def record(pool: AsyncConnectionPool, event: RolloutEvent) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            _INSERT,
            {
                "tld": event.tld,
                "action": event.action,
                "actor": event.actor,
                "from_mode": event.before.mode.value if event.before else None,
                "from_rollout": event.before.rollout if event.before else None,
                "to_mode": event.after.mode.value,
                "to_rollout": event.after.rollout,
                "verdict": event.verdict,
                "run_id": event.run_id,
                "forced": event.forced,
                "reason": event.reason,
                "findings": list(event.findings),
            },
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def last_by_tld(pool: AsyncConnectionPool) -> dict[str, dict[str, object]]:
    """Each TLD's latest rollout event."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT DISTINCT ON (tld) tld, at, action, actor, from_mode, from_rollout, to_mode,"
            " to_rollout, verdict, forced, reason FROM rollout_events"
            " ORDER BY tld, event_id DESC"
        )
        names = [c.name for c in cur.description or ()]
        rows = await cur.fetchall()
    return {str(r[0]): dict(zip(names, r, strict=True)) for r in rows}
