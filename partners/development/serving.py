"""Serving an ASGI app on a free loopback port in a thread: for tests and demos only."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT = 10.0


@contextmanager
def serve_on_loopback(make_app: Callable[[str], ASGIApp], name: str) -> Iterator[str]:
    """Serve ``make_app(base_url)`` under uvicorn on a free 127.0.0.1 port in a daemon
    thread; yield ``http://127.0.0.1:<port>`` once it is up, stop it on exit (after the
    requests in flight have been answered)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        # log_config=None leaves the process's logging configuration alone.
        config = uvicorn.Config(
            make_app(base_url), log_level="warning", log_config=None, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"{name}-{port}", daemon=True
        )
        thread.start()
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the {name} server on port {port} did not start")
                time.sleep(0.005)
            yield base_url
        finally:
            server.should_exit = True
            thread.join(START_TIMEOUT)
