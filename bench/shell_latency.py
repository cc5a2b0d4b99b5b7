"""Benchmark: keystroke -> echo round trip through `kubectl debugx shell` against `kubectl exec -it` on the same
pod, same run: both driven through a pseudo-terminal of ours, one key at a time, each timed from its write to
its echo (the remote terminal's) on our side of the pty. Sessions alternate (ROUNDS x KEYS/ROUNDS keys each), so
a load change on this machine hits both alike. The target >= 1.0 for `kubectl/debugx` means we add nothing; the
issue's bar is that debugx's median is at most 1.2x kubectl's."""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

from bench.cluster import setup, sleeping_pod

PROMPT = b"$ "


class Pty:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import fcntl
        import termios

        self.master, slave = os.openpty()

        def controlling() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=controlling)
        os.close(slave)
        self.buf = b""

    def wait_for(self, needle: bytes, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise SystemExit(f"no {needle!r} within {timeout:g}s; got {self.buf[-300:]!r}")
            self.buf += os.read(self.master, 65536)
        self.buf = self.buf[self.buf.index(needle) + len(needle):]

    def key(self, char: bytes) -> float:
        """Seconds from writing one key to reading its echo."""
        start = time.perf_counter()
        os.write(self.master, char)
        self.wait_for(char, 10)
        return time.perf_counter() - start

    def close(self) -> None:
        os.write(self.master, b"\x15exit\r")  # Ctrl-U: the typed line away, then exit
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def session(argv: list[str], env: dict[str, str], keys: int) -> list[float]:
    pty = Pty(argv, env)
    try:
        pty.wait_for(PROMPT)
        return [pty.key(b"abcdefghij"[i % 10:i % 10 + 1]) for i in range(keys)]
    finally:
        pty.close()


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def main() -> int:
    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with ExitStack() as stack:
        found = setup(stack, "bench/shell_latency")
        if found is None:
            return 1
        namespace = f"debugx-bench-{os.getpid()}"
        sleeping_pod(stack, found.kubectl, namespace, found.image, "src")
        env = {**found.env, "TERM": "xterm"}
        ours = [str(found.zipapp), "shell", "-n", namespace, "src", "--image", found.image, "-q"]
        theirs = [*found.kubectl, "exec", "-it", "-n", namespace, "src", "--", "env", "PS1=src $ ", "sh"]
        session(ours, env, 5)  # warm-up: unpacks the zipapp, adds the debug container later runs reuse
        results: dict[str, list[float]] = {"kubectl exec -it": [], "debugx shell": []}
        per_round = max(1, keys // rounds)
        for _ in range(rounds):
            for name, argv in (("kubectl exec -it", theirs), ("debugx shell", ours)):
                results[name] += session(argv, env, per_round)
    print(f"keystrokes:            {per_round * rounds} per tool, {rounds} alternating sessions each")
    for name, times in results.items():
        print(f"{name + ':':22} median {statistics.median(times) * 1e3:6.2f} ms  p95 {p95(times) * 1e3:6.2f} ms")
    ratio = statistics.median(results["debugx shell"]) / statistics.median(results["kubectl exec -it"])
    print(f"ratio debugx/kubectl:  {ratio:6.2f}  (median; the bar: <= 1.2)")
    ratio95 = p95(results["debugx shell"]) / p95(results["kubectl exec -it"])
    print(f"ratio debugx/kubectl:  {ratio95:6.2f}  (p95)")
    print(f"load average:          {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
