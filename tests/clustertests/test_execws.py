"""The test cluster's exec stream (tests/cluster/execws.py) under a client that goes away while its process starts.

A runtime's exec whose client is gone sees EOF on stdin (recordings 23-tether-*): every tether of the product
relies on it. The test cluster's API server cancels a handler whose client went away (handler_cancellation);
the process it was starting must get that EOF too, else a tool stays running forever (CI, bench/reliability
`kill -9 trace` 0.4-0.6 s after the start: strace left, its tether's cat blocked in read).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import threading
import time

from aiohttp import web

from tests.cluster.execws import ExecFaults, ExecRequest, serve_exec

START_DELAY = 0.5  # how long the stub kubelet takes to start the process; the client leaves in the middle


class Server:
    """serve_exec behind an aiohttp server like the test cluster's (handler_cancellation), in a thread."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.tasks: set[asyncio.Task] = set()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    def _start(self) -> subprocess.Popen:
        time.sleep(START_DELAY)
        # `cat` up to EOF on stdin, then exit: ends only if stdin is closed
        proc = subprocess.Popen(["sh", "-c", "cat >/dev/null; echo eof"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        req = ExecRequest("ns", "pod", "c", ["sh"], stdin=True, stdout=True, stderr=True, tty=False)
        return await serve_exec(request, req, self._start, ExecFaults(), self.tasks.add, LookupError,
                                ProcessLookupError)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/exec", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _shutdown(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.runner.cleanup()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /exec HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n").encode()


def wait_for_process_end(server: Server, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.procs and server.procs[0].poll() is not None:
            return server.procs[0].returncode
        time.sleep(0.05)
    return None


def test_a_process_started_after_its_client_left_gets_eof_on_stdin() -> None:
    server = Server()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(upgrade_request(server.port))
            time.sleep(START_DELAY / 5)  # the handler is now waiting for the process to start
        # the client is gone before the process exists; once started, it must see EOF and end
        assert wait_for_process_end(server, START_DELAY + 10) == 0
    finally:
        server.stop()


def test_a_process_whose_client_stays_keeps_its_stdin_open() -> None:
    """The same stub, the client connected: the process runs on (the test above can fail)."""
    server = Server()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(upgrade_request(server.port))
            assert b"101 Switching Protocols" in sock.recv(4096)
            assert wait_for_process_end(server, 1.0) is None
    finally:
        server.stop()
