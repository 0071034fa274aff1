"""The API when Temporal does not answer a cancel: a documented 503 (`engine_unavailable`,
Retry-After), never a 500, and nothing written."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from temporal_flow.search_attributes import DEV_SERVER_ARGS
from tests.conftest import _venv_bin
from tests.harness import count
from tests.integration.api_support import AUTH, api_settings, body, client

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def _refused_cancel(answer: Any) -> None:
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "engine_unavailable" and "temporal is unavailable" in error["message"]
    assert answer.headers["retry-after"] == "5"


def _cancel_marks(db_dsn: str, op: str) -> int:
    return count(
        db_dsn,
        "SELECT count(*) FROM operations WHERE operation_id = %s AND cancel_requested_at IS NOT"
        " NULL",
        op,
    ) + count(
        db_dsn,
        "SELECT count(*) FROM operation_events WHERE operation_id = %s AND event LIKE 'cancel%%'",
        op,
    )


async def test_cancel_with_temporal_down_is_503_and_writes_nothing(
    db_dsn: str, tmp_path: Path
) -> None:
    """Temporal stopped after the workflow started: the cancel is 503 `engine_unavailable`
    (not 500) and flags nothing; a server that never answered (connect refused) is 503 too."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_venv_bin("temporal"), ip="127.0.0.1", port=_closed_port(),
        ui=False, dev_server_log_level="error", dev_server_extra_args=list(DEV_SERVER_ARGS),
    )  # fmt: skip
    settings = api_settings(db_dsn, tmp_path, env)
    try:
        with client(settings) as api:
            submitted = api.post("/renewals", json=body("down.info"), headers=AUTH)
            assert submitted.status_code == 201, submitted.text
            op = submitted.json()["operation_id"]
            assert "dispatch_error" not in submitted.json()  # the workflow runs (no worker)
            await env.shutdown()  # the workflow runs (no worker); now Temporal is gone
            _refused_cancel(api.post(f"/renewals/{op}/cancel", headers=AUTH))
    finally:
        await env.shutdown()
    assert _cancel_marks(db_dsn, op) == 0

    nowhere = {"DUALRUN_TEMPORAL_ADDRESS": f"127.0.0.1:{_closed_port()}"}
    never = api_settings(db_dsn, tmp_path, env, **nowhere)
    with client(never) as api:
        _refused_cancel(api.post(f"/renewals/{op}/cancel", headers=AUTH, json={"reason": "x"}))
    assert _cancel_marks(db_dsn, op) == 0
