"""Workflow ids: the live renewal's is its idempotency key; a shadow plan's cannot collide with
it (`shadow:{key}`), nor can the A/A sample's second plan (`shadow:b:{key}`)."""

from __future__ import annotations

from temporal_flow.types import RunMode

SHADOW_PREFIX = "shadow:"
SECOND_PLAN_PREFIX = f"{SHADOW_PREFIX}b:"


def workflow_id(idempotency_key: str, mode: RunMode, plan: str = "a") -> str:
    if mode != RunMode.SHADOW:
        return idempotency_key
    return f"{SECOND_PLAN_PREFIX if plan == 'b' else SHADOW_PREFIX}{idempotency_key}"


def is_shadow(workflow_id: str | None) -> bool:
    return (workflow_id or "").startswith(SHADOW_PREFIX)


def plan_of(workflow_id: str) -> str:
    """Which plan a shadow workflow makes: 'a', or 'b' for the A/A sample's second."""
    return "b" if workflow_id.startswith(SECOND_PLAN_PREFIX) else "a"
