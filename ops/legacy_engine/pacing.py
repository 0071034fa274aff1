"""The legacy robots' own pacing of registry calls: a token bucket per TLD, shared by every
robot of the process, at the provider's configured limit (`DUALRUN_REGISTRY_RATE_LIMITS`).

Off by default: the reference robots retry a 429 blindly, each retry an attempt, as the legacy
system did before the seed's incident (at month start they thrash, then fail the renewal on
its last attempt). `dualrun legacy-engine --pace` runs them as a registrar would once it had
learnt: never asking a provider faster than its limit, and never letting one slow provider
take every robot. Each TLD has a number of places (a second's worth of its calls, at least
two): a robot claims only a row of a TLD with a free place, so the robots of a provider that
is busy wait for its tokens while the others keep every other provider busy.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from ops.registry_sim.ratelimit import Clock, TokenBucket
from renewals.domains import tld_of

# Seconds of a provider's calls its robots may hold rows for at once: enough robots that its
# tokens never wait for one, few enough that the others are left to the other providers.
PLACES_S = 1.0
MIN_PLACES = 2


class Pacer:
    """`await pacer.turn(domain)` before each registry call: returns once the call's TLD has a
    token. The bucket holds one token: calls leave evenly, one each 1/rate seconds, so the
    provider's own burst absorbs the jitter of the way there (two calls sent 1/rate apart may
    arrive closer). `take`/`give_back` count the rows robots hold per TLD; `free()` names the
    TLDs of `tlds` with a free place, the only ones a claim looks at."""

    def __init__(
        self,
        rate_of: Callable[[str], float],
        tlds: Iterable[str],
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        places_s: float = PLACES_S,
    ) -> None:
        self._rate_of = rate_of
        self._tlds = sorted(set(tlds))
        self._clock = clock
        self._sleep = sleep
        self._places_s = places_s
        self._buckets: dict[str, TokenBucket] = {}
        self._held: Counter[str] = Counter()

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

    def places(self, tld: str) -> int:
        return max(MIN_PLACES, math.ceil(self._rate_of(tld) * self._places_s))

    def free(self) -> list[str]:
        return [t for t in self._tlds if self._held[t] < self.places(t)]

    def take(self, tld: str) -> None:
        self._held[tld] += 1

    def give_back(self, tld: str) -> None:
        self._held[tld] = max(0, self._held[tld] - 1)
