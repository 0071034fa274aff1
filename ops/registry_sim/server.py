"""Running the simulator: in-process for tests (`SimServer`), or blocking for the CLI (`serve`)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import structlog
import uvicorn

from ops.registry_sim.app import create_app
from renewals.errors import DualrunError
from renewals.settings import Settings

log = structlog.get_logger(__name__)


class SimStartError(DualrunError):
    """The simulator did not come up (its storage was unreachable, or it crashed)."""


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _config(app: Any, graceful_s: float) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # our logging (renewals.logs), redacted, not uvicorn's own handlers
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(graceful_s)),
        loop="asyncio",
        http="h11",
    )


class SimServer:
    """The simulator on 127.0.0.1 in a background thread (its own event loop).

    `with SimServer(dsn) as sim: ... sim.url ...`; `start()` waits until /healthz answers.
    Held renew answers (commit_timeout_rate) are cut after `graceful_s` seconds on stop.
    """

    def __init__(
        self,
        source: Settings | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        graceful_s: float = 1.0,
        **app_kwargs: Any,
    ) -> None:
        self._source = source
        self._host = host
        self._port = port
        self._graceful_s = graceful_s
        self._app_kwargs = app_kwargs
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.port = 0

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("SimServer is not started")
        return f"http://{self._host}:{self.port}"

    def registry_url(self, tld: str) -> str:
        return f"{self.url}/registries/{tld}"

    def start(self, timeout_s: float = 20.0) -> SimServer:
        sock = _bind(self._host, self._port)
        self.port = int(sock.getsockname()[1])
        app = create_app(self._source, **self._app_kwargs)
        server = uvicorn.Server(_config(app, self._graceful_s))
        self._server = server

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported by start() or stop()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"registry-sim-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SimStartError(
                    f"registry simulator did not start ({self._error!r}; see its log)"
                )
            time.sleep(0.02)
        response = httpx.get(f"{self.url}/healthz", timeout=timeout_s)
        response.raise_for_status()
        log.info("registry_sim.started", url=self.url)
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError("registry simulator did not stop in time")
        self._server = None
        self._thread = None
        log.info("registry_sim.stopped", port=self.port)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(host: str, port: int, source: Settings | str, *, graceful_s: float = 5.0) -> None:
    """Serve until interrupted (SIGINT/SIGTERM). Raises OSError when the port is taken."""
    sock = _bind(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    server = uvicorn.Server(_config(create_app(source), graceful_s))
    log.info("registry_sim.started", url=url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        log.info("registry_sim.stopped", url=url)
    if not server.started:
        raise SimStartError("registry simulator did not start (see the log above)")
