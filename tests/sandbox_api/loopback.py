"""A deployment's app served over loopback by uvicorn in a thread, for clients that speak real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.sandbox_api.live_gateway import free_port


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields its URL. The app's lifespan is not run again: the
    test client that built it already runs it (its job runner included)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the loopback server did not start")
        thread.join(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
