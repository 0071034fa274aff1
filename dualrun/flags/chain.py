"""The fallback chain: Unleash server → last flags seen → bootstrap file → everything legacy.

It is itself a flag source (never empty). Each change of source is logged once
(`router.flags.fallback` when leaving the server, `router.flags.recovered` when back) and shown
in the `dualrun_flag_source` gauge and `dualrun_flag_fallbacks_total` counter.
"""

from __future__ import annotations

import threading

import structlog

from dualrun.flags import metrics
from dualrun.flags.model import FlagSourceKind
from dualrun.flags.port import FlagSource, FlagView, default_view

log = structlog.get_logger(__name__)


class FlagChain:
    def __init__(self, flag: str, server: FlagSource | None, bootstrap: FlagSource | None) -> None:
        self.flag = flag
        self.server = server
        self.bootstrap = bootstrap
        self._current: FlagSourceKind | None = None
        self._lock = threading.Lock()

    @property
    def server_configured(self) -> bool:
        return self.server is not None

    def start(self) -> None:
        for source in (self.server, self.bootstrap):
            if source is not None:
                source.start()
        self.read()

    def read(self) -> FlagView:
        view = None
        for source in (self.server, self.bootstrap):
            if source is not None and view is None:
                view = source.read()
        if view is None:
            view = default_view(self.flag)
        if view.source != self._current:
            self._moved(view)
        return view

    def _moved(self, view: FlagView) -> None:
        with self._lock:
            previous, self._current = self._current, view.source
            if previous == view.source:
                return
        metrics.show_source(view.source)
        fields = {"source": view.source.value, "previous": previous, "flag": self.flag}
        if view.source == FlagSourceKind.UNLEASH:
            event = "router.flags.recovered" if previous is not None else "router.flags.source"
            log.info(event, **fields)
        elif self.server_configured or view.source == FlagSourceKind.DEFAULT:
            metrics.FLAG_FALLBACKS.labels(source=view.source.value).inc()
            log.warning("router.flags.fallback", detail=view.detail, **fields)
        else:
            log.info("router.flags.source", detail=view.detail, **fields)

    def close(self) -> None:
        for source in (self.server, self.bootstrap):
            if source is not None:
                source.close()
