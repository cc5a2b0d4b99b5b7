"""Running a long-lived tool by exec and stopping it cleanly: on a deadline, a limit, Ctrl-C or SIGTERM.

The tool is asked to stop with SIGINT by PID (a second exec) and the stream is then drained to its end, so
tcpdump flushes and prints its counts and strace detaches, leaving the tracee running.

A tool that holds data back for a while (tcpdump hands packets over up to 2 s late, see capture.py) gets a
grace period between the stop request and its SIGINT, so that what happened before the request reaches the
output: until its :class:`Grace` is over (capture_drain.PacketDrain), cut short by a second Ctrl-C/SIGTERM; a
third kills the tool.

Signals, one model for every command: SIGINT and SIGTERM are first *noted*, never acted on inside a frame
or a cleanup (:func:`catch_stop_signals` appends them to :attr:`StopState.signals`). What the note does next
depends on what is running:

- a remote tool (capture, trace): :func:`stop_ticker`, the tick of the one loop (remote/toolrun.py), asks it
  to stop and the stream is drained to its end;
  the command returns :attr:`StopState.exit_code`;
- no tool to ask, only our own calls (nodelogs' API calls, waits and copies): the note becomes
  :class:`StopRequested`, raised at once where the program blocks (:func:`stop_signals_raise`) or at the
  next frame boundary of a stream (:func:`raise_if_noted`), so that every ``finally`` runs (the node pod is
  deleted, with signals only noted again meanwhile); the command turns it into ``Interrupted`` with
  :attr:`StopRequested.exit_code`.

Either way the exit status comes from :func:`signal_exit_code`: 130 after SIGINT, 143 after SIGTERM.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubectl_debugx.errors import ExitCode

DRAIN_TIMEOUT = 15.0  # seconds to wait for the tool to end after SIGINT before escalating
TICK_INTERVAL = 0.1  # seconds between two checks of the stop conditions while streams are read


class ToolStderr:
    """A remote tool's stderr as lines: feed() bytes as they arrive, finish() at the end; a subclass says what
    each line means in _line()."""

    _partial = b""

    def feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").rstrip())

    def finish(self) -> None:
        if self._partial:
            self._line(self._partial.decode("utf-8", "replace").rstrip())
            self._partial = b""

    def _line(self, line: str) -> None:
        raise NotImplementedError


def signal_exit_code(signum: int | None) -> ExitCode:
    """The exit status after a stop caused by `signum` (None: no signal): 130 for SIGINT, 143 for SIGTERM."""
    if signum == signal.SIGINT:
        return ExitCode.INTERRUPTED
    if signum == signal.SIGTERM:
        return ExitCode.TERMINATED
    return ExitCode.OK


@dataclass
class StopState:
    """Why and when we asked the remote tool to stop."""

    reason: str = ""  # "", "duration", "limit", "SIGINT", "SIGTERM"
    requested_at: float = 0.0  # when the stop condition was met
    signalled_at: float | None = None  # when SIGINT was sent
    signals_at_request: int = 0
    killed: bool = False
    signals: list[int] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        return signal_exit_code({"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}.get(self.reason))


@contextmanager
def stop_signal_handler(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """`handler` for SIGINT and SIGTERM while the block runs; the previous handlers afterwards."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def catch_stop_signals(state: StopState) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a stop request instead of killing us mid-stream."""

    def handler(signum: int, _frame: Any) -> None:
        state.signals.append(signum)

    with stop_signal_handler(handler):
        yield


class StopRequested(BaseException):
    """SIGINT or SIGTERM arrived where no remote tool can be asked to stop: unwinds like KeyboardInterrupt,
    so every ``finally`` runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> ExitCode:
        return signal_exit_code(self.signum)


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`StopRequested` where the program is, also inside a blocking read."""

    def handler(signum: int, _frame: Any) -> None:
        raise StopRequested(signum)

    with stop_signal_handler(handler):
        yield


@dataclass
class Stop:
    """What ended a block run under :func:`stop_ends_it`: a Ctrl-C or SIGTERM (``signum``), or nothing."""

    signum: int | None = None

    @property
    def code(self) -> ExitCode:
        return signal_exit_code(self.signum)

    @property
    def reason(self) -> str:
        """SIGINT or SIGTERM, as summary.stopped_by takes it."""
        return "SIGINT" if self.code == ExitCode.INTERRUPTED else "SIGTERM"

    @property
    def said(self) -> str:
        return "Ctrl-C" if self.code == ExitCode.INTERRUPTED else "SIGTERM"


@contextmanager
def stop_ends_it() -> Iterator[Stop]:
    """The block under :func:`stop_signals_raise`: a Ctrl-C (also one that beat the handler) or SIGTERM ends
    it, and the yielded :class:`Stop` says which (the user's stdin relays, shell and cp's upload, end so)."""
    stop = Stop()
    try:
        with stop_signals_raise():
            yield stop
    except KeyboardInterrupt:
        stop.signum = signal.SIGINT
    except StopRequested as e:
        stop.signum = e.signum


def raise_if_noted(state: StopState) -> None:
    """Act on a noted signal at a safe point (between frames): raise :class:`StopRequested` for the first."""
    if state.signals:
        raise StopRequested(state.signals[0])


class Grace(Protocol):
    """How long a stop request reads on before the tool gets its SIGINT."""

    note: str  # said as the wait begins

    def begin(self) -> None:
        """The stop was requested (the moment the wait is about)."""

    def over(self, waited: float) -> bool:
        """Whether the tool may be signalled, `waited` seconds after the request."""


def stop_ticker(
    stop_remote: Callable[[str], None],
    deadline: float | None,
    limit_reached: Callable[[], bool],
    state: StopState,
    say: Callable[[str], None],
    grace: Grace | None = None,
) -> Callable[[], None]:
    """The tick of a stream loop: ask the tool(s) to stop on the first stop condition (once `grace` is over,
    except at a limit) with stop_remote("INT"), and escalate to stop_remote("KILL") if they do not end. With
    several pods, stop_remote signals every tool still running: one stop model for all."""

    def tick() -> None:
        now = time.monotonic()
        if not state.reason:
            reason = ""
            if state.signals:
                reason = "SIGTERM" if state.signals[0] == signal.SIGTERM else "SIGINT"
            elif deadline is not None and now >= deadline:
                reason = "duration"
            elif limit_reached():
                reason = "limit"
            if reason:
                state.reason = reason
                state.requested_at = now
                state.signals_at_request = len(state.signals)
                if grace is not None and reason != "limit":
                    grace.begin()
                    if grace.note:
                        say(grace.note)
        if state.reason and state.signalled_at is None:
            # A limit stops at once: what comes after it is not wanted anyway.
            waited = state.reason == "limit" or grace is None or grace.over(now - state.requested_at)
            if waited or len(state.signals) > state.signals_at_request:
                state.signalled_at = now
                state.signals_at_request = len(state.signals)
                stop_remote("INT")
        elif state.signalled_at is not None and not state.killed and (
            now - state.signalled_at > DRAIN_TIMEOUT or len(state.signals) > state.signals_at_request
        ):
            say("the remote tool did not stop after SIGINT; killing it")
            state.killed = True
            stop_remote("KILL")

    return tick
