"""The Temporal dev server's persistence at month start: its SQLite file against in-memory.

The stack runs the dev server on a SQLite file with WAL and synchronous=off
(`ops.temporal.PERSISTENCE_ARGS`). This runs `bench.scale`'s month-start burst with that file
and with the dev server in memory (no `--db-filename`, no pragmas), A B B A per size in one
run, and records drain ÷ minimum, the machine's CPU per renewal and the dev server's share.

Run: `.venv/bin/python -m bench.scale_persistence [--sizes 1000] [--rates com=5,...]`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from collections.abc import Iterator
from typing import Any

from bench import scale
from bench.common import write_section
from ops import temporal
from renewals import logs
from renewals.settings import Settings

DEV_SERVER = "Temporal dev server"


@contextlib.contextmanager
def in_memory() -> Iterator[None]:
    """The stack's dev server without its file (nor the file's pragmas), found by its port."""
    argv, markers = temporal.dev_server_argv, temporal.markers

    def memory_argv(settings: Settings) -> list[str]:
        args, kept = argv(settings), []
        skip = 0
        for arg in args:
            if skip:
                skip -= 1
            elif arg in ("--db-filename", "--sqlite-pragma"):
                skip = 1
            else:
                kept.append(arg)
        return kept

    temporal.dev_server_argv = memory_argv  # type: ignore[assignment]
    temporal.markers = lambda s: ["start-dev", "--port", str(s.temporal_port)]  # type: ignore[assignment]
    try:
        yield
    finally:
        temporal.dev_server_argv, temporal.markers = argv, markers  # type: ignore[assignment]


def one(n: int, rates: str, mode: str) -> dict[str, Any]:
    with in_memory() if mode == "memory" else contextlib.nullcontext():
        result = scale.one_size(n, rates)
    return {"mode": mode, **result}


def report(runs: list[dict[str, Any]]) -> str:
    lines = []
    for n in sorted({r["size"] for r in runs}):
        of = [r for r in runs if r["size"] == n]
        for r in of:
            lines.append(
                f"| {r['renewals']:,} | {r['mode']} | {r['drain_s'] / r['minimum_s']:.2f} |"
                f" {r['cpu_ms']:.1f} | {r['cpu_ms_by_group'][DEV_SERVER]:.1f} |"
                f" {r['peak_mb'][DEV_SERVER]:.0f} |"
            )
        mean = {
            mode: statistics.mean(r["cpu_ms"] for r in of if r["mode"] == mode)
            for mode in ("file", "memory")
        }
        dev = {
            mode: statistics.mean(r["cpu_ms_by_group"][DEV_SERVER] for r in of if r["mode"] == mode)
            for mode in ("file", "memory")
        }
        lines.append(
            f"| {of[0]['renewals']:,} | **memory ÷ file** | |"
            f" **{mean['memory'] / mean['file']:.2f}** | **{dev['memory'] / dev['file']:.2f}** | |"
        )
    rows = "\n".join(lines)
    return f"""
Each run is one `bench.scale` burst on a fresh stack (its table's mix and limits), in the order
file, memory, memory, file; the ratio row is the mean of each mode's runs.

| renewals | dev server persistence | drain ÷ minimum | machine CPU per renewal (ms) | dev server CPU per renewal (ms) | dev server peak PSS (MB) |
|---|---|---|---|---|---|
{rows}
"""


def main(sizes: tuple[int, ...], rates: str) -> None:
    logs.configure("warning", "json")
    runs = []
    for n in sizes:
        for mode in ("file", "memory", "memory", "file"):
            print(f"== {n} renewals, dev server {mode}", flush=True)
            runs.append(one(n, rates, mode))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "per_tld"}), flush=True)
    write_section(
        "Scale: the dev server's SQLite file against in-memory",
        ".venv/bin/python -m bench.scale_persistence --sizes "
        + ",".join(str(n) for n in sizes)
        + f" --rates {rates}",
        report(runs),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000")
    parser.add_argument("--rates", default=scale.RATES)
    args = parser.parse_args()
    main(tuple(int(v) for v in args.sizes.split(",")), args.rates)
