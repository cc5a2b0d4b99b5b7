"""The stop machinery: when the remote tool gets SIGINT (after the grace) and SIGKILL, on a fake clock."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import pytest

from kubectl_debugx.remote import streamrun
from kubectl_debugx.remote.streamrun import StopState


@dataclass
class FixedGrace:
    """A grace of a fixed number of seconds (the product's is capture_drain.PacketDrain)."""

    seconds: float
    note: str = ""

    def begin(self) -> None:
        pass

    def over(self, waited: float) -> bool:
        return waited >= self.seconds


def drive(monkeypatch, events, *, grace=2.2, deadline=None, limit_at=None, until=5.0):
    """Run the stop logic with ticks every 0.1 s from t=0 to `until`; `events` maps a time to the signals that
    arrive then. Returns (time, what was sent to the tool) pairs and the said lines."""
    now = [0.0]
    state = StopState()
    sent: list[tuple[float, str]] = []
    said: list[str] = []

    tick = streamrun.stop_ticker(lambda s: sent.append((now[0], s)), deadline,
                                 lambda: limit_at is not None and now[0] >= limit_at, state, said.append,
                                 grace=FixedGrace(grace, "collecting") if grace else None)
    monkeypatch.setattr(streamrun.time, "monotonic", lambda: now[0])
    for step in range(int(until / streamrun.TICK_INTERVAL) + 1):  # the loop's ticks, every 0.1 s
        now[0] = round(step * streamrun.TICK_INTERVAL, 1)
        state.signals.extend(events.get(now[0], []))
        tick()
    return sent, said, state


def test_ctrl_c_waits_for_the_grace_then_sigint(monkeypatch):
    sent, said, state = drive(monkeypatch, {1.0: [signal.SIGINT]})
    assert (sent, said, state.reason) == ([(3.2, "INT")], ["collecting"], "SIGINT")


def test_second_ctrl_c_cuts_the_grace_short_and_a_third_kills(monkeypatch):
    sent, _, _ = drive(monkeypatch, {1.0: [signal.SIGINT], 1.5: [signal.SIGINT], 2.0: [signal.SIGINT]})
    assert sent == [(1.5, "INT"), (2.0, "KILL")]


def test_duration_waits_for_the_grace_and_sigterm_is_the_reason_given(monkeypatch):
    sent, _, state = drive(monkeypatch, {}, deadline=0.5)
    assert (sent, state.reason) == ([(2.7, "INT")], "duration")
    _, _, state = drive(monkeypatch, {0.3: [signal.SIGTERM]})
    assert state.reason == "SIGTERM"


def test_a_limit_stops_at_once(monkeypatch):
    sent, said, _ = drive(monkeypatch, {}, limit_at=0.4)
    assert (sent, said) == ([(0.4, "INT")], [])


def test_without_grace_sigint_at_once_and_a_second_signal_kills(monkeypatch):
    sent, said, _ = drive(monkeypatch, {0.2: [signal.SIGINT], 0.6: [signal.SIGINT]}, grace=0.0)
    assert (sent, said) == ([(0.2, "INT"), (0.6, "KILL")],
                            ["the remote tool did not stop after SIGINT; killing it"])


def test_a_tool_that_does_not_end_is_killed_after_the_drain_timeout(monkeypatch):
    sent, _, state = drive(monkeypatch, {0.0: [signal.SIGINT]}, grace=0.0, until=streamrun.DRAIN_TIMEOUT + 1)
    assert sent == [(0.0, "INT"), (streamrun.DRAIN_TIMEOUT + 0.1, "KILL")]
    assert state.killed


@pytest.mark.parametrize(("raised", "stop"), [
    (None, streamrun.Stop(None)),
    (KeyboardInterrupt, streamrun.Stop(signal.SIGINT)),
    (streamrun.StopRequested(signal.SIGTERM), streamrun.Stop(signal.SIGTERM)),
])
def test_a_stop_ends_the_block_and_says_which(raised, stop):
    with streamrun.stop_ends_it() as got:
        if raised is not None:
            raise raised
    assert got == stop
    assert (got.code, got.reason, got.said) == {
        None: (0, "SIGTERM", "SIGTERM"), signal.SIGINT: (130, "SIGINT", "Ctrl-C"),
        signal.SIGTERM: (143, "SIGTERM", "SIGTERM")}[stop.signum]


def test_a_real_sigterm_inside_the_block_ends_it():
    import os

    with streamrun.stop_ends_it() as got:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at once: never reached in full
    assert got == streamrun.Stop(signal.SIGTERM)
