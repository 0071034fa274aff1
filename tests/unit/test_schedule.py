"""Scheduled windows are deterministic: replicas compute the same window for the same tick."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from reconciler.schedule import day_window, sweep_window


def test_sweep_windows_are_aligned_and_contiguous() -> None:
    """Two replicas a few seconds apart in one tick get the same window; ticks do not overlap."""
    t = dt.datetime(2026, 12, 1, 0, 7, 31, tzinfo=dt.UTC)
    a = sweep_window(t, 300)
    assert a == sweep_window(t + dt.timedelta(seconds=20), 300)
    assert (a.since, a.until) == (
        dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC),
    )
    assert sweep_window(t + dt.timedelta(minutes=5), 300).since == a.until


def test_day_window_follows_the_timezone() -> None:
    """The nightly window is the calendar day in the configured zone (DST days included)."""
    paris = ZoneInfo("Europe/Paris")
    w = day_window(dt.date(2026, 10, 25), paris)  # a 25-hour day
    assert w.since.isoformat() == "2026-10-25T00:00:00+02:00"
    assert w.until.astimezone(dt.UTC) - w.since.astimezone(dt.UTC) == dt.timedelta(hours=25)
