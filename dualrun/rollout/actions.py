"""`rollout next|back|status`: one step of a TLD's flag at a time, on its latest verdict.

The verdict is the latest full run's, judged on the flag as it stands now (a fresh report, not
a stored file). `next` moves exactly one step along legacy → shadow → temporal 1% → 5% → 25%
→ 50% → 100% only when that verdict is ready, unless forced with a reason; `back` moves one
step back. Each change is recorded as a rollout event.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from dualrun.flags.control import set_rule
from dualrun.flags.model import RuleChange, check_change
from dualrun.flags.port import FlagView
from dualrun.rollout import events
from dualrun.rollout.events import Position, RolloutEvent
from dualrun.routing.router import FlagReader
from dualrun.wiring import flag_info, started_chain
from reconciler.report import LADDER, RunNotFound, Thresholds, build_report, latest_run_id
from reconciler.report.verdict import Readiness, Verdict, position
from renewals.errors import InvalidInput
from renewals.model import Mode
from renewals.settings import Settings


@dataclass(frozen=True)
class Move:
    """What `rollout next|back` did (or, dry, would do) to one TLD's flag."""

    tld: str
    before: Position
    after: Position | None  # None: no step to take
    verdict: str
    reasons: tuple[str, ...]
    applied: bool
    run_id: int | None = None
    forced: bool = False
    checklist: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tld": self.tld,
            "from": self.before.as_dict(),
            "to": self.after.as_dict() if self.after else None,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "applied": self.applied,
            "run_id": self.run_id,
            "forced": self.forced,
        }


def _step(index: int) -> Position:
    step = LADDER[index]
    return Position(Mode(step.mode), step.rollout if step.mode == Mode.TEMPORAL else None)


def _index(at: Position) -> int:
    return position(at.mode.value, at.rollout)


def check_tld(settings: Settings, raw: str) -> str:
    """A TLD the service routes (the first bad input named, exit 2)."""
    return check_change(raw, Mode.LEGACY.value, None, settings.tlds).tld


async def _view(settings: Settings, chain: FlagReader | None) -> FlagView:
    """The flags as they are now: from a running chain (the API's), else a chain of its own."""
    if chain is not None:
        return chain.read()
    async with started_chain(settings) as own:
        return own.read()


async def current(
    settings: Settings, chain: FlagReader | None = None, *, as_routed: bool = True
) -> dict[str, Position]:
    """Every TLD's place on the flag now: as the router routes (legacy when the flag is off or
    has no rule), or (`as_routed=False`) its rule, which applies again once the flag is on."""
    view = await _view(settings, chain)
    rules = view.state.rules if view.state.enabled or not as_routed else {}
    return {tld: Position.of(rules.get(tld)) for tld in sorted(settings.tlds)}


async def verdicts(
    pool: AsyncConnectionPool, settings: Settings, chain: FlagReader | None = None
) -> tuple[int | None, dict[str, Readiness]]:
    """The latest full run and each TLD's verdict on it, with the flags as they are now."""
    flags = flag_info(await _view(settings, chain), settings.tlds)
    try:
        run_id = await latest_run_id(pool)
    except RunNotFound:
        return None, {}
    report = await build_report(
        pool,
        run_id,
        flags=flags,
        thresholds=Thresholds.from_settings(settings),
        tlds=settings.tlds,
    )
    return run_id, {r.tld: r for r in report.readiness}


def _no_run(tld: str, at: Position) -> Readiness:
    label = f"{at.mode.value} {at.rollout}%" if at.mode == Mode.TEMPORAL else at.mode.value
    reasons = ("no full reconciliation run yet (`dualrun reconcile`)",)
    return Readiness(tld, Verdict.HOLD, label, None, reasons)


async def advance(
    pool: AsyncConnectionPool,
    settings: Settings,
    tld: str,
    *,
    actor: str,
    dry_run: bool = False,
    force: bool = False,
    reason: str | None = None,
    chain: FlagReader | None = None,
) -> Move:
    """`rollout next TLD`: one step forward when the verdict is ready (or forced, with a
    reason); not applied otherwise, with the verdict's reasons."""
    if force and not (reason or "").strip():
        raise InvalidInput("reason", "is required with --force (it is recorded)")
    at = (await current(settings, chain))[tld]
    run_id, found = await verdicts(pool, settings, chain)
    readiness = found.get(tld) or _no_run(tld, at)
    index = _index(at)
    following = _step(index + 1) if index + 1 < len(LADDER) else None
    go = following is not None and (readiness.verdict == Verdict.READY or force)
    move = Move(
        tld,
        at,
        following,
        readiness.verdict.value,
        readiness.reasons,
        applied=go and not dry_run,
        run_id=run_id,
        forced=force and readiness.verdict != Verdict.READY,
        checklist=readiness.checklist,
    )
    if move.applied and following is not None:
        await _apply(pool, settings, move, "next", actor, reason)
    return move


async def step_back(
    pool: AsyncConnectionPool,
    settings: Settings,
    tld: str,
    *,
    actor: str,
    reason: str,
    chain: FlagReader | None = None,
) -> Move:
    """`rollout back TLD --reason R`: one step back (nothing below legacy)."""
    if not reason.strip():
        raise InvalidInput("reason", "is required (it is recorded)")
    at = (await current(settings, chain))[tld]
    index = _index(at)
    previous = _step(index - 1) if index > 0 else None
    run_id, found = await verdicts(pool, settings, chain)
    readiness = found.get(tld) or _no_run(tld, at)
    move = Move(
        tld,
        at,
        previous,
        readiness.verdict.value,
        readiness.reasons,
        applied=previous is not None,
        run_id=run_id,
    )
    if previous is not None:
        await _apply(pool, settings, move, "back", actor, reason)
    return move


async def _apply(
    pool: AsyncConnectionPool,
    settings: Settings,
    move: Move,
    action: str,
    actor: str,
    reason: str | None,
) -> None:
    assert move.after is not None
    change = RuleChange(move.tld, move.after.mode, move.after.rollout or 100)
    await asyncio.to_thread(set_rule, settings, change)  # Unleash's admin API: blocking
    await events.record(
        pool,
        RolloutEvent(
            move.tld,
            action,
            actor,
            move.before,
            move.after,
            verdict=move.verdict,
            run_id=move.run_id,
            forced=move.forced,
            reason=reason,
        ),
    )


async def status(
    pool: AsyncConnectionPool, settings: Settings, chain: FlagReader | None = None
) -> list[dict[str, Any]]:
    """`rollout status`: per TLD the step, the verdict and the last change."""
    at = await current(settings, chain)
    run_id, found = await verdicts(pool, settings, chain)
    last = await events.last_by_tld(pool)
    rows = []
    for tld, where in at.items():
        readiness = found.get(tld) or _no_run(tld, where)
        change = last.get(tld)
        rows.append(
            {
                "tld": tld,
                "step": where.as_dict(),
                "verdict": readiness.verdict.value,
                "next": readiness.next,
                "reasons": list(readiness.reasons),
                "run_id": run_id,
                "last_change": _jsonable(change) if change else None,
            }
        )
    return rows


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
