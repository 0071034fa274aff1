"""The shadow comparator: each plan-against-legacy (and A/A plan pair) in exactly one class."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reconciler.shadow import classify_aa, classify_legacy

EXPIRY = dt.date(2027, 3, 1)
RENEWED = dt.date(2028, 3, 1)


def pair(**changes: Any) -> dict[str, Any]:
    """A plan that would renew for 1099 cents and legacy that did the same."""
    row: dict[str, Any] = {
        "status": "done", "error_code": None, "years": 1, "new_expiry": RENEWED,
        "charged_cents": 1099, "currency": "EUR", "verdict": "would_renew", "refusal": None,
        "plan_years": 1, "expected_new_expiry": RENEWED, "would_charge_cents": 1099,
        "plan_currency": "EUR", "plan_run": "COMPLETED",
    }  # fmt: skip
    return {**row, **changes}


REFUSED = {"status": "failed", "new_expiry": None, "charged_cents": None}
CASES = [
    ("the same decision", pair(), "agree"),
    ("legacy rate limited until its attempts ran out",
     pair(**REFUSED, error_code="rate_limited"), "not_comparable"),
    ("legacy timed out", pair(**REFUSED, error_code="registry_timeout"), "not_comparable"),
    ("legacy cancelled", pair(status="cancelled"), "not_comparable"),
    ("the plan's run failed", pair(verdict=None, plan_run="FAILED"), "not_comparable"),
    ("no plan yet", pair(verdict=None, plan_run=None), "pending"),
    ("legacy still working", pair(status="error", error_code="rate_limited"), "pending"),
    ("a premium price changed between them", pair(charged_cents=4900), "business_mismatch"),
    ("another new expiry", pair(new_expiry=dt.date(2029, 3, 1)), "business_mismatch"),
    ("renew against refuse", pair(**REFUSED, error_code="expiry_mismatch"), "business_mismatch"),
    ("legacy's own timed-out renew, replayed and refused",
     pair(**REFUSED, error_code="expiry_mismatch", renew_timed_out=True), "not_comparable"),
    ("the same refusal, in each engine's words",
     pair(**REFUSED, error_code="renew_prohibited", verdict="would_refuse",
          refusal="RenewProhibited"), "agree"),
    ("refusals for other reasons",
     pair(**REFUSED, error_code="domain_not_found", verdict="would_refuse",
          refusal="RenewProhibited"), "business_mismatch"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_plan_against_legacy_falls_in_one_class(row: dict[str, Any], expected: str) -> None:
    """Transient failures are not comparable, never a business mismatch."""
    cls, reason, found = classify_legacy(row)
    assert cls == expected
    assert bool(found) == (cls == "business_mismatch")
    assert (reason is not None) == (cls in ("not_comparable", "pending"))


def test_the_diff_names_the_field_that_differs() -> None:
    """A premium changed between plan and legacy: the deepdiff says charged_cents."""
    _, _, found = classify_legacy(pair(charged_cents=4900))
    assert "charged_cents" in str(found)


def plans(**second: Any) -> dict[str, Any]:
    first = {
        "verdict": "would_renew", "refusal": None, "years": 1,
        "expected_new_expiry": RENEWED, "would_charge_cents": 1099, "currency": "EUR",
    }  # fmt: skip
    b = {f"b_{k}": v for k, v in {**first, **second}.items()}
    return {**first, **b, "b_run": "COMPLETED"}


def test_two_plans_of_one_renewal_agree_or_are_noise() -> None:
    """A/A: the same plan twice agrees; another price is the comparator's noise; no second
    plan yet is pending, its run failed is not comparable."""
    assert classify_aa(plans())[0] == "agree"
    assert classify_aa(plans(would_charge_cents=1199))[0] == "business_mismatch"
    assert classify_aa({**plans(), "b_verdict": None, "b_run": None})[0] == "pending"
    assert classify_aa({**plans(), "b_verdict": None, "b_run": "FAILED"})[0] == "not_comparable"
