"""Serve the API with uvicorn inside an already running event loop (the orchestrator's)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the agent host (graceful SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class ApiServer:
    """Starts and stops uvicorn as a task of the current loop; :attr:`port` is the bound port."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.host = host
        self.port = port

    async def start(self, startup_timeout_s: float = 10.0) -> int:
        """Bind the socket (an ``OSError`` when the port is taken), start serving; returns the port."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self.port = int(sock.getsockname()[1])
        self._socket = sock
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="api-server")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + startup_timeout_s
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the API server stopped during startup")
            if loop.time() > deadline:
                raise TimeoutError("the API server did not start in time")
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        """Finish the requests in flight and stop."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=10)
        self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
