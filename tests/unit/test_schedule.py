"""Scheduled windows are deterministic: replicas compute the same window for the same tick."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from reconciler.model import Window
from reconciler.schedule import ScheduleConfig, day_window, sweep_grace, sweep_trigger, sweep_window

UTC = dt.UTC


def covers(window: Window, moment: dt.datetime) -> bool:
    return window.since <= moment < window.until


def test_sweep_windows_are_aligned_and_leave_no_gap() -> None:
    """Two replicas a few seconds apart in one tick get the same window; each window reaches
    back over the grace before its tick, so consecutive ones overlap by it, never gap."""
    t = dt.datetime(2026, 12, 1, 0, 7, 31, tzinfo=UTC)
    a = sweep_window(t, 300)
    assert a == sweep_window(t + dt.timedelta(seconds=20), 300)
    assert (a.since, a.until) == (
        dt.datetime(2026, 11, 30, 23, 59, 55, tzinfo=UTC),
        dt.datetime(2026, 12, 1, 0, 5, tzinfo=UTC),
    )
    following = sweep_window(t + dt.timedelta(minutes=5), 300)
    assert following.since == a.until - dt.timedelta(seconds=sweep_grace(300)) < a.until


@pytest.mark.parametrize("every", [2.0, 60.0, 300.0])
@pytest.mark.parametrize("offset", [0.0, 0.3, 0.5, 0.999])  # where in its tick a finding is
def test_a_finding_is_swept_within_one_interval_and_the_grace(every: float, offset: float) -> None:
    """The sweep fires at each tick's end plus the grace and covers that tick: the sweep that
    covers a finding's moment fires at most one interval plus the grace after it."""
    trigger = sweep_trigger(ScheduleConfig(sweep_every_s=every))
    tick = dt.datetime(2026, 12, 1, 0, 10, tzinfo=UTC)  # aligned for all three intervals
    found_at = tick + dt.timedelta(seconds=offset * every)
    fires = trigger.get_next_fire_time(None, found_at)
    while fires is not None and not covers(sweep_window(fires, every), found_at):
        fires = trigger.get_next_fire_time(fires, fires + dt.timedelta(microseconds=1))
    assert fires == tick + dt.timedelta(seconds=every + sweep_grace(every))  # that tick's sweep
    assert fires - found_at <= dt.timedelta(seconds=every + sweep_grace(every))


def test_day_window_follows_the_timezone() -> None:
    """The nightly window is the calendar day in the configured zone (DST days included)."""
    paris = ZoneInfo("Europe/Paris")
    w = day_window(dt.date(2026, 10, 25), paris)  # a 25-hour day
    assert w.since.isoformat() == "2026-10-25T00:00:00+02:00"
    assert w.until.astimezone(dt.UTC) - w.since.astimezone(dt.UTC) == dt.timedelta(hours=25)
