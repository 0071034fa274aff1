"""Peak memory and CPU of named process groups, sampled in a thread: each group is a set of root
pids and all their descendants (PostgreSQL's backends, say). Memory is summed by PSS (shared
pages split between the processes that share them, so a group's shared memory counts once);
CPU is each member's own time plus that of its reaped children (a backend that exited is
counted in the postmaster's), from the first sample to the last."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(text.split(" ", 1)[0])
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(pid)
    return tree


def _descendants(roots: Iterable[int], tree: dict[int, list[int]]) -> set[int]:
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(tree.get(pid, ()))
    return found


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(v) for v in fields[11:15]) / _TICK


_TICK = os.sysconf("SC_CLK_TCK")


class PeakMemory:
    """`groups()` says, at each sample, the root pids of each group (processes come and go)."""

    def __init__(self, groups: Callable[[], dict[str, list[int]]], every_s: float = 0.5) -> None:
        self.groups = groups
        self.every_s = every_s
        self.peak_mb: dict[str, float] = {}
        self._cpu_first: dict[str, float] = {}
        self._cpu_last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        tree = _children()
        for name, roots in self.groups().items():
            members = _descendants(roots, tree)
            mb = sum(_pss_kb(p) for p in members) / 1024
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), mb)
            cpu = sum(_cpu_s(p) for p in members)
            self._cpu_first.setdefault(name, cpu)
            self._cpu_last[name] = max(cpu, self._cpu_last.get(name, 0.0))

    @property
    def cpu_s(self) -> dict[str, float]:
        """Each group's CPU seconds between the first sample and the last."""
        return {name: self._cpu_last[name] - first for name, first in self._cpu_first.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
