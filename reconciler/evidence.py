"""Field-level evidence (deepdiff) for the pairs the SQL found different, and the shadow
comparator: a renewal's business decision as each side took it, and what makes two differ.

A decision is what the customer and the registry would see: renew or refuse, and then either
the period, the new expiry and the amount and currency charged, or the registry's refusal (in
Temporal's words, whichever engine wrote it). Timings, transaction ids and retries are not
decisions. The same normalisers compare a plan with legacy and a plan with a second plan (A/A).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from deepdiff import DeepDiff

from renewals.outcomes import refusal

# Volatile fields never compared: they differ between engines by nature.
IGNORED = ("created_at", "updated_at", "finished_at", "registry_transaction_id", "workflow_id")

Decision = dict[str, Any]


def _normalise(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def comparable(view: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _normalise(v) for k, v in view.items() if k not in IGNORED}


def diff(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe deepdiff of two views, volatile fields ignored."""
    result = DeepDiff(comparable(expected), comparable(actual), ignore_order=True)
    return dict(json.loads(result.to_json()))


def _decision(renews: bool, reason: str | None, **amounts: Any) -> Decision:
    if not renews:  # a refusal has no amounts to compare, only its reason
        return {"outcome": "refuse", "reason": refusal(reason) or reason}
    return {"outcome": "renew", **amounts}


def plan_decision(plan: Mapping[str, Any]) -> Decision:
    """What a Temporal plan would have done (a `shadow_plans` row)."""
    return _decision(
        plan["verdict"] == "would_renew",
        plan["refusal"],
        years=plan["years"],
        new_expiry=plan["expected_new_expiry"],
        charged_cents=plan["would_charge_cents"],
        currency=plan["currency"],
    )


def legacy_decision(op: Mapping[str, Any]) -> Decision:
    """What legacy did with a finished operation (done or failed)."""
    return _decision(
        op["status"] == "done",
        op["error_code"],
        years=op["years"],
        new_expiry=op["new_expiry"],
        charged_cents=op["charged_cents"],
        currency=op["currency"],
    )
