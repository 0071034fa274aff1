"""The legacy robots' own pacing of registry calls: a token bucket per TLD, shared by every
robot of the process, at the provider's configured limit (`DUALRUN_REGISTRY_RATE_LIMITS`).

Off by default: the reference robots retry a 429 blindly, each retry an attempt, as the legacy
system did before the seed's incident (at month start they thrash, then fail the renewal on
its last attempt). `dualrun legacy-engine --pace` runs them as a registrar would once it had
learnt: never asking a provider faster than its limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ops.registry_sim.ratelimit import Clock, TokenBucket
from renewals.domains import tld_of


class Pacer:
    """`await pacer.turn(domain)` before each registry call: returns once the call's TLD has a
    token. The bucket holds one token: calls leave evenly, one each 1/rate seconds, so the
    provider's own burst absorbs the jitter of the way there (two calls sent 1/rate apart may
    arrive closer)."""

    def __init__(
        self,
        rate_of: Callable[[str], float],
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rate_of = rate_of
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, tld: str) -> TokenBucket:
        bucket = self._buckets.get(tld)
        if bucket is None:
            rate = self._rate_of(tld)
            bucket = self._buckets[tld] = TokenBucket(rate, 1, self._clock)
        return bucket

    async def turn(self, domain: str) -> None:
        bucket = self._bucket(tld_of(domain))
        while (wait := bucket.try_acquire()) > 0:
            await self._sleep(wait)
