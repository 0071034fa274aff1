"""Who may call the HTTP API: every operation but /healthz needs a token (the read token, or the
write token, which also reads), /metrics only when DUALRUN_METRICS_REQUIRE_TOKEN says so, and
no token ever reaches the logs. The routes come from the app itself (`app.routes`), checked
equal to its OpenAPI operations plus a named list (the document itself, a read): a new route is
covered the day it is added."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from starlette.routing import BaseRoute, Route

from dualrun.api.app import create_app
from renewals import logs
from renewals.settings import Settings
from tests.harness import count
from tests.integration.api_support import (
    AUTH,
    READ,
    READ_TOKEN,
    TOKEN,
    TestClient,
    api,
    api_settings,
    body,
    client,
)

pytestmark = pytest.mark.integration
__all__ = ["api"]  # the fixture

OPEN = {("get", "/healthz"), ("get", "/metrics")}  # /metrics: open unless configured otherwise
READS = ["readToken", "writeToken"]
# Served but not in the OpenAPI document, each with the tokens it takes: the document itself.
UNDOCUMENTED = {("get", "/openapi.json"): READS}
_APP = create_app(Settings.from_env({"DUALRUN_API_TOKEN": "w", "DUALRUN_API_READ_TOKEN": "r"}))
_SPEC = _APP.openapi()


def _served(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app answers, included routers walked into; a kind of
    route this does not know fails here rather than going unchecked."""
    for route in routes:
        router = getattr(route, "original_router", None)  # FastAPI's included router
        if router is not None:
            yield from _served(router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Route) and route.methods:
            yield from ((m.lower(), prefix + route.path) for m in route.methods if m != "HEAD")
        else:
            raise AssertionError(f"a route of a kind the auth test does not know: {route!r}")


SERVED = sorted(_served(_APP.routes))
OPERATIONS = [
    (method, path, sorted(name for need in op.get("security", []) for name in need))
    for path, ops in _SPEC["paths"].items()
    for method, op in ops.items()
] + [(method, path, schemes) for (method, path), schemes in UNDOCUMENTED.items()]
# What a call needs to get past validation once authorised; any other route gets no input
# (its answer with the right token is then a 4xx of its own, still neither 401 nor 403).
SAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/renewals"): {"json": body("auth.fr")},
    ("get", "/route/explain"): {"params": {"domain": "auth.fr"}},
}
PATH_VALUES = {"{operation_id}": "op-auth", "{run_id}": "1"}


def _url(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace(name, value)
    return path


def _call(api: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    return api.request(method, _url(path), headers=headers, **SAMPLES.get((method, path), {}))


def test_the_routes_checked_are_the_routes_served() -> None:
    """Every route the app serves is checked here: the OpenAPI operations plus the named
    undocumented ones, nothing else (a new route is covered, or this fails); only the open ones
    lack security."""
    assert sorted((method, path) for method, path, _ in OPERATIONS) == SERVED
    assert ("post", "/renewals") in SERVED and ("get", "/openapi.json") in SERVED
    assert not {"/docs", "/redoc", "/docs/oauth2-redirect"} & {path for _, path in SERVED}
    for method, path, schemes in OPERATIONS:
        assert bool(schemes) == ((method, path) not in OPEN), (method, path)
        assert schemes in ([], ["writeToken"], READS), (method, path)


@pytest.mark.parametrize(
    ("method", "path", "schemes"),
    [o for o in OPERATIONS if (o[0], o[1]) not in OPEN],
    ids=[f"{m.upper()} {p}" for m, p, _ in OPERATIONS if (m, p) not in OPEN],
)
def test_every_route_needs_a_token(
    api: TestClient, db_dsn: str, method: str, path: str, schemes: list[str]
) -> None:
    """No token, another scheme or a wrong token: 401 with a challenge; the read token on a
    mutating call: 403; nothing written; the token the route takes gets past the check."""
    refusals = [
        ({}, 401, "unauthorized"),
        ({"Authorization": f"Basic {TOKEN}"}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-the-token"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, 401, "invalid_token"),
    ]
    writes = schemes == ["writeToken"]
    if writes:
        refusals.append((READ, 403, "insufficient_scope"))
    for headers, status, code in refusals:
        response = _call(api, method, path, headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
        assert response.headers["www-authenticate"].startswith('Bearer realm="dualrun"')
    assert count(db_dsn, "SELECT count(*) FROM operations") == 0
    for headers in [AUTH] if writes else [AUTH, READ]:
        assert _call(api, method, path, headers).status_code not in (401, 403, 503)


def test_healthz_and_metrics_are_open_by_default(api: TestClient) -> None:
    """/healthz and /metrics answer without a token unless told otherwise."""
    assert api.get("/healthz").status_code == 200
    assert api.get("/metrics").status_code == 200


def test_metrics_can_require_the_read_token(db_dsn: str, tmp_path: Path, temporal_env: Any) -> None:
    """DUALRUN_METRICS_REQUIRE_TOKEN: /metrics wants a token (either), and says so in OpenAPI."""
    settings = api_settings(db_dsn, tmp_path, temporal_env, DUALRUN_METRICS_REQUIRE_TOKEN="yes")
    with client(settings) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get("/metrics", headers=READ).status_code == 200
        assert c.get("/metrics", headers=AUTH).status_code == 200
        assert c.get("/openapi.json").status_code == 401
        operation = c.get("/openapi.json", headers=READ).json()["paths"]["/metrics"]["get"]
        assert operation["security"] == [{"readToken": []}, {"writeToken": []}]
        assert c.get("/healthz").status_code == 200


def test_unconfigured_tokens_refuse_rather_than_open(
    db_dsn: str, tmp_path: Path, temporal_env: Any
) -> None:
    """No token set: every call but /healthz and /metrics is 503 naming the variable; only the
    write token set: it reads, and nothing else does."""
    with client(api_settings(db_dsn, tmp_path, temporal_env, tokens=False)) as c:
        for method, path, _ in OPERATIONS:
            if (method, path) in OPEN:
                assert _call(c, method, path, AUTH).status_code == 200
                continue
            refused = _call(c, method, path, AUTH)
            assert refused.status_code == 503, (method, path)
            assert "DUALRUN_API_TOKEN" in refused.json()["error"]["message"]
    settings = api_settings(db_dsn, tmp_path, temporal_env, tokens=False, DUALRUN_API_TOKEN=TOKEN)
    with client(settings) as c:
        assert c.get("/flags", headers=AUTH).status_code == 200
        assert c.get("/flags", headers=READ).status_code == 401
        assert c.get("/flags", headers={"Authorization": "Bearer "}).status_code == 401


def test_tokens_never_reach_the_logs(
    db_dsn: str, tmp_path: Path, temporal_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Refusals are logged (method, path, why), and no token, good or bad, is in any line."""
    settings = api_settings(db_dsn, tmp_path, temporal_env)
    out = io.StringIO()
    logs.configure("debug", "json", secrets=settings.secrets())
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    wrong = "Bearer wrong-token-0d9f2c"
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings)) as c:
        c.post("/renewals", json=body("logged.info"), headers=AUTH)
        c.post("/renewals", json=body("refused.fr"), headers=READ)
        c.post("/renewals", json=body("refused.fr", years=11), headers=AUTH)
        c.get("/flags", headers={"Authorization": wrong})
        c.get("/flags")
        c.get("/renewals/op-none", headers=READ)
    text = out.getvalue() + caplog.text
    assert text.count('"event": "api.auth.refused"') == 3
    assert '"code": "insufficient_scope"' in text and "/flags" in text
    for secret in (TOKEN, READ_TOKEN, wrong.split()[1]):
        assert secret not in text
