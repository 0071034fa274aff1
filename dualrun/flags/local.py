"""The local bootstrap file: where the router reads flags offline, and what `flags set` edits
when no Unleash server is configured.

The file is `DUALRUN_FLAGS_BOOTSTRAP` when set (used as it is, never created), else
`<state dir>/flags/bootstrap.json`, seeded from `ops/flags/bootstrap.json` on first use.
Edits are serialised by a lock file and written atomically (a reader never sees half a file).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ops
from dualrun.flags.model import (
    FlagState,
    RuleChange,
    TldRule,
    covers_tld,
    parse_state,
    strategy_body,
)
from renewals.errors import DualrunError
from renewals.files import file_lock
from renewals.settings import Settings

SEED = Path(ops.__file__).parent / "flags" / "bootstrap.json"


class BootstrapMissing(DualrunError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"DUALRUN_FLAGS_BOOTSTRAP: no bootstrap file at {path}")
        self.path = path


def bootstrap_path(settings: Settings, *, seed: bool = True) -> Path:
    """The bootstrap file the router reads (seeded from ops/flags when it is the default one)."""
    if settings.flags_bootstrap is not None:
        return settings.flags_bootstrap
    path = settings.state_dir / "flags" / "bootstrap.json"
    if seed and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_suffix(".lock")):
            if not path.exists():
                tmp = path.with_suffix(".seed.tmp")
                shutil.copyfile(SEED, tmp)
                tmp.replace(path)
    return path


def _empty_feature(flag: str) -> dict[str, Any]:
    return {
        "name": flag,
        "type": "release",
        "enabled": True,
        "project": "default",
        "stale": False,
        "impressionData": False,
        "variants": [],
        "strategies": [],
    }


class LocalFlags:
    """Read and edit the routing flag in a bootstrap file."""

    def __init__(self, path: Path, flag: str) -> None:
        self.path = path
        self.flag = flag

    def _document(self) -> dict[str, Any]:
        if not self.path.exists():
            raise BootstrapMissing(self.path)
        document: dict[str, Any] = json.loads(self.path.read_text())
        return document

    def state(self) -> FlagState:
        return parse_state(self._document(), self.flag)

    def _edit(self, change: Callable[[dict[str, Any]], None]) -> bool:
        """Apply `change(feature)` under the lock; write only when something changed."""
        with file_lock(self.path.with_suffix(".lock")):
            document = self._document()
            before = copy.deepcopy(document)
            features = document.setdefault("features", [])
            feature = next((f for f in features if f.get("name") == self.flag), None)
            if feature is None:
                feature = _empty_feature(self.flag)
                features.append(feature)
            change(feature)
            if document == before:
                return False
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(document, indent=2) + "\n")
            tmp.replace(self.path)
            return True

    def set_rule(self, change: RuleChange) -> tuple[TldRule, bool]:
        rule = change.apply(self.state().rule(change.tld), self.flag)
        body = strategy_body(rule, self.flag)

        def put(feature: dict[str, Any]) -> None:
            strategies = feature.setdefault("strategies", [])
            for i, strategy in enumerate(strategies):
                if covers_tld(strategy, rule.tld):
                    strategies[i] = body
                    return
            strategies.append(body)

        return rule, self._edit(put)

    def set_enabled(self, enabled: bool) -> bool:
        def toggle(feature: dict[str, Any]) -> None:
            feature["enabled"] = enabled

        return self._edit(toggle)
