"""Two revisions of this repository, one benchmark, in turn: did a change make it slower?

Each revision is checked out into a temporary git worktree and the benchmark module runs
there (that checkout first on `sys.path`, this venv's installed packages and `temporal`
binary), in the order A B B A A B ..., so a drift of the machine's speed falls on both. Per
run: its wall time and the whole machine's busy CPU over it (every process: the bench, the
dev server it starts, PostgreSQL). The ratios are taken pair by pair (B ÷ A, so above 1
means B costs more) and their median is the figure. The benchmark's own RESULTS.md section is
written into its worktree, not here.

Run: `.venv/bin/python -m bench.versus REV_A REV_B [--pairs 4] -- bench.temporal_bench --rounds 1`
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import machine_busy_s, write_section

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Run:
    revision: str
    wall_s: float
    cpu_s: float


def _checkout(revision: str, into: Path) -> str:
    """A detached worktree of `revision` at `into`; its full commit id."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(into), commit],
        check=True,
    )
    return commit


def _run(revision: str, tree: Path, bench: list[str], log: Path) -> Run:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0, c0 = time.monotonic(), machine_busy_s()
    with log.open("a") as out:
        done = subprocess.run(
            [sys.executable, "-m", *bench], cwd=tree, env=env, stdout=out, stderr=out, check=False
        )
    wall, cpu = time.monotonic() - t0, machine_busy_s() - c0
    if done.returncode != 0:
        raise RuntimeError(f"{revision}: {' '.join(bench)} exited {done.returncode} (see {log})")
    return Run(revision, wall, cpu)


def compare(a: str, b: str, bench: list[str], pairs: int) -> str:
    with tempfile.TemporaryDirectory(prefix="dualrun-versus-") as tmp:
        trees = {rev: Path(tmp) / name for rev, name in ((a, "a"), (b, "b"))}
        commits = {rev: _checkout(rev, tree) for rev, tree in trees.items()}
        log = Path(tmp) / "runs.log"
        runs: list[tuple[Run, Run]] = []
        try:
            for i in range(pairs):
                order = (a, b) if i % 2 == 0 else (b, a)
                got = {rev: _run(rev, trees[rev], bench, log) for rev in order}
                runs.append((got[a], got[b]))
                print(
                    f"pair {i + 1}/{pairs}: wall {got[a].wall_s:.1f} s vs {got[b].wall_s:.1f} s",
                    flush=True,
                )
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
    return _table(a, b, commits, bench, runs)


def _table(
    a: str, b: str, commits: dict[str, str], bench: list[str], runs: list[tuple[Run, Run]]
) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    wall = [rb.wall_s / ra.wall_s for ra, rb in runs]
    cpu = [rb.cpu_s / ra.cpu_s for ra, rb in runs]
    rows = "\n".join(
        f"| {i + 1} | {ra.wall_s:.1f} s / {ra.cpu_s:.1f} s | {rb.wall_s:.1f} s / {rb.cpu_s:.1f} s"
        f" | {w:.3f} | {c:.3f} |"
        for i, ((ra, rb), w, c) in enumerate(zip(runs, wall, cpu, strict=True))
    )
    return f"""
`{" ".join(bench)}` run as a whole process in a worktree of each revision, {len(runs)} pairs in
the order A B, B A, ... (A: `{a}` = {commits[a][:10]}; B: `{b}` = {commits[b][:10]}). CPU is
the whole machine's busy time over the run (bench, dev server, PostgreSQL).

| pair | A: wall / CPU | B: wall / CPU | wall B ÷ A | CPU B ÷ A |
|---|---|---|---|---|
{rows}

Median of the pairs: wall **{med(wall):.3f}** (range {min(wall):.3f} to {max(wall):.3f}),
CPU **{med(cpu):.3f}** (range {min(cpu):.3f} to {max(cpu):.3f}); above 1, B costs more.
"""


def main(argv: list[str]) -> None:
    own, bench = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a", help="the baseline revision")
    parser.add_argument("b", help="the revision compared with it")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--title", default=None, help="the RESULTS.md section's title")
    args = parser.parse_args(own)
    if not bench:
        parser.error("name the benchmark after --, e.g. -- bench.temporal_bench --rounds 1")
    if args.pairs < 1:
        parser.error("--pairs: must be at least 1")
    body = compare(args.a, args.b, bench, args.pairs)
    print(body)
    write_section(
        args.title or f"Revisions compared: {bench[0]}",
        f".venv/bin/python -m bench.versus {args.a} {args.b} --pairs {args.pairs}"
        + (f" --title {shlex.quote(args.title)}" if args.title else "")
        + " -- "
        + " ".join(bench),
        body,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
