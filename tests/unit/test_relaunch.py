"""Relaunch pieces that need no services: pacing, the reset point, the selection."""

from __future__ import annotations

import datetime as dt

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    HistoryEvent,
)

from dualrun.relaunch.model import Selection
from dualrun.relaunch.pacing import Pacer
from renewals.errors import ConfigError, InvalidInput
from renewals.settings import Settings
from temporal_flow.relaunch import ResetPoint, reset_point
from temporal_flow.workflows import REGISTRY_RETRY, registry_retry

TLDS = frozenset({"fr", "com"})
E = EventType


def test_pacer_spaces_slots_and_saves_none_while_idle() -> None:
    """Slots are 1/rate apart for back-to-back callers; after a pause the next one is immediate."""
    now = [100.0]
    pacer = Pacer(4.0, clock=lambda: now[0])
    assert [pacer.book() for _ in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    now[0] = 110.0  # idle for ten seconds: no burst of saved-up slots
    assert [pacer.book() for _ in range(3)] == [0.0, 0.25, 0.5]


def test_pacer_never_exceeds_rate_plus_one_in_any_second() -> None:
    """Simulated starts at their booked slots: at most rate + 1 in any wall-clock second."""
    now = [0.3]
    pacer = Pacer(7.0, clock=lambda: now[0])
    starts = [now[0] + pacer.book() for _ in range(100)]
    for second in range(int(starts[-1]) + 1):
        assert sum(second <= t < second + 1 for t in starts) <= 8


def _event(event_id: int, kind: int, **attrs: object) -> HistoryEvent:
    return HistoryEvent(event_id=event_id, event_type=kind, **attrs)  # type: ignore[arg-type]


def _scheduled(event_id: int, name: str) -> HistoryEvent:
    attrs = ActivityTaskScheduledEventAttributes()
    attrs.activity_type.name = name
    return _event(
        event_id,
        E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        activity_task_scheduled_event_attributes=attrs,
    )


def _completed(event_id: int, scheduled: int) -> HistoryEvent:
    attrs = ActivityTaskCompletedEventAttributes(scheduled_event_id=scheduled)
    return _event(
        event_id,
        E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        activity_task_completed_event_attributes=attrs,
    )


def _task_completed(event_id: int) -> HistoryEvent:
    return _event(event_id, E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)


def test_reset_point_is_the_task_before_the_last_unfinished_activity() -> None:
    """status and charge completed, renew failed: reset to the task that scheduled renew."""
    events = [
        _event(1, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
        _task_completed(4),
        _scheduled(6, "registry_status"),
        _completed(8, 6),
        _task_completed(11),
        _scheduled(12, "billing_charge"),
        _completed(14, 12),
        _task_completed(17),
        _scheduled(18, "registry_renew"),
        _event(20, E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT),
        _event(24, E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED),
    ]
    assert reset_point(events) == ResetPoint(17, "registry_renew")


def test_reset_point_without_a_failed_activity_is_the_first_task() -> None:
    """A workflow that failed in its own code (a refusal) is reset to its first task."""
    events = [
        _task_completed(4),
        _scheduled(6, "registry_status"),
        _completed(8, 6),
        _task_completed(11),
    ]
    assert reset_point(events) == ResetPoint(4, None)
    assert reset_point([_event(1, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)]) is None


def test_selection_parse_names_the_bad_field() -> None:
    """Unknown TLD or status, an empty window, a non-positive stuck-after: InvalidInput(field)."""
    ok = {"tld": "FR", "status": "failed", "since": None, "until": None, "stuck_after": 30}
    cases = [
        ({"tld": "xyz"}, "tld"),
        ({"tld": None}, "tld"),
        ({"status": "late"}, "status"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "since"),
        ({"until": "tomorrow"}, "until"),
        ({"stuck_after": "-1"}, "stuck_after"),
    ]
    for change, field in cases:
        with pytest.raises(InvalidInput) as err:
            Selection.parse(**{**ok, **change}, include_refusals=False, known_tlds=TLDS)  # type: ignore[arg-type]
        assert err.value.field == field


def test_selection_key_is_stable_and_round_trips() -> None:
    """The same options give the same key (that is how a rerun resumes its job)."""
    options = {"tld": ".fr", "status": "stuck", "since": "2026-11-01", "until": None}
    a = Selection.parse(**options, stuck_after="15", include_refusals=False, known_tlds=TLDS)
    b = Selection.parse(**options, stuck_after=15.0, include_refusals=False, known_tlds=TLDS)
    assert a.key == b.key and Selection.from_dict(a.as_dict()).key == a.key
    assert a.since == dt.datetime(2026, 11, 1, tzinfo=dt.UTC) and a.tld == "fr"
    now = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)
    assert a.window(now) == (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), now)
    failed = Selection.parse(
        **{**options, "status": "failed"}, stuck_after="15", include_refusals=False, known_tlds=TLDS
    )
    assert failed.key != a.key and failed.as_dict()["stuck_after_min"] is None


def test_registry_max_attempts_setting_bounds_the_registry_retry_policy() -> None:
    """DUALRUN_REGISTRY_MAX_ATTEMPTS: default 8, 0 = unbounded (older inputs), bad = named."""
    assert Settings.from_env({}).registry_max_attempts == 8
    assert Settings.from_env({"DUALRUN_REGISTRY_MAX_ATTEMPTS": "0"}).registry_max_attempts == 0
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"DUALRUN_REGISTRY_MAX_ATTEMPTS": "-1"})
    assert err.value.variable == "DUALRUN_REGISTRY_MAX_ATTEMPTS"
    assert registry_retry(0) is REGISTRY_RETRY and REGISTRY_RETRY.maximum_attempts == 0
    bounded = registry_retry(3)
    assert bounded.maximum_attempts == 3
    assert bounded.non_retryable_error_types == REGISTRY_RETRY.non_retryable_error_types
