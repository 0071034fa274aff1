"""Each engine's share of a provider both engines call, as the month-start runbook sets it.

On .de (Temporal 25%) and .info (shadow) both engines call one provider. Each paced at the
whole limit, they ask twice what it allows: half their calls draw a 429, and each Temporal
renew retried after one reads the registry first (another admitted call). The runbook sets
Temporal's limit to what the provider allows less what the legacy engine sends; here the limit
is split by the calls each engine will make, from the router's own decisions for the burst
(a Temporal renewal or a legacy one makes 3 calls, a shadow plan 2), so both finish together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from dualrun.routing.router import Router
from dualrun.wiring import started_chain
from renewals.domains import tld_of
from renewals.model import Mode
from renewals.settings import Settings

CALLS = {"renewal": 3, "shadow plan": 2}


async def calls_by_engine(
    settings: Settings, routed: Iterable[str], batch: Iterable[str]
) -> tuple[Counter[str], Counter[str]]:
    """(Temporal's, the legacy engine's) registry calls per TLD for this burst."""
    temporal: Counter[str] = Counter()
    legacy: Counter[str] = Counter()
    async with started_chain(settings) as chain:
        for decision in Router(chain).route_all(routed):
            if decision.mode == Mode.TEMPORAL:
                temporal[decision.tld] += CALLS["renewal"]
                continue
            legacy[decision.tld] += CALLS["renewal"]
            if decision.mode == Mode.SHADOW:
                temporal[decision.tld] += CALLS["shadow plan"] * (1 + settings.shadow_aa_share)
    for domain in batch:
        legacy[tld_of(domain)] += CALLS["renewal"]
    return temporal, legacy


def split(
    settings: Settings, temporal: Counter[str], legacy: Counter[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """(Temporal's, the legacy robots') limit per TLD: the provider's limit in proportion to
    each engine's calls where both call it; the whole limit where one engine does."""
    ours: dict[str, float] = {}
    theirs: dict[str, float] = {}
    for tld in sorted(settings.tlds):
        limit, t, lg = settings.rate_limit(tld), temporal[tld], legacy[tld]
        both = bool(t and lg)
        ours[tld] = round(limit * t / (t + lg), 3) if both else limit
        theirs[tld] = round(limit - ours[tld], 3) if both else limit
    return ours, theirs


def as_env(limits: dict[str, float]) -> str:
    return ",".join(f"{tld}={rate:g}" for tld, rate in sorted(limits.items()))
