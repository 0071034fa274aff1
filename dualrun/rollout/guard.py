"""`rollout guard`: the kill switch that acts on findings (DESIGN §4).

A new critical finding on the Temporal side of a TLD (double renewal, double charge, lost
renewal, missing refund, a key touched by both engines) flips that TLD back to legacy at once:
new renewals go to legacy, renewals already decided stay pinned where they are. The guard runs
right after every duplicate sweep (the scheduler), and the sweep fires a short grace after each
aligned tick over what finished in it (reconciler/schedule.py), so a finding is acted upon
within one sweep interval plus that grace; each finding is looked at once
(`findings.guarded_at`; migration 0011 marks those from before the guard existed). It acts on
the TLD rules even while the flag is off, so `flags on` brings back no TLD it flipped. A
rollback is recorded as a rollout event (the findings and the run), logged, counted and posted
to the webhook.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from prometheus_client import Counter
from psycopg_pool import AsyncConnectionPool

from dualrun.flags.control import set_rule
from dualrun.flags.model import RuleChange
from dualrun.rollout import events
from dualrun.rollout.actions import current
from dualrun.rollout.events import Position, RolloutEvent
from dualrun.routing.router import FlagReader
from reconciler.model import Kind
from renewals.logs import redact_text
from renewals.model import Mode
from renewals.settings import Settings

log = structlog.get_logger(__name__)

GUARDED_KINDS = (
    Kind.DOUBLE_RENEWAL,
    Kind.DOUBLE_CHARGE,
    Kind.LOST_RENEWAL,
    Kind.REFUND_MISSING,
    Kind.CROSS_ENGINE_DUPLICATE,
)
ROLLBACKS = Counter(
    "dualrun_rollout_rollbacks_total",
    "TLDs the rollout guard flipped back to legacy on a critical Temporal-side finding",
    ["tld"],
)


def prime(tlds: list[str] | frozenset[str]) -> None:
    """Export the counter at 0 per TLD: the first rollback shows as an increase."""
    for tld in sorted(tlds):
        ROLLBACKS.labels(tld=tld)


_UNGUARDED = """
SELECT finding_key, kind, coalesce(tld, 'unknown') AS tld, last_run_id FROM findings
WHERE guarded_at IS NULL AND kind = ANY(%(kinds)s) AND engine LIKE '%%temporal%%'
ORDER BY first_seen_at, finding_key
"""


@dataclass(frozen=True)
class Rollback:
    tld: str
    before: Position
    reasons: tuple[str, ...]
    findings: tuple[str, ...]
    run_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tld": self.tld,
            "from": self.before.as_dict(),
            "reasons": list(self.reasons),
            "findings": list(self.findings),
            "run_id": self.run_id,
        }


async def guard(
    pool: AsyncConnectionPool, settings: Settings, chain: FlagReader | None = None
) -> list[Rollback]:
    """Act on every critical Temporal-side finding not yet looked at."""
    async with pool.connection() as conn:
        cur = await conn.execute(_UNGUARDED, {"kinds": [k.value for k in GUARDED_KINDS]})
        rows = await cur.fetchall()
    if not rows:
        return []
    by_tld: dict[str, list[tuple[str, str, int | None]]] = defaultdict(list)
    for key, kind, tld, run_id in rows:
        by_tld[tld].append((key, kind, run_id))
    # The rules, even while the flag is off (everything routed to legacy then): a rule left
    # as it is would route to Temporal again at `flags on`.
    places = await current(settings, chain, as_routed=False)
    done: list[Rollback] = []
    for tld, found in sorted(by_tld.items()):
        at = places.get(tld)
        if at is None or at.mode == Mode.LEGACY:
            continue  # its rule is legacy already (or not a TLD we route): nothing to flip
        kinds = sorted({kind for _, kind, _ in found})
        rollback = Rollback(
            tld,
            at,
            tuple(f"{sum(k == kind for _, k, _ in found)} new {kind}" for kind in kinds),
            tuple(key for key, _, _ in found),
            max((r for _, _, r in found if r is not None), default=None),
        )
        await asyncio.to_thread(set_rule, settings, RuleChange(tld, Mode.LEGACY, None))
        await events.record(
            pool,
            RolloutEvent(
                tld,
                "guard",
                "guard",
                at,
                Position(Mode.LEGACY),
                verdict="blocked",
                run_id=rollback.run_id,
                reason="; ".join(rollback.reasons),
                findings=rollback.findings,
            ),
        )
        ROLLBACKS.labels(tld=tld).inc()
        log.error("rollout.guard.rolled_back", **rollback.as_dict())
        done.append(rollback)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE findings SET guarded_at = now() WHERE finding_key = ANY(%s)",
            ([r[0] for r in rows],),
        )
    await _alert(settings, done)
    return done


async def _alert(settings: Settings, rollbacks: list[Rollback]) -> None:
    """POST each rollback to the webhook (best effort: the event and the metric are recorded)."""
    if not rollbacks or settings.webhook_url is None:
        return
    url = settings.webhook_url.reveal()
    async with httpx.AsyncClient(timeout=5) as http:
        for rollback in rollbacks:
            try:
                response = await http.post(url, json={"event": "rollback", **rollback.as_dict()})
                response.raise_for_status()
            except httpx.HTTPError as exc:
                error = redact_text(f"{type(exc).__name__}: {exc}", [url])
                log.warning("rollout.guard.webhook_failed", tld=rollback.tld, error=error)
