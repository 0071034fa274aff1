"""What the demo does: the flags per TLD, the domains, the faults it injects."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field

from renewals.model import Mode, RenewalRequest

# fr moved, de a quarter moved, info in shadow, com and eu still legacy.
FLAGS: dict[str, tuple[Mode, int]] = {
    "fr": (Mode.TEMPORAL, 100),
    "de": (Mode.TEMPORAL, 25),
    "info": (Mode.SHADOW, 100),
    "com": (Mode.LEGACY, 100),
    "eu": (Mode.LEGACY, 100),
}
LEGACY_TLDS = ("com", "eu")


@dataclass(frozen=True)
class DemoConfig:
    renewals: int = 3500  # about three minutes here (2 cores)
    batch_share: float = 0.2  # of legacy-TLD renewals, created by the upstream auto-renew batch
    duplicate_share: float = 0.1  # of the batch, created twice (the month-start incident)
    commit_timeout_rate: float = 0.01  # registry commits then never answers
    premium_share: float = 0.05
    workers: int = 2
    robots: int = 6
    kill_worker: bool = True
    drain_timeout_s: float = 600.0
    seed: int = field(default_factory=lambda: random.randrange(1 << 30))


@dataclass(frozen=True)
class Domains:
    """The domains of one demo run: seeded per TLD, split into router and batch renewals."""

    run: str
    by_tld: dict[str, list[tuple[str, dt.date]]]
    routed: list[RenewalRequest]
    batch: list[RenewalRequest]


def make_domains(config: DemoConfig, today: dt.date) -> Domains:
    rng = random.Random(config.seed)
    run = uuid.uuid4().hex[:6]
    per_tld = max(1, config.renewals // len(FLAGS))
    by_tld: dict[str, list[tuple[str, dt.date]]] = {}
    routed: list[RenewalRequest] = []
    batch: list[RenewalRequest] = []
    for tld in FLAGS:
        names = [
            (f"m{run}-{i:05d}.{tld}", today + dt.timedelta(days=rng.randint(1, 30)))
            for i in range(per_tld)
        ]
        by_tld[tld] = names
        for i, (domain, expiry) in enumerate(names):
            request = RenewalRequest(
                domain=domain,
                years=rng.choice((1, 1, 1, 2, 3)),
                current_expiry=expiry,
                customer_id=f"cust-{rng.randrange(500):04d}",
                operation_id=f"op-{run}-{tld}-{i:05d}",
            )
            to_batch = tld in LEGACY_TLDS and i < per_tld * config.batch_share
            (batch if to_batch else routed).append(request)
    rng.shuffle(routed)
    return Domains(run, by_tld, routed, batch)
