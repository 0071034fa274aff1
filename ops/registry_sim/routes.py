"""Routes under /registries/{tld}: the EPP-like operations and the simulator's own controls."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from ops.registry_sim import store
from ops.registry_sim.models import PREMIUM_TIERS_CENTS, RenewBody, SeedBody, bad_input
from ops.registry_sim.simulator import Simulator
from renewals.domains import normalise_domain
from renewals.errors import InvalidInput
from renewals.registry import RENEW_PROHIBITING

router = APIRouter(prefix="/registries/{tld}")


def _sim(request: Request) -> Simulator:
    sim: Simulator = request.app.state.sim
    return sim


def _domain(tld: str, raw: str, field: str = "domain") -> str:
    try:
        return normalise_domain(raw, frozenset({tld}), field=field)
    except InvalidInput as exc:
        raise bad_input(exc.field, exc.problem) from None


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# -- EPP-like operations (rate limited, faults applied) -------------------------------------
@router.get("/domains/{domain}")
async def domain_status(request: Request, tld: str, domain: str) -> dict[str, Any]:
    """Domain info: expiry, EPP statuses, premium flag. 404 (EPP 2303) when unknown."""
    sim = _sim(request)
    await sim.gate(tld)
    row = await store.get_domain(sim.pool, tld, _domain(tld, domain))
    statuses = list(row["statuses"])
    return {
        "domain": row["domain"],
        "tld": tld,
        "expiry": row["expiry"],
        "statuses": statuses or ["ok"],
        "premium": row["premium_cents"] is not None,
        "renew_prohibited": bool(RENEW_PROHIBITING.intersection(statuses)),
    }


@router.get("/domains/{domain}/price")
async def domain_price(
    request: Request, tld: str, domain: str, years: Annotated[int, Query(ge=1, le=10)] = 1
) -> dict[str, Any]:
    """Renewal price in cents for `years` (standard yearly price, or the domain's premium price)."""
    sim = _sim(request)
    reg = await sim.gate(tld)
    row = await store.get_domain(sim.pool, tld, _domain(tld, domain))
    premium = row["premium_cents"] is not None
    yearly = int(row["premium_cents"]) if premium else reg.config.price_cents
    return {
        "domain": row["domain"],
        "years": years,
        "premium": premium,
        "yearly_cents": yearly,
        "price_cents": yearly * years,
        "currency": reg.config.currency,
    }


@router.post("/domains/{domain}/renew")
async def domain_renew(request: Request, tld: str, domain: str, body: RenewBody) -> dict[str, Any]:
    """Renew for `years` from the current expiry; strict registries check `cur_exp_date`."""
    sim = _sim(request)
    name = _domain(tld, domain)
    row = await sim.renew(tld, name, body.cur_exp_date, body.years, body.client_tx_id)
    return {
        "domain": row["domain"],
        "years": row["years"],
        "previous_expiry": row["previous_expiry"],
        "new_expiry": row["new_expiry"],
        "server_tx_id": row["server_tx_id"],
        "client_tx_id": row["client_tx_id"],
    }


@router.get("/domains/{domain}/renewals")
async def domain_renewals(
    request: Request,
    tld: str,
    domain: str,
    client_tx_id: Annotated[str, Query(min_length=3, max_length=64)],
) -> dict[str, Any]:
    """The renewals of the domain made with this client transaction id (EPP clTRID), as a
    registry's transaction query answers: how a client proves a renewal it sent is done."""
    sim = _sim(request)
    await sim.gate(tld)
    name = _domain(tld, domain)
    await store.get_domain(sim.pool, tld, name)  # 404 (EPP 2303) when the registry lacks it
    rows = await store.ledger(sim.pool, tld, domain=name, client_tx_id=client_tx_id)
    return {"domain": name, "client_tx_id": client_tx_id, "renewals": rows}


# -- the simulator's own controls (never rate limited) ----------------------------------------
@router.get("")
async def registry_summary(request: Request, tld: str) -> dict[str, Any]:
    """How many domains and renewals this registry holds, and its configuration."""
    sim = _sim(request)
    reg = sim.registry(tld)
    return {"tld": tld, **(await store.counts(sim.pool, tld)), "config": reg.config.model_dump()}


@router.get("/ledger")
async def registry_ledger(
    request: Request,
    tld: str,
    domain: str | None = None,
    client_tx_id: str | None = None,
    since: dt.datetime | None = None,
    after_id: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """Renewals performed, oldest first; page with `after_id` = the last `renewal_id` seen."""
    sim = _sim(request)
    sim.registry(tld)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    rows = await store.ledger(
        sim.pool,
        tld,
        domain=_domain(tld, domain) if domain is not None else None,
        client_tx_id=client_tx_id,
        since=since,
        after_id=after_id,
        limit=limit,
    )
    return {"tld": tld, "renewals": rows, "next_after_id": rows[-1]["renewal_id"] if rows else None}


@router.get("/traffic")
async def registry_traffic(
    request: Request, tld: str, since: Annotated[int | None, Query(ge=0)] = None
) -> dict[str, Any]:
    """Per-second admitted/rejected counts (epoch seconds) and the peak burst seen."""
    reg = _sim(request).registry(tld)
    return {
        "tld": tld,
        "rate_limit": reg.config.rate_limit,
        "burst": reg.config.burst,
        "admitted": reg.traffic.admitted,
        "rejected": reg.traffic.rejected,
        "peak_excess": reg.traffic.peak_excess(reg.config.rate_limit),
        "seconds": [
            {"second": s.second, "admitted": s.admitted, "rejected": s.rejected}
            for s in reg.traffic.seconds(since)
        ],
    }


@router.get("/config")
async def registry_config(request: Request, tld: str) -> dict[str, Any]:
    """The effective configuration (defaults merged with what was set)."""
    reg = _sim(request).registry(tld)
    return {"tld": tld, **reg.config.model_dump()}


@router.put("/config")
async def registry_configure(
    request: Request, tld: str, patch: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Change some settings (the others keep their value); stored, so a restart keeps them."""
    config = await _sim(request).configure(tld, patch)
    return {"tld": tld, **config.model_dump()}


@router.post("/reset")
async def registry_reset(request: Request, tld: str) -> dict[str, Any]:
    """Forget this registry's domains, renewals, configuration and traffic."""
    await _sim(request).reset(tld)
    return {"reset": [tld]}


@router.post("/seed")
async def registry_seed(request: Request, tld: str, body: SeedBody) -> dict[str, Any]:
    """Upsert explicit `domains`, or `count` generated ones named `{prefix}{n:06d}.{tld}`."""
    sim = _sim(request)
    sim.registry(tld)
    if (body.domains is None) == (body.count is None):
        raise bad_input("count", "give either domains or count (not both)")
    if body.domains is not None:
        rows = _explicit_rows(tld, body)
        seeded = await store.seed(sim.pool, rows)
        return {"tld": tld, "seeded": seeded}
    lo, hi = _expiry_range(body)
    assert body.count is not None
    first = _domain(tld, f"{body.prefix}{body.start:06d}.{tld}", field="prefix")
    seeded = await store.seed(sim.pool, _generated_rows(tld, body, lo, hi))
    last = f"{body.prefix}{body.start + body.count - 1:06d}.{tld}"
    return {"tld": tld, "seeded": seeded, "first": first, "last": last}


def _explicit_rows(tld: str, body: SeedBody) -> list[store.SeedRow]:
    assert body.domains is not None
    rows: list[store.SeedRow] = []
    seen: set[str] = set()
    for i, item in enumerate(body.domains):
        name = _domain(tld, item.domain, field=f"domains.{i}.domain")
        if name in seen:
            raise bad_input(f"domains.{i}.domain", f"{name} appears twice")
        seen.add(name)
        statuses: list[str] = sorted({s for s in item.statuses if s != "ok"})
        rows.append((name, tld, item.expiry, item.premium_cents, statuses))
    return rows


def _expiry_range(body: SeedBody) -> tuple[dt.date, dt.date]:
    today = _today()
    if body.expiry_from and body.expiry_to and body.expiry_from > body.expiry_to:
        raise bad_input("expiry_to", "is before expiry_from")
    hi_default = (body.expiry_from or today) + dt.timedelta(days=365)
    hi = body.expiry_to or hi_default
    lo = body.expiry_from or min(today + dt.timedelta(days=1), hi)
    return lo, hi


def _generated_rows(tld: str, body: SeedBody, lo: dt.date, hi: dt.date) -> Iterator[store.SeedRow]:
    rng = random.Random(body.seed)
    span = (hi - lo).days
    assert body.count is not None
    for n in range(body.start, body.start + body.count):
        expiry = lo + dt.timedelta(days=rng.randint(0, span))
        premium = rng.choice(PREMIUM_TIERS_CENTS) if rng.random() < body.premium_share else None
        prohibited = rng.random() < body.prohibited_share
        statuses = ["clientRenewProhibited"] if prohibited else []
        yield (f"{body.prefix}{n:06d}.{tld}", tld, expiry, premium, statuses)
