"""The stop machinery: when the remote tool gets SIGINT (after the grace) and SIGKILL, on a fake clock."""

from __future__ import annotations

import signal

from kubectl_debugx.kube.execstream import ExecOutcome
from kubectl_debugx.remote import streamrun
from kubectl_debugx.remote.streamrun import StopState, run_until_stopped


def drive(monkeypatch, events, *, grace=2.2, deadline=None, limit_at=None, until=5.0):
    """Run the stop logic with ticks every 0.1 s from t=0 to `until`; `events` maps a time to the signals that
    arrive then. Returns (time, what was sent to the tool) pairs and the said lines."""
    now = [0.0]
    state = StopState()
    sent: list[tuple[float, str]] = []
    said: list[str] = []

    def fake_pump(conn, on_stdout, on_stderr, tick, tick_interval, on_batch_end):
        for step in range(int(until / tick_interval) + 1):
            now[0] = round(step * tick_interval, 1)
            state.signals.extend(events.get(now[0], []))
            tick()
        return ExecOutcome(0, "")

    monkeypatch.setattr(streamrun, "pump", fake_pump)
    monkeypatch.setattr(streamrun.time, "monotonic", lambda: now[0])
    run_until_stopped(None, lambda _d: None, lambda _b: None, lambda s: sent.append((now[0], s)), deadline,
                      lambda: limit_at is not None and now[0] >= limit_at, state, said.append, grace=grace,
                      grace_note="collecting")
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
