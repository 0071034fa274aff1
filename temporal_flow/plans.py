"""Shadow plans: what a Temporal run of a shadow renewal would have done (never charged, never
renewed), stored for the reconciler to compare with what legacy did."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from renewals.domains import tld_of
from temporal_flow.ids import plan_of
from temporal_flow.types import PlanInput

_INSERT = """
INSERT INTO shadow_plans (idempotency_key, plan, operation_id, workflow_id, domain, tld, years,
                          registry_expiry, premium, would_charge_cents, currency,
                          expected_new_expiry, verdict, refusal)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (idempotency_key, plan) DO NOTHING
"""


async def record_plan(pool: AsyncConnectionPool, inp: PlanInput) -> None:
    """Store the plan (the first, or the A/A sample's second); a replayed one changes nothing."""
    async with pool.connection() as conn:
        await conn.execute(
            _INSERT,
            (
                inp.idempotency_key,
                plan_of(inp.workflow_id),
                inp.operation_id,
                inp.workflow_id,
                inp.domain,
                tld_of(inp.domain),
                inp.years,
                inp.registry_expiry,
                inp.premium,
                inp.would_charge_cents,
                inp.currency,
                inp.expected_new_expiry,
                inp.verdict,
                inp.refusal,
            ),
        )
