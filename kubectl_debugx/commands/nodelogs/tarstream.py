"""An exec stream running ``tar -c`` unpacked as it arrives, with signals acted on between frames only."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubectl_debugx.formats import logtree
from kubectl_debugx.formats.logtree import ExtractReport
from kubectl_debugx.kube.execstream import ExecOutcome, pump
from kubectl_debugx.remote.streamrun import StopState, catch_stop_signals, raise_if_noted

_CHUNK = 1 << 16
_STDERR_KEEP = 8192


def stream_tar(
    conn: Any, dest: Path, outside_links: logtree.OutsideLinks
) -> tuple[ExtractReport | None, BaseException | None, bytes, ExecOutcome]:
    """Pump an exec stream running ``tar -c`` into :func:`logtree.extract_tar_stream` through a pipe, in
    constant memory: frames are written as they arrive, a thread unpacks them. Returns the extraction
    report (None if it failed), the extraction's error, tar's stderr (its first few KiB) and how tar ended:
    the caller decides which failure to tell."""
    read_fd, write_fd = os.pipe()
    result: dict[str, Any] = {}

    def extract() -> None:
        try:
            with os.fdopen(read_fd, "rb") as reader:
                result["report"] = logtree.extract_tar_stream(reader, dest, outside_links=outside_links)
                while reader.read(_CHUNK):  # tar pads its output: drain it so the writer never blocks
                    pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            result["error"] = e

    thread = threading.Thread(target=extract, name="nodelogs-untar", daemon=True)
    thread.start()
    err = bytearray()
    broken = False

    def on_stdout(data: memoryview) -> None:
        nonlocal broken
        view = data
        while view and not broken:
            try:
                written = os.write(write_fd, view)
            except BrokenPipeError:
                broken = True  # the extractor gave up; its error says why. Stop at the next tick.
                return
            view = view[written:]

    def on_stderr(data: bytes) -> None:
        if len(err) < _STDERR_KEEP:
            err.extend(data[: _STDERR_KEEP - len(err)])

    try:
        outcome = pump_deferring_signals(conn, on_stdout, on_stderr, lambda: broken)
    finally:
        os.close(write_fd)
        thread.join()
    return result.get("report"), result.get("error"), bytes(err), outcome


def pump_deferring_signals(
    conn: Any,
    on_stdout: Callable[[memoryview], None],
    on_stderr: Callable[[bytes], None],
    give_up: Callable[[], bool] = lambda: False,
) -> ExecOutcome:
    """execstream.pump, with SIGINT/SIGTERM (and ``give_up()``) acted on between frames, never inside one:
    the signal is noted, and :class:`StopRequested` raised from pump's tick, where no frame buffer is held."""
    state = StopState()

    def tick() -> None:
        raise_if_noted(state)
        if give_up():
            raise BrokenPipeError("the local end stopped reading")

    with catch_stop_signals(state):
        outcome = pump(conn, on_stdout, on_stderr, tick=tick, tick_interval=0.1)
    raise_if_noted(state)
    return outcome
