"""The HTTP API under test: settings on the test's schema and the session's Temporal dev server,
the two tokens, and a client with the app's lifespan."""

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

with warnings.catch_warnings():  # starlette deprecates its httpx-based client; it still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TOKEN = "api-token-for-tests-5b1c"
READ_TOKEN = "api-read-token-for-tests-77e0"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
EXPIRY = (dt.date.today() + dt.timedelta(days=50)).isoformat()


def api_settings(
    db_dsn: str, tmp_path: Path, temporal: Any, tokens: bool = True, **env: str
) -> Settings:
    """Settings of one test: its schema and state dir, .info on Temporal, its own queue."""
    boot = tmp_path / "bootstrap.json"
    boot.write_text(SEED.read_text())
    LocalFlags(boot, "dualrun.renewals").set_rule(RuleChange("info", Mode.TEMPORAL, 100))
    base = {
        "DUALRUN_DATABASE_URL": db_dsn,
        "DUALRUN_STATE_DIR": str(tmp_path),
        "DUALRUN_FLAGS_BOOTSTRAP": str(boot),
        "DUALRUN_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
        "DUALRUN_TASK_QUEUE": f"api-{tmp_path.name[-12:]}",
    }
    if tokens:
        base |= {"DUALRUN_API_TOKEN": TOKEN, "DUALRUN_API_READ_TOKEN": READ_TOKEN}
    return Settings.from_env(base | env)


def client(settings: Settings) -> TestClient:
    """A client of the app for these settings (use it as a context manager: the lifespan)."""
    return TestClient(create_app(settings))


@pytest.fixture
def api(db_dsn: str, tmp_path: Path, temporal_env: Any) -> Iterator[TestClient]:
    """The app with its lifespan (pool, flags, lazy Temporal client) on this test's schema."""
    with client(api_settings(db_dsn, tmp_path, temporal_env)) as c:
        yield c


def body(domain: str = "api.fr", **over: Any) -> dict[str, Any]:
    return {"domain": domain, "years": 1, "current_expiry": EXPIRY, "customer_id": "c-1", **over}
