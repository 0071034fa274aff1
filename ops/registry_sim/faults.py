"""Injected faults of one registry: latency, 503 errors and "committed then held".

Each fault draws from its own RNG stream derived from the configured `seed`, so a seeded
registry makes the same decisions for the same sequence of calls of each kind.
"""

from __future__ import annotations

import random

from ops.registry_sim.models import RegistryConfig


class FaultInjector:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        seed = config.seed
        self._latency = random.Random(None if seed is None else f"{seed}:latency")
        self._errors = random.Random(None if seed is None else f"{seed}:errors")
        self._holds = random.Random(None if seed is None else f"{seed}:holds")

    def latency_s(self) -> float:
        """Seconds to wait before answering (latency_ms plus or minus up to the jitter)."""
        base, jitter = self.config.latency_ms, self.config.latency_jitter_ms
        if base <= 0 and jitter <= 0:
            return 0.0
        spread = self._latency.uniform(-jitter, jitter) if jitter > 0 else 0.0
        return max(0.0, base + spread) / 1000.0

    def fail(self) -> bool:
        """Answer this call with 503 (error_rate 1.0 is an outage)."""
        rate = self.config.error_rate
        return rate > 0 and self._errors.random() < rate

    def hold_commit(self) -> bool:
        """Commit this renew, then hold the answer for hold_s seconds."""
        rate = self.config.commit_timeout_rate
        return rate > 0 and self._holds.random() < rate
