"""The host's speed while a bench runs: one fixed pure-Python workload, timed in thread CPU time
every few seconds from a thread of the bench process.

On this shared VM the same work takes very different CPU from one minute to the next: five
back-to-back runs of one loop on the idle machine took 1.69, 2.38, 2.27, 2.01 and 1.69 s. A
size's CPU per renewal divided by its probe's median cost (relative to the first size's)
separates the growth of the work from the drift of the host. The probe costs about 0.5% of a
core.
"""

from __future__ import annotations

import statistics
import threading
import time
from types import TracebackType

WORK = 200_000  # iterations: about 20 ms of CPU here


def probe_ms() -> float:
    """Thread CPU milliseconds of the fixed workload, now."""
    started = time.thread_time()
    total = 0
    for i in range(WORK):
        total += i * i
    return (time.thread_time() - started) * 1000


class HostProbe:
    """`with HostProbe() as probe:` samples `probe_ms()` every `every_s` until the block ends."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(probe_ms())
            self._stop.wait(self.every_s)

    def __enter__(self) -> HostProbe:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        """Median, 10th and 90th percentile of the samples (ms), and their count."""
        deciles = statistics.quantiles(self.samples, n=10) if len(self.samples) > 1 else []
        return {
            "median_ms": statistics.median(self.samples),
            "p10_ms": deciles[0] if deciles else self.samples[0],
            "p90_ms": deciles[-1] if deciles else self.samples[0],
            "n": float(len(self.samples)),
        }
