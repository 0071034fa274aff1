"""The HTTP API on real PostgreSQL and the Temporal dev server: submit/status/cancel, route
explain, error bodies naming the field, /metrics, /healthz and the OpenAPI description that
states what the server enforces (auth: test_api_auth.py)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.harness import count
from tests.integration.api_support import AUTH, EXPIRY, READ, TestClient, api, body

pytestmark = pytest.mark.integration
__all__ = ["api"]  # the fixture


def test_submit_status_cancel_round_trip(api: TestClient, db_dsn: str) -> None:
    """201 then 200 deduplicated for the same renewal; status with the renewal itself; cancel
    accepted then refused."""
    first = api.post("/renewals", json=body(), headers=AUTH)
    again = api.post("/renewals", json=body(), headers=AUTH)
    assert first.status_code == 201 and again.status_code == 200
    op = first.json()["operation_id"]
    assert again.json() == {**first.json(), "deduplicated": True}
    status = api.get(f"/renewals/{op}", headers=READ)
    assert status.status_code == 200 and status.json()["routing"]["mode"] == "legacy"
    renewal = {k: status.json()[k] for k in ("domain", "years", "current_expiry", "customer_id")}
    assert renewal == {k: body()[k] for k in renewal}  # the renewal the operation carries out
    cancelled = api.post(f"/renewals/{op}/cancel", headers=AUTH, json={"reason": "test"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    with_ops = api.post("/renewals", json=body("done.de"), headers=AUTH).json()["operation_id"]
    with psycopg.connect(db_dsn) as conn:  # the legacy engine finished it
        conn.execute("UPDATE operations SET status = 'done' WHERE operation_id = %s", (with_ops,))
    refused = api.post(f"/renewals/{with_ops}/cancel", headers=AUTH)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "cancel_refused"
    assert api.get("/renewals/op-unknown", headers=READ).status_code == 404
    assert api.get("/renewals/%20bad%20", headers=READ).json()["error"]["field"] == "operation_id"


def test_temporal_route_starts_the_workflow(api: TestClient, temporal_env: Any) -> None:
    """A .info renewal (temporal at 100%) gets an engine-temporal row and a started workflow."""
    answer = api.post("/renewals", json=body("wf.info"), headers=AUTH).json()
    assert (answer["engine"], answer["mode"], answer.get("dispatch_error")) == (
        "temporal",
        "temporal",
        None,
    )


BAD_BODIES = [
    ({"years": 1, "current_expiry": EXPIRY, "customer_id": "c"}, "domain"),
    (body(domain="no_underscores.fr"), "domain"),
    (body(domain="x.unknown"), "domain"),
    (body(domain=""), "domain"),
    (body(domain=" api.fr"), "domain"),  # the model strips it; the published pattern does not
    (body(domain="xn--zz.fr"), "domain"),  # not a valid A-label: the documented IDNA 422
    (body(years="1"), "years"),
    (body(years=0), "years"),
    (body(years=1.5), "years"),
    (body(years=True), "years"),
    (body(current_expiry="31/12/2026"), "current_expiry"),
    (body(current_expiry="2026-02-30"), "current_expiry"),
    (body(current_expiry="\u0662\u0660\u0662\u0666-01-01"), "current_expiry"),  # Arabic digits
    (body(customer_id=""), "customer_id"),
    (body(customer_id="c-1\n"), "customer_id"),
    (body(operation_id=""), "operation_id"),
    (body(priority="high"), "priority"),
    ([1, 2], "request"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_BODIES)
def test_bad_bodies_are_422_naming_the_field(
    api: TestClient, db_dsn: str, payload: Any, field: str
) -> None:
    """Every bad body: 422, a JSON error naming the field, zero rows written."""
    response = api.post("/renewals", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    assert count(db_dsn, "SELECT count(*) FROM operations") == 0


RAW_BODIES = [
    b"{nope",
    b'{"domain": "\\ud800.fr", "years": 1}',  # a lone surrogate escape
    b"[" * 100_000 + b"]" * 100_000,  # nested past the parser's recursion limit
    b'{"years": 1' + b"0" * 5000 + b"}",  # an integer past Python's digit limit
]


@pytest.mark.parametrize("raw", RAW_BODIES, ids=["broken", "surrogate", "deep", "huge-int"])
def test_bodies_that_are_not_json_text_are_422(api: TestClient, db_dsn: str, raw: bytes) -> None:
    """A body no JSON parser should take, or that is not Unicode text: 422 naming body."""
    headers = {**AUTH, "Content-Type": "application/json"}
    for path in ("/renewals", "/renewals/op-x/cancel"):
        response = api.post(path, content=raw, headers=headers)
        assert response.status_code == 422, path
        assert response.json()["error"]["field"] == "body"
    assert count(db_dsn, "SELECT count(*) FROM operations") == 0


def test_what_the_schema_allows_is_accepted(api: TestClient) -> None:
    """Schema-valid edge cases the server used to refuse or crash on: 2xx or a stated 4xx."""
    whole = api.post("/renewals", json=body("whole.com", years=6.0), headers=AUTH)
    assert whole.status_code == 201  # 6.0 is the integer 6 to JSON Schema
    idn = api.post("/renewals", json=body("Bücher.DE.", operation_id="op.1:a_b"), headers=AUTH)
    assert idn.status_code == 201 and idn.json()["idempotency_key"].startswith("renew:xn--")
    op = whole.json()["operation_id"]
    odd = api.post(f"/renewals/{op}/cancel", json={"reason": {}}, headers=AUTH)
    assert odd.status_code == 422 and odd.json()["error"]["field"] == "reason"
    control = api.post(f"/renewals/{op}/cancel", json={"reason": "a\u0000b"}, headers=AUTH)
    assert control.status_code == 422 and control.json()["error"]["field"] == "reason"
    extra = api.post(f"/renewals/{op}/cancel", json={"why": "x"}, headers=AUTH)
    assert extra.status_code == 422 and extra.json()["error"]["field"] == "why"
    assert api.post(f"/renewals/{op}/cancel", headers=AUTH).status_code == 200


def test_not_json_and_conflict(api: TestClient, db_dsn: str) -> None:
    """A body that is not JSON: 422 (body); same key other years: 409 naming years."""
    raw = api.post("/renewals", content=b"{nope", headers={**AUTH, "Content-Type": "text/plain"})
    assert raw.status_code == 422 and raw.json()["error"]["field"] == "body"
    assert api.post("/renewals", json=body("key.eu"), headers=AUTH).status_code == 201
    clash = api.post("/renewals", json=body("key.eu", years=4), headers=AUTH)
    assert clash.status_code == 409 and clash.json()["error"]["field"] == "years"
    assert count(db_dsn, "SELECT count(*) FROM operations") == 1


def test_explain_flags_metrics_health(api: TestClient) -> None:
    """Reads: route explain, flags, Prometheus text with the decision counter, health."""
    api.post("/renewals", json=body("metered.com"), headers=AUTH)
    explained = api.get(
        "/route/explain", params=[("domain", "a.info"), ("domain", "b.fr")], headers=READ
    )
    assert [x["engine"] for x in explained.json()] == ["temporal", "legacy"]
    bad = api.get("/route/explain", params=[("domain", "b.fr"), ("domain", "a..fr")], headers=READ)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "domain"
    assert bad.json()["error"]["message"].startswith("domain: item #2: must be a name")
    assert api.get("/route/explain", headers=READ).json()["error"]["field"] == "domain"
    flags = api.get("/flags", headers=READ).json()
    assert flags["source"] == "bootstrap"
    assert {"tld": "info", "mode": "temporal", "rollout": 100, "source": "bootstrap"} in flags[
        "tlds"
    ]
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'dualrun_routing_decisions_total{engine="legacy",mode="legacy",source="bootstrap"' \
        ',tld="com"}' in metrics.text  # fmt: skip
    assert api.get("/healthz").json() == {"status": "ok", "database": True, "flags": "bootstrap"}


def test_openapi_states_constraints_media_types_and_statuses(api: TestClient) -> None:
    """The document: the body's patterns, ranges and closed shape, every report media type,
    the security schemes, and no operation without its error statuses."""
    spec = api.get("/openapi.json", headers=READ).json()
    renewal = spec["paths"]["/renewals"]["post"]["requestBody"]["content"]["application/json"]
    schema = renewal["schema"]
    assert set(schema["required"]) == {"domain", "years", "current_expiry", "customer_id"}
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert (props["years"]["minimum"], props["years"]["maximum"]) == (1, 10)
    assert props["domain"]["pattern"].endswith(r"[iI][nN][fF][oO])\.?$")
    assert props["customer_id"]["pattern"] == props["operation_id"]["anyOf"][0]["pattern"]
    assert props["current_expiry"]["format"] == "date"
    report = spec["paths"]["/reports/{run_id}"]["get"]["responses"]["200"]["content"]
    assert set(report) == {"text/html", "text/markdown", "application/json"}
    assert set(spec["components"]["securitySchemes"]) == {"readToken", "writeToken"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert "200" in statuses or "201" in statuses, (method, path)
            if path not in ("/healthz", "/metrics"):
                assert {"401", "503"} <= statuses, (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in statuses, (method, path)
