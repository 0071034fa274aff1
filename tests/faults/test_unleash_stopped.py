"""The Unleash server stopped in the middle of a burst: routing goes on from the last flags seen."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from dualrun.flags import build_chain
from dualrun.flags.control import set_rule
from dualrun.flags.model import FlagSourceKind, RuleChange
from dualrun.routing.router import Router
from dualrun.wiring import renewal_service
from ops.registry_sim.server import SimServer
from ops.unleash import UnleashServer
from renewals.model import Engine, Mode
from tests.faults.support import (
    EXPIRY,
    Processes,
    assert_nothing_lost_or_duplicated,
    burst_domains,
    in_flight,
    until,
)
from tests.harness import harness

pytestmark = [pytest.mark.integration, pytest.mark.faults]


async def test_unleash_stopped_mid_burst_routing_continues_from_last_flags(
    temporal_env: WorkflowEnvironment,
    db_dsn: str,
    sim: SimServer,
    unleash_server: UnleashServer,
    procs: Processes,
    since: dt.datetime,
    tmp_path: Path,
) -> None:
    """Unleash stopped mid-burst: routed from the last flags, decisions pinned, all complete."""
    env = {
        "DUALRUN_UNLEASH_URL": unleash_server.sdk_url,
        "DUALRUN_UNLEASH_ADMIN_TOKEN": unleash_server.admin_token,
        "DUALRUN_UNLEASH_CLIENT_TOKEN": unleash_server.client_token,
        "DUALRUN_UNLEASH_FLAG": f"dualrun.f{uuid.uuid4().hex[:8]}",
        "DUALRUN_STATE_DIR": str(tmp_path),
        "DUALRUN_FLAGS_BOOTSTRAP": str(tmp_path / "no-bootstrap.json"),  # none: not a fallback
    }
    async with harness(temporal_env.client, db_dsn, sim.url, **env) as h:
        for change in (RuleChange("fr", Mode.TEMPORAL, 100), RuleChange("com", Mode.LEGACY, 100)):
            await asyncio.to_thread(set_rule, h.settings, change)
        chain = build_chain(h.settings)
        await asyncio.to_thread(chain.start)
        try:
            router = Router(chain)

            async def flags_seen() -> bool:
                d = router.route("probe.fr")
                return d.engine == Engine.TEMPORAL and d.source == FlagSourceKind.UNLEASH

            await until(flags_seen, "the router sees the flags from the server", 60)
            h.admin.configure("fr", latency_ms=300)
            h.admin.configure("com", latency_ms=300)
            procs.worker(h)
            procs.robots(h)
            names = [*burst_domains("fr", 20, "flag"), *burst_domains("com", 10, "flag")]
            for tld in ("fr", "com"):
                h.seed(tld, *(n for n in names if n.endswith(f".{tld}")), expiry=EXPIRY)
            requests = [h.request(n, EXPIRY) for n in names]
            before, after = requests[::2], requests[1::2]  # both halves hold both TLDs
            async with renewal_service(h.settings, temporal_client=h.client, chain=chain) as svc:
                for r in before:
                    await svc.submit(r)

                async def renewing() -> bool:
                    return await in_flight(h) >= 3

                await until(renewing, "renewals in flight", explain=procs.tails)
                await asyncio.to_thread(unleash_server.stop)
                try:

                    async def last_known() -> bool:
                        return chain.read().source == FlagSourceKind.LAST_KNOWN

                    await until(last_known, "the router falls back to the last flags", 60)
                    for r in after:
                        await svc.submit(r)
                    again = [await svc.submit(r) for r in before]  # resubmitted: pinned
                    summary = await assert_nothing_lost_or_duplicated(h, since)
                finally:
                    await asyncio.to_thread(unleash_server.start)  # the session's server

        finally:
            chain.close()
        decisions = {
            r["idempotency_key"]: r
            for r in await h.query(
                "SELECT idempotency_key, engine, flag_source FROM routing_decisions"
            )
        }
    assert len(decisions) == len(requests)
    for half, source in ((before, "unleash"), (after, "last-known")):
        for r in half:
            d = decisions[r.idempotency_key]
            engine = "temporal" if r.domain.endswith(".fr") else "legacy"
            assert (d["engine"], d["flag_source"]) == (engine, source), (r.domain, d)
    assert all(s.deduplicated for s in again)
    assert [s.engine for s in again] == [decisions[r.idempotency_key]["engine"] for r in before]
    assert summary.findings == {}, summary.details
