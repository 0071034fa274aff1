"""Routing: `Router.route` (flag view, variant, bucket, reason, decision) against the bare Unleash
evaluation it wraps (`UnleashClient.get_variant` on the same bootstrap), same process, same names.

Run: `.venv/bin/python -m bench.routing_bench [--domains 50000]`
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from UnleashClient import UnleashClient

from bench.common import write_section
from dualrun.flags.chain import FlagChain
from dualrun.flags.local import SEED, LocalFlags
from dualrun.flags.model import RuleChange, context
from dualrun.flags.sources import OFFLINE_URL, BootstrapSource, MemoryCache
from dualrun.routing.router import Router
from renewals.model import Mode

FLAG = "dualrun.renewals"
RULES = {"fr": (Mode.TEMPORAL, 100), "de": (Mode.TEMPORAL, 25), "info": (Mode.SHADOW, 100)}


def _best_of(runs: int, fn: object, domains: list[str]) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(domains)  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bootstrap.json"
        shutil.copyfile(SEED, path)
        flags = LocalFlags(path, FLAG)
        flags.set_enabled(True)
        for tld, (mode, rollout) in RULES.items():
            flags.set_rule(RuleChange(tld, mode, rollout))
        source = BootstrapSource(path, FLAG, recheck_s=3600)
        chain = FlagChain(FLAG, None, source)
        chain.start()
        router = Router(chain)
        cache = MemoryCache()
        cache.bootstrap_from_dict(json.loads(path.read_text()))
        bare = UnleashClient(
            url=OFFLINE_URL,
            app_name="bench",
            disable_metrics=True,
            disable_registration=True,
            cache=cache,
        )
        bare.initialize_client(fetch_toggles=False)
        tlds = ["fr", "de", "info", "com", "eu"]
        domains = [f"d{i}.{tlds[i % 5]}" for i in range(n)]

        def routed(names: list[str]) -> None:
            for d in names:
                router.route(d)

        def evaluated(names: list[str]) -> None:
            for d in names:
                bare.get_variant(FLAG, context(d, d.rsplit(".", 1)[1]))

        routed(domains[:1000])
        evaluated(domains[:1000])
        t_router = _best_of(3, routed, domains)
        t_bare = _best_of(3, evaluated, domains)
        chain.close()
        bare.destroy()
    body = f"""
{n:,} domains over five TLDs (fr temporal 100%, de temporal 25%, info shadow, com/eu no rule),
best of 3, one process, flags from a bootstrap file evaluated by UnleashClient.

| run | decisions/s | ratio |
|---|---|---|
| bare `UnleashClient.get_variant` (baseline) | {n / t_bare:,.0f} | 1.00 |
| `Router.route` (variant + bucket + reason + flag state) | {n / t_router:,.0f} | **{t_bare / t_router:.2f}** |
"""
    write_section("Routing", f".venv/bin/python -m bench.routing_bench --domains {n}", body)
    print(body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", type=int, default=50_000)
    main(parser.parse_args().domains)
