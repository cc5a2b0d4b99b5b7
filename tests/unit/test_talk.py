"""Talk: stderr lines stay whole when several threads talk at once (the setup of several pods does)."""

from __future__ import annotations

import sys
import threading

from kubectl_debugx.talk import Talk


class SlowStream:
    """A stderr that gives other threads the GIL on every write, as a pipe to a busy reader does."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        threading.Event().wait(0.0001)  # a blocking call: the GIL goes to another thread
        return len(text)

    def flush(self) -> None:
        pass


def test_lines_said_from_many_threads_at_once_stay_whole(monkeypatch):
    stream = SlowStream()
    monkeypatch.setattr(sys, "stderr", stream)
    talk = Talk()
    expected = {f"pod-{t}: line {n}" for t in range(6) for n in range(40)}

    def speak(t: int) -> None:
        for n in range(40):
            (talk.say if n % 2 else talk.warn)(f"pod-{t}: line {n}")

    threads = [threading.Thread(target=speak, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = "".join(stream.parts).splitlines()
    assert sorted(line.removeprefix("Warning: ") for line in lines) == sorted(expected)
