"""Server side of the exec WebSocket (the Kubernetes channel protocol), as recorded from a real v1.33.

Channels: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close (v5 only).
Protocol choice: v5.channel.k8s.io whenever offered (the apiserver's stream translator); otherwise the first
offered protocol the kubelet knows, in the client's order; no Sec-WebSocket-Protocol header at all gives
101 with an EMPTY protocol header and the legacy protocol (channel 3 carries plain text, nothing on success).

Streaming is the point of this module: output is read from the process pipes in chunks of up to 32 KiB and
each chunk goes out as one binary frame, unmodified, with no per-byte Python work. Closing the client never
kills the process (real kubelets do not either): its output is then drained and discarded until it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from .store import ApiError

FRAME_PAYLOAD = 32768
F_SETPIPE_SZ = 1031
V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
# What the kubelet side answers when v5 is not offered (client order decides among these).
_KUBELET_PROTOCOLS = (V4, "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")


def go_json(obj: object) -> bytes:
    """JSON as Go's encoding/json writes it: compact, with <, > and & escaped."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return s.encode()


def choose_protocol(header: str | None) -> str | None:
    """'' for the legacy protocol (no header), a protocol name, or None when nothing offered is supported."""
    if header is None:
        return ""
    offers = [p.strip() for p in header.split(",") if p.strip()]
    if not offers:
        return ""
    if V5 in offers:
        return V5
    for p in offers:
        if p in _KUBELET_PROTOCOLS:
            return p
    return None


def _status_json_protocol(proto: str) -> bool:
    return proto in (V5, V4)


@dataclass
class ExecFaults:
    """Test switches shared by every exec stream of the server."""

    cut_after_bytes: int | None = None  # abort the TCP connection after this many stdout bytes


@dataclass
class ExecRequest:
    namespace: str
    pod: str
    container: str
    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


class ContainerNotRunningError(Exception):
    """Raised by the kubelet adapter; mapped to the recorded answers per protocol."""


def _exit_status(proto: str, command: list[str], code: int) -> dict:
    if proto == V5:
        msg = f"command terminated with non-zero exit code: command terminated with exit code {code}"
    else:
        msg = ("command terminated with non-zero exit code: error executing command "
               f"[{' '.join(command)}], exit code {code}")
    return {"metadata": {}, "status": "Failure", "message": msg, "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _internal_error(proto: str, inner: str) -> dict:
    # v5 goes through the apiserver's translator, which wraps the kubelet's InternalError once more.
    cause = f"Internal error occurred: {inner}" if proto == V5 else inner
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {cause}",
            "reason": "InternalError", "details": {"causes": [{"message": cause}]}, "code": 500}


def _not_found_in_path(command: list[str]) -> str:
    exec_id = secrets.token_hex(32)
    return (f'error executing command in container: failed to exec in container: failed to start exec '
            f'"{exec_id}": OCI runtime exec failed: exec failed: unable to start container process: exec: '
            f'"{command[0] if command else ""}": executable file not found in $PATH: unknown')


def _wait_exit(loop: asyncio.AbstractEventLoop, proc: subprocess.Popen) -> asyncio.Future[int]:
    """A future for the exit code, without blocking a thread per process when pidfd is available."""
    fut: asyncio.Future[int] = loop.create_future()

    def done() -> None:
        rc = proc.wait()
        if not fut.done():
            fut.set_result(rc)

    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = -1
    if fd < 0:
        fut_thread = loop.run_in_executor(None, proc.wait)
        fut_thread.add_done_callback(lambda f: fut.done() or fut.set_result(f.result()))
        return fut

    def on_ready() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        done()

    loop.add_reader(fd, on_ready)
    return fut


def _grow_pipe(pipe) -> None:
    # A 1 MiB pipe instead of 64 KiB: fewer wake-ups of the writer and of us on bulk output.
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, 1 << 20)


READ_SIZE = 8 * FRAME_PAYLOAD


async def read_chunk(fd: int, size: int = READ_SIZE) -> bytes:
    """One read of up to `size` bytes from a non-blocking pipe; b"" at EOF.

    Reads straight with os.read while data is there and only parks on the event loop when the pipe is empty:
    one syscall for up to 256 KiB, no intermediate buffer (bulk output is the common case)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            pass
        ready = loop.create_future()
        loop.add_reader(fd, _set_done, ready)
        try:
            await ready
        finally:
            loop.remove_reader(fd)


def _set_done(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _prepare_pipe(pipe) -> int:
    fd = pipe.fileno()
    os.set_blocking(fd, False)
    _grow_pipe(pipe)
    return fd


class ExecStream:
    """One exec: the WebSocket on one side, the process pipes on the other."""

    def __init__(self, ws: web.WebSocketResponse, proto: str, transport, faults: ExecFaults,
                 keep_task: Callable[[asyncio.Task], None]) -> None:
        self.ws = ws
        self.proto = proto
        self.transport = transport
        self.faults = faults
        self.client_alive = True
        self.stdout_sent = 0
        self._keep_task = keep_task

    async def send(self, channel: int, data: bytes | memoryview) -> None:
        if not self.client_alive:
            return
        try:
            await self.ws.send_bytes(bytes((channel,)) + data)
        except (ConnectionError, RuntimeError):  # the client is gone; keep draining the process
            self.client_alive = False

    async def send_output(self, channel: int, data: bytes | memoryview) -> None:
        limit = self.faults.cut_after_bytes
        if channel == 1 and limit is not None and self.client_alive:
            room = limit - self.stdout_sent
            if len(data) >= room:
                if room > 0:
                    await self.send(1, data[:room])
                    self.stdout_sent += room
                # Abrupt end of the TCP connection (no close frame), like a dropped network path.
                self.client_alive = False
                if self.transport is not None:
                    self.transport.abort()
                return
        await self.send(channel, data)
        if channel == 1:
            self.stdout_sent += len(data)

    async def pump(self, pipe, channel: int) -> None:
        fd = _prepare_pipe(pipe)
        try:
            while True:
                data = await read_chunk(fd)
                if not data:
                    return
                if len(data) <= FRAME_PAYLOAD:
                    await self.send_output(channel, data)
                    continue
                view = memoryview(data)  # frames of at most 32 KiB, like the kubelet's io.Copy buffer
                for i in range(0, len(data), FRAME_PAYLOAD):
                    await self.send_output(channel, view[i:i + FRAME_PAYLOAD])
        finally:
            pipe.close()

    async def read_client(self, stdin_writer: asyncio.StreamWriter | None, resize_fd: int | None = None) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, payload = msg.data[0], msg.data[1:]
                if channel == 0 and stdin_writer is not None:
                    if payload:
                        stdin_writer.write(payload)
                        try:
                            await stdin_writer.drain()
                        except ConnectionError:
                            stdin_writer = None
                elif (channel == 255 and self.proto == V5 and payload[:1] == b"\x00"
                      and stdin_writer is not None):
                    stdin_writer.close()
                    stdin_writer = None
                elif channel == 4 and resize_fd is not None:
                    # a TTY's size: handed to the exec's helper, which sets it on the pty (containers._set_size)
                    with contextlib.suppress(OSError):
                        os.write(resize_fd, bytes(payload) + b"\n")
                # channel 4 without a tty, and anything else: ignored, as the kubelet does.
        finally:
            self.client_alive = False
            if stdin_writer is not None:
                stdin_writer.close()
            if resize_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(resize_fd)


async def serve_exec(
    request: web.Request, req: ExecRequest, start_process: Callable[[], subprocess.Popen],
    faults: ExecFaults, keep_task: Callable[[asyncio.Task], None],
    not_found_error: type[Exception] | tuple[type[Exception], ...],
    not_running_error: type[Exception] | tuple[type[Exception], ...],
) -> web.StreamResponse:
    """Start the process (in a thread: the kubelet may block briefly), upgrade, and stream until it exits."""
    loop = asyncio.get_running_loop()
    proto = choose_protocol(request.headers.get("Sec-WebSocket-Protocol"))
    if proto is None:
        return web.Response(status=400, text="requested protocol(s) are not supported\n",
                            content_type="text/plain", charset="utf-8")
    proc: subprocess.Popen | None = None
    error_status: dict | str | None = None
    starting = loop.run_in_executor(None, start_process)
    try:
        proc = await asyncio.shield(starting)
    except asyncio.CancelledError:
        # The client went away while the process started (handler_cancellation cancels this handler): the
        # process starts anyway, and nothing would ever close its stdin, the tether's line to the client (CI,
        # bench/reliability `kill -9 trace` 0.4-0.6 s after the start: strace left running, its tether's cat
        # blocked in read for good). A runtime's exec whose client is gone sees EOF on stdin (23-tether-*): so
        # does this one, its output discarded.
        starting.add_done_callback(lambda f: f.cancelled() or f.exception() is not None
                                   or _drain_detached(loop, f.result(), keep_task))
        raise
    except not_found_error:
        raise ApiError(400, "BadRequest", f"container {req.container} is not valid for pod {req.pod}") from None
    except not_running_error:
        inner = f'container not found ("{req.container}")'
        if proto != V5:
            raise ApiError(500, "", inner, content_type="text/plain") from None
        error_status = _internal_error(proto, f"unable to upgrade connection: {inner}")
        # v5: the translator had already upgraded the client; its cause is not double-wrapped.
        error_status["message"] = f"Internal error occurred: unable to upgrade connection: {inner}"
        error_status["details"]["causes"][0]["message"] = f"unable to upgrade connection: {inner}"
    except FileNotFoundError:
        inner = _not_found_in_path(req.command)
        error_status = (_internal_error(proto, inner) if _status_json_protocol(proto)
                        else f"Internal error occurred: {inner}")
    except Exception as e:  # noqa: BLE001 - any kubelet failure is an InternalError on the stream
        inner = f"error executing command in container: {e}"
        error_status = (_internal_error(proto, inner) if _status_json_protocol(proto)
                        else f"Internal error occurred: {inner}")

    transport = request.transport
    ws = web.WebSocketResponse(protocols=(proto,) if proto else (), compress=False, autoping=True,
                               max_msg_size=64 << 20, timeout=2.0,
                               writer_limit=1 << 22)
    if not proto:
        ws.headers["Sec-WebSocket-Protocol"] = ""
    try:
        await ws.prepare(request)
    except Exception:
        if proc is not None:
            _drain_detached(loop, proc, keep_task)
        raise
    stream = ExecStream(ws, proto, transport, faults, keep_task)
    first = 1 if req.stdout else 2 if (req.stderr and not req.tty) else 3
    stdin_writer = None
    try:
        await stream.send(first, b"")
        if proc is not None and proc.stdin is not None:
            if req.stdin:
                w_transport, w_protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                                        proc.stdin)
                stdin_writer = asyncio.StreamWriter(w_transport, w_protocol, None, loop)
            else:
                proc.stdin.close()
    except BaseException:
        # cancelled (the client went away) before the stream owns the process: EOF on its stdin, as above
        if proc is not None:
            if stdin_writer is not None:
                stdin_writer.close()
            _drain_detached(loop, proc, keep_task)
        raise

    if proc is None:
        assert error_status is not None
        await stream.send(3, go_json(error_status) if isinstance(error_status, dict)
                          else error_status.encode())
        await _close(ws)
        return ws
    pumps = []
    if proc.stdout is not None:
        pumps.append(asyncio.ensure_future(stream.pump(proc.stdout, 1)))
    if proc.stderr is not None:
        pumps.append(asyncio.ensure_future(stream.pump(proc.stderr, 2)))
    exited = _wait_exit(loop, proc)
    reader = asyncio.ensure_future(stream.read_client(stdin_writer, getattr(proc, "resize_fd", None)))
    work = asyncio.ensure_future(_finish(stream, pumps, exited, req, proto, ws, reader, proc))
    keep_task(work)
    # asyncio.wait (not gather/await): if this handler is cancelled because the server stops or the client
    # went away, the process keeps running and its output keeps being drained by `work`.
    await asyncio.wait({work})
    return ws


async def _finish(stream: ExecStream, pumps: list[asyncio.Future], exited: asyncio.Future[int],
                  req: ExecRequest, proto: str, ws: web.WebSocketResponse, reader: asyncio.Future,
                  proc: subprocess.Popen) -> None:
    try:
        rc = await exited
        if pumps:
            await asyncio.wait(pumps)
        if getattr(proc, "held_open", False):  # Docker mode, pod deleted (kubelet._begin_delete): no status,
            await asyncio.wait({reader})       # the stream stays open until the client closes it
    except asyncio.CancelledError:  # the cluster is shutting down (its kubelet has killed the processes)
        for t in (*pumps, reader):
            t.cancel()
        raise
    if rc < 0:  # killed by a signal: report it the way runc does
        rc = 128 - rc
    if stream.client_alive:
        if rc == 0:
            if _status_json_protocol(proto):
                await stream.send(3, b'{"metadata":{},"status":"Success"}')
        else:
            status = _exit_status(proto, req.command, rc)
            await stream.send(3, go_json(status) if _status_json_protocol(proto) else status["message"].encode())
        await _close(ws)
    reader.cancel()


async def _close(ws: web.WebSocketResponse) -> None:
    with contextlib.suppress(Exception):  # the client may already be gone
        await ws.close(code=1000)


def _drain_detached(loop: asyncio.AbstractEventLoop, proc: subprocess.Popen,
                    keep_task: Callable[[asyncio.Task], None]) -> None:
    """The upgrade failed after the process started: let it run, discard its output, reap it."""

    async def drain() -> None:
        pumps = [asyncio.ensure_future(_discard(pipe)) for pipe in (proc.stdout, proc.stderr) if pipe is not None]
        if proc.stdin is not None:
            proc.stdin.close()
        await _wait_exit(loop, proc)
        if pumps:
            await asyncio.wait(pumps)

    keep_task(asyncio.ensure_future(drain()))


async def _discard(pipe) -> None:
    fd = _prepare_pipe(pipe)
    try:
        while await read_chunk(fd, 1 << 16):
            pass
    finally:
        pipe.close()
