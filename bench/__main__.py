"""Every benchmark in one command, each writing its section of bench/RESULTS.md.

Run: `.venv/bin/pip install -e '.[dev,bench]' && .venv/bin/python -m bench`
(a quiet machine gives steadier figures: the ratios are measured within one run each).
"""

from __future__ import annotations

import subprocess
import sys

BENCHES = (
    ["bench.reconcile_bench"],
    ["bench.reconcile_bench", "--operations", "10000000"],
    ["bench.routing_bench"],
    ["bench.temporal_bench"],
    ["bench.burst_bench"],
    ["bench.legacy_latency"],
    ["bench.guard_window"],
    ["bench.intake_bench"],
    ["bench.scale"],
)


def main() -> int:
    failed = []
    for args in BENCHES:
        print(f"== {args[0]}", flush=True)
        if subprocess.run([sys.executable, "-m", *args], check=False).returncode != 0:
            failed.append(args[0])
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
