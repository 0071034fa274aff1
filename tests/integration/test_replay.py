"""Saved histories of RenewDomain replay cleanly: a non-deterministic change fails CI.

Regenerate after an intended, versioned change with
`DUALRUN_SAVE_HISTORIES=1 pytest tests/integration/test_temporal_flow.py
tests/integration/test_relaunch.py tests/integration/test_rerun_evidence.py
tests/integration/test_resets.py tests/integration/test_reset_guard.py`, keeping the older
files under a `v<N>_` prefix: runs started before the change must still replay (`v1_*`: before
the `dualrun-sync-in-activities` patch, when the row's start and `done` were written by local
activities; `v2_*`: before `dualrun-rerun-evidence`, when a moved expiry failed with
ExpiryMismatch and a renew refused after the charge kept it; `pre_shadow_refusals_*`: before
`dualrun-shadow-refusals`, when a shadow plan the registry refused ended FAILED, saved by
tests/integration/test_shadow_plans.py with the workflow code of before that patch).
`reset_*`: runs made by a Temporal reset through the real CLI (their histories begin with the
run they replace), among them a LastWorkflowTask reset of a failed run under
`dualrun-reset-retry`, a reset whose renew waited on the old run's (RenewInFlight, retried),
and reset runs ending superseded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from temporal_flow.interceptors import all_interceptors
from temporal_flow.workflows import RenewDomain

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_histories_are_present() -> None:
    """The replay corpus covers live, cancelled, failed, shadow, rerun and reset runs."""
    names = {p.stem for p in HISTORIES}
    live = {"live_done", "live_cancelled_refunded", "live_failed_prohibited"}
    assert live <= names
    assert {f"v1_{n}" for n in live} <= names  # runs started before the sync patch
    reruns = {
        "live_rerun_done_from_evidence",
        "live_superseded",
        "live_renew_refused_refunded",
        "live_renewed_elsewhere_refunded",
    }
    assert reruns | {"v2_live_expiry_mismatch", "v2_live_renew_refused"} <= names
    resets = {  # reset runs, by the real CLI: tests/integration/test_resets.py, _reset_guard.py
        "reset_first_of_done",
        "reset_last_of_failed",  # the failure replayed, called again (dualrun-reset-retry)
        "reset_event_of_running",
        "reset_renew_in_flight",  # the old run's renew in flight: RenewInFlight, retried
        "reset_first_superseded_refunded",
        "reset_last_superseded_refunded",
        "reset_superseded_from_evidence",
    }
    assert resets <= names
    assert any(n.startswith("shadow_") for n in names)
    # a shadow plan the registry refused: a would_refuse plan, and the FAILED run of before
    assert {"shadow_refused_not_found", "pre_shadow_refusals_not_found"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    """Replaying a saved history with today's workflow and interceptors raises nothing."""
    pool = AsyncConnectionPool("", open=False)  # never opened: replay runs no activity
    replayer = Replayer(workflows=[RenewDomain], interceptors=all_interceptors(pool))
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
