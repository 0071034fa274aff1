"""The simulator's token bucket and traffic log, on a fake clock (no services)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.registry_sim.ratelimit import TokenBucket, TrafficLog


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_starts_full_and_admits_exactly_the_burst() -> None:
    """A fresh bucket admits `burst` requests at once, then refuses."""
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire() > 0


def test_retry_after_is_the_time_to_the_next_token() -> None:
    """The wait returned on refusal is exactly when the next token arrives."""
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.25)
    clock.advance(0.1)
    assert bucket.try_acquire() == pytest.approx(0.15)
    clock.advance(0.15)
    assert bucket.try_acquire() == 0.0


def test_refill_is_capped_at_the_burst() -> None:
    """A long idle time saves at most `burst` tokens."""
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    bucket.try_acquire()
    bucket.try_acquire()
    clock.advance(3600)
    assert bucket.tokens == 2
    admitted = sum(bucket.try_acquire() == 0.0 for _ in range(10))
    assert admitted == 2


def test_steady_rate_is_admitted() -> None:
    """Requests spaced at exactly 1/rate are all admitted, even with a burst of one."""
    clock = FakeClock()
    bucket = TokenBucket(rate=20, burst=1, clock=clock)
    for _ in range(100):
        assert bucket.try_acquire() == 0.0
        clock.advance(0.05)


def test_configure_keeps_saved_tokens_capped_at_the_new_burst() -> None:
    """Lowering the burst drops the extra tokens; raising it does not create any."""
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=10, clock=clock)
    bucket.configure(rate=1, burst=2)
    assert bucket.tokens == 2
    bucket.try_acquire()
    bucket.configure(rate=1, burst=50)
    assert bucket.tokens == 1
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(1.0)


def test_bad_limits_are_refused() -> None:
    """A non-positive rate or a burst below one is a ValueError naming it."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate=1, burst=0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=200),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=300),
)
def test_admissions_never_exceed_burst_plus_rate_times_elapsed(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """Over any interval, admitted <= burst + rate * length (checked by the traffic log)."""
    clock = FakeClock()
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    log = TrafficLog(clock=clock, wall=clock)
    times: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        ok = bucket.try_acquire() == 0.0
        log.record(ok)
        if ok:
            times.append(clock.now)
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - times[i]) + 1e-6
    assert log.peak_excess(rate) <= burst + 1e-6


def test_traffic_log_counts_per_second() -> None:
    """Admitted and rejected requests are counted per wall-clock second."""
    clock = FakeClock(100.0)
    log = TrafficLog(clock=clock, wall=clock)
    log.record(True)
    log.record(False)
    clock.advance(1.2)
    log.record(True)
    seconds = [(s.second, s.admitted, s.rejected) for s in log.seconds()]
    assert seconds == [(100, 1, 1), (101, 1, 0)]
    assert (log.admitted, log.rejected) == (2, 1)
    assert [s.second for s in log.seconds(since=101)] == [101]


def test_traffic_log_is_bounded() -> None:
    """Only the last `max_seconds` seconds of counts are kept."""
    clock = FakeClock(0.0)
    log = TrafficLog(max_seconds=5, max_events=10, clock=clock, wall=clock)
    for _ in range(20):
        log.record(True)
        clock.advance(1.0)
    assert [s.second for s in log.seconds()] == [15, 16, 17, 18, 19]
    assert log.admitted == 20


def test_peak_excess_sees_a_burst() -> None:
    """Five admissions at one instant give a peak of five whatever the rate."""
    clock = FakeClock()
    log = TrafficLog(clock=clock, wall=clock)
    for _ in range(5):
        log.record(True)
    assert log.peak_excess(rate=100) == pytest.approx(5)


def test_peak_excess_restarts_after_a_limit_change() -> None:
    """Admissions before the limit changed are not measured against the new limit."""
    clock = FakeClock()
    log = TrafficLog(clock=clock, wall=clock)
    for _ in range(10):
        log.record(True)
    clock.advance(0.5)
    log.limit_changed()
    log.record(True)
    assert log.peak_excess(rate=1) == pytest.approx(1)


# -- the legacy robots' pacer: the same bucket, awaited before each registry call ---------------
async def test_pacer_spaces_a_tlds_calls_evenly_and_never_holds_up_another_tld() -> None:
    """Each call of a TLD leaves 1/rate after the one before it; another TLD is not held up."""
    from ops.legacy_engine.pacing import Pacer

    clock = FakeClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    pacer = Pacer({"com": 4.0, "fr": 2.0}.__getitem__, ["com", "fr"], clock=clock, sleep=sleep)
    await pacer.turn("a.com")
    assert slept == []
    await pacer.turn("b.com")
    assert slept == [pytest.approx(0.25)]
    await pacer.turn("c.fr")  # its own bucket
    assert len(slept) == 1
    clock.advance(10.0)  # idle: no burst saved up beyond one call
    await pacer.turn("d.com")
    await pacer.turn("e.com")
    assert slept == [pytest.approx(0.25), pytest.approx(0.25)]
    for _ in range(8):
        await pacer.turn("f.com")
    assert sum(slept) == pytest.approx(0.25 * 10)


def test_pacer_places_are_a_seconds_worth_of_calls_at_least_two() -> None:
    """A TLD has a second's worth of its calls in places (at least 2); taken up, it is not
    free until one is given back."""
    from ops.legacy_engine.pacing import Pacer

    pacer = Pacer({"com": 4.0, "fr": 0.5, "eu": 2.5}.__getitem__, ["fr", "com", "eu"])
    assert (pacer.places("com"), pacer.places("fr"), pacer.places("eu")) == (4, 2, 3)
    for _ in range(3):
        pacer.take("com")
    pacer.take("fr")
    assert pacer.free() == ["com", "eu", "fr"]
    pacer.take("com")
    pacer.take("fr")
    assert pacer.free() == ["eu"]
    pacer.give_back("com")
    assert pacer.free() == ["com", "eu"]
