"""Field-level evidence (deepdiff) for the pairs the SQL found different, and only those."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from deepdiff import DeepDiff

# Volatile fields never compared: they differ between engines by nature.
IGNORED = ("created_at", "updated_at", "finished_at", "registry_transaction_id", "workflow_id")


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


def shadow_diff(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the Temporal plan would have done vs what legacy did."""
    plan = {
        "outcome": "done" if row["verdict"] == "would_renew" else "refused",
        "years": row["plan_years"],
        "new_expiry": row["expected_new_expiry"],
        "charged_cents": row["would_charge_cents"],
        "currency": row["plan_currency"],
    }
    legacy = {
        "outcome": "done" if row["status"] == "done" else "refused",
        "years": row["years"],
        "new_expiry": row["new_expiry"],
        "charged_cents": row["charged_cents"],
        "currency": row["currency"],
    }
    if plan["outcome"] == "refused" or legacy["outcome"] == "refused":
        for view in (plan, legacy):  # a refusal has no amounts to compare
            view.pop("new_expiry")
            view.pop("charged_cents")
            view.pop("currency")
    return diff(plan, legacy)
