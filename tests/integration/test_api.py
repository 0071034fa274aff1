"""The HTTP API on real PostgreSQL and the Temporal dev server: auth, submit/status/cancel,
route explain, error bodies naming the field, /metrics, /healthz and the OpenAPI description."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dualrun.api.app import create_app
from dualrun.flags.local import SEED, LocalFlags
from dualrun.flags.model import RuleChange
from renewals.model import Mode
from renewals.settings import Settings
from tests.harness import count

with warnings.catch_warnings():  # starlette deprecates its httpx-based client; it still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

TOKEN = "api-token-for-tests-5b1c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXPIRY = (dt.date.today() + dt.timedelta(days=50)).isoformat()


def _settings(db_dsn: str, tmp_path: Path, temporal: Any, token: str | None) -> Settings:
    boot = tmp_path / "bootstrap.json"
    boot.write_text(SEED.read_text())
    LocalFlags(boot, "dualrun.renewals").set_rule(RuleChange("info", Mode.TEMPORAL, 100))
    env = {
        "DUALRUN_DATABASE_URL": db_dsn,
        "DUALRUN_STATE_DIR": str(tmp_path),
        "DUALRUN_FLAGS_BOOTSTRAP": str(boot),
        "DUALRUN_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "DUALRUN_TASK_QUEUE": f"api-{tmp_path.name[-12:]}",
    }
    if token:
        env["DUALRUN_API_TOKEN"] = token
    return Settings.from_env(env)


@pytest.fixture
def api(db_dsn: str, tmp_path: Path, temporal_env: Any) -> Iterator[TestClient]:
    """The app with its lifespan (pool, flags, lazy Temporal client) on this test's schema."""
    with TestClient(create_app(_settings(db_dsn, tmp_path, temporal_env, TOKEN))) as client:
        yield client


def body(domain: str = "api.fr", **over: Any) -> dict[str, Any]:
    return {"domain": domain, "years": 1, "current_expiry": EXPIRY, "customer_id": "c-1", **over}


def test_submit_status_cancel_round_trip(api: TestClient, db_dsn: str) -> None:
    """201 then 200 deduplicated for the same renewal; status; cancel accepted then refused."""
    first = api.post("/renewals", json=body(), headers=AUTH)
    again = api.post("/renewals", json=body(), headers=AUTH)
    assert first.status_code == 201 and again.status_code == 200
    op = first.json()["operation_id"]
    assert again.json() == {**first.json(), "deduplicated": True}
    status = api.get(f"/renewals/{op}")
    assert status.status_code == 200 and status.json()["routing"]["mode"] == "legacy"
    cancelled = api.post(f"/renewals/{op}/cancel", headers=AUTH, json={"reason": "test"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    with_ops = api.post("/renewals", json=body("done.de"), headers=AUTH).json()["operation_id"]
    import psycopg

    with psycopg.connect(db_dsn) as conn:  # the legacy engine finished it
        conn.execute("UPDATE operations SET status = 'done' WHERE operation_id = %s", (with_ops,))
    refused = api.post(f"/renewals/{with_ops}/cancel", headers=AUTH)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "cancel_refused"
    assert api.get("/renewals/op-unknown").status_code == 404
    assert api.get("/renewals/%20bad%20").json()["error"]["field"] == "operation_id"


def test_temporal_route_starts_the_workflow(api: TestClient, temporal_env: Any) -> None:
    """A .info renewal (temporal at 100%) gets an engine-temporal row and a started workflow."""
    answer = api.post("/renewals", json=body("wf.info"), headers=AUTH).json()
    assert (answer["engine"], answer["mode"], answer.get("dispatch_error")) == (
        "temporal",
        "temporal",
        None,
    )


def test_mutating_calls_need_the_token(api: TestClient, db_dsn: str) -> None:
    """No token or a wrong one: 401 with a JSON body; nothing written."""
    missing = api.post("/renewals", json=body())
    wrong = api.post("/renewals", json=body(), headers={"Authorization": "Bearer nope"})
    cancel = api.post("/renewals/op-x/cancel")
    for response in (missing, wrong, cancel):
        assert response.status_code == 401 and response.json()["error"]["code"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert count(db_dsn, "SELECT count(*) FROM operations") == 0


def test_no_token_configured_refuses_mutations(
    db_dsn: str, tmp_path: Path, temporal_env: Any
) -> None:
    """Without DUALRUN_API_TOKEN mutating calls get 503 (not left open); reads still work."""
    with TestClient(create_app(_settings(db_dsn, tmp_path, temporal_env, None))) as client:
        refused = client.post("/renewals", json=body(), headers=AUTH)
        assert refused.status_code == 503
        assert "DUALRUN_API_TOKEN" in refused.json()["error"]["message"]
        assert client.get("/healthz").status_code == 200


BAD_BODIES = [
    ({"years": 1, "current_expiry": EXPIRY, "customer_id": "c"}, "domain"),
    (body(domain="no_underscores.fr"), "domain"),
    (body(domain="x.unknown"), "domain"),
    (body(years="1"), "years"),
    (body(years=0), "years"),
    (body(years=True), "years"),
    (body(current_expiry="31/12/2026"), "current_expiry"),
    (body(customer_id=""), "customer_id"),
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


def test_not_json_and_conflict(api: TestClient, db_dsn: str) -> None:
    """A body that is not JSON: 422 (body); same key other years: 409 naming years."""
    raw = api.post("/renewals", content=b"{nope", headers={**AUTH, "Content-Type": "text/plain"})
    assert raw.status_code == 422 and raw.json()["error"]["field"] == "body"
    assert api.post("/renewals", json=body("key.eu"), headers=AUTH).status_code == 201
    clash = api.post("/renewals", json=body("key.eu", years=4), headers=AUTH)
    assert clash.status_code == 409 and clash.json()["error"]["field"] == "years"
    assert count(db_dsn, "SELECT count(*) FROM operations") == 1


def test_explain_flags_metrics_health_openapi(api: TestClient) -> None:
    """Reads: route explain, flags, Prometheus text with the decision counter, health, OpenAPI."""
    api.post("/renewals", json=body("metered.com"), headers=AUTH)
    explained = api.get("/route/explain", params=[("domain", "a.info"), ("domain", "b.fr")])
    assert [x["engine"] for x in explained.json()] == ["temporal", "legacy"]
    bad = api.get("/route/explain", params={"domain": "a..fr"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "domain"
    assert api.get("/route/explain").json()["error"]["field"] == "domain"
    flags = api.get("/flags").json()
    assert flags["source"] == "bootstrap"
    assert {"tld": "info", "mode": "temporal", "rollout": 100, "source": "bootstrap"} in flags[
        "tlds"
    ]
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'dualrun_routing_decisions_total{engine="legacy",mode="legacy",source="bootstrap"' \
        ',tld="com"}' in metrics.text  # fmt: skip
    assert api.get("/healthz").json() == {"status": "ok", "database": True, "flags": "bootstrap"}
    spec = api.get("/openapi.json").json()
    assert {"/renewals", "/renewals/{operation_id}", "/renewals/{operation_id}/cancel",
            "/route/explain", "/flags", "/metrics", "/healthz"} <= set(spec["paths"])  # fmt: skip
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    schema = spec["paths"]["/renewals"]["post"]["requestBody"]["content"]["application/json"]
    assert set(schema["schema"]["required"]) == {"domain", "years", "current_expiry", "customer_id"}
