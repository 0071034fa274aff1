"""Token bucket and the bounded traffic log of one registry (pure: no I/O, injectable clocks)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
_EPSILON = 1e-9


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved; starts full.

    Over any interval of length T it admits at most `burst + rate * T` requests.
    """

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.rate = 0.0
        self.burst = 0
        self._tokens = 0.0
        self._stamp = clock()
        self.configure(rate, burst, refill=True)

    def configure(self, rate: float, burst: int, *, refill: bool = False) -> None:
        """Change the limit; the saved tokens are kept (capped at the new burst) unless `refill`."""
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate: must be a positive number, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst: must be at least 1, got {burst!r}")
        self._refill()
        self.rate = float(rate)
        self.burst = int(burst)
        self._tokens = float(self.burst) if refill else min(self._tokens, float(self.burst))

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        if self.rate > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_acquire(self) -> float:
        """Take one token: 0.0 when admitted, else the seconds until a token is available."""
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:  # float sums of rate * elapsed can fall just short
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return max((1.0 - self._tokens) / self.rate, 1e-3)


@dataclass(frozen=True)
class SecondCount:
    second: int
    admitted: int
    rejected: int


class TrafficLog:
    """Per-second admitted/rejected counts (wall clock) and recent admission times (monotonic).

    Bounded: at most `max_seconds` seconds of counts and `max_events` admission times are kept.
    `peak_excess(rate)` is the largest `admitted_in(I) - rate * len(I)` over intervals I of the
    kept admissions since the last limit change: the limit held while it stays <= burst.
    """

    def __init__(
        self,
        *,
        max_seconds: int = 3600,
        max_events: int = 100_000,
        wall: Clock = time.time,
        clock: Clock = time.monotonic,
    ) -> None:
        self._wall = wall
        self._clock = clock
        self._max_seconds = max_seconds
        self._seconds: OrderedDict[int, list[int]] = OrderedDict()
        self._admitted_at: deque[float] = deque(maxlen=max_events)
        self.admitted = 0
        self.rejected = 0
        self.limit_changed_at = clock()

    def record(self, admitted: bool) -> None:
        second = int(self._wall())
        counts = self._seconds.get(second)
        if counts is None:
            counts = self._seconds[second] = [0, 0]
            while len(self._seconds) > self._max_seconds:
                self._seconds.popitem(last=False)
        if admitted:
            counts[0] += 1
            self.admitted += 1
            self._admitted_at.append(self._clock())
        else:
            counts[1] += 1
            self.rejected += 1

    def limit_changed(self) -> None:
        """The rate or burst changed: later peaks are measured against the new limit only."""
        self.limit_changed_at = self._clock()

    def seconds(self, since: int | None = None) -> list[SecondCount]:
        return [
            SecondCount(second, counts[0], counts[1])
            for second, counts in self._seconds.items()
            if since is None or second >= since
        ]

    def peak_excess(self, rate: float) -> float:
        """max over i <= j of (j - i + 1) - rate * (t_j - t_i), admissions since the last change."""
        times = [t for t in self._admitted_at if t >= self.limit_changed_at]
        best = 0.0
        running = -math.inf  # max over i <= j of rate * t_i - i
        for j, t in enumerate(times):
            running = max(running, rate * t - j)
            best = max(best, (j + 1) - rate * t + running)
        return best

    def clear(self) -> None:
        self._seconds.clear()
        self._admitted_at.clear()
        self.admitted = 0
        self.rejected = 0
        self.limit_changed_at = self._clock()
