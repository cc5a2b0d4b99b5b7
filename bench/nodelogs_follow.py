"""Benchmark: `kubectl debugx nodelogs --follow` versus `kubectl logs -f`, same pod, same lines, same run.

One writer pod, two phases, both followers running at once (each with --timestamps, --tail 0):

* latency: one line every 100 ms; for each line, the time it arrived on the follower's stdout minus its CRI
  timestamp (stamped by the runtime on the node as it wrote the line; on a real cluster the node's and this
  machine's clocks must agree: with NTP the skew is a few ms). Median and 95th percentile, ours and kubectl's.
* throughput: LINES lines of 100 bytes written as fast as the shell goes (1000 at a time); CPU seconds of
  each follower process from before the first line to after the last (utime + stime, /proc/PID/stat), per
  10,000 lines, and the ratio ours / kubectl's.

Each follower's output is checked: every line once, in order.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from typing import IO

from bench.cluster import setup

LAT_LINES = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")

WRITER = r"""
while [ ! -e /tmp/lat ]; do sleep 0.05; done
i=1; while [ $i -le LAT ]; do echo "lat $i"; i=$((i+1)); sleep 0.1; done
while [ ! -e /tmp/bulk ]; do sleep 0.05; done
pad=$(head -c 80 /dev/zero | tr '\0' x)
i=1
while [ $i -le LINES ]; do
  echo "bulk $i $pad"
  i=$((i+1))
  if [ $((i % 1000)) = 0 ]; then sleep 0.05; fi
done
echo "done"
exec sleep 3600
"""


def cri_epoch(stamp: str) -> float:
    """An RFC3339Nano timestamp (as the runtime writes it) as epoch seconds."""
    from kubectl_debugx.formats.crilog import parse_timestamp

    parsed = parse_timestamp(stamp)
    if parsed is None:
        raise ValueError(stamp)
    return parsed.epoch_ns / 1e9


class Follower:
    """A follower process whose stdout lines are read as they come, each with its arrival time."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[tuple[float, str]] = []
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True),
                         threading.Thread(target=self._err, args=(self.proc.stderr,), daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read(self, pipe: IO[bytes] | None) -> None:
        assert pipe is not None
        for raw in pipe:
            self.lines.append((time.time(), raw.decode("utf-8", "replace").rstrip("\n")))

    def _err(self, pipe: IO[bytes] | None) -> None:
        assert pipe is not None
        for raw in pipe:
            self.stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def texts(self) -> list[tuple[float, str, str]]:
        """(arrival, CRI timestamp, text) of every line, prefix (ours) removed."""
        out = []
        for arrival, line in self.lines:
            fields = line.split()
            if self.name == "debugx":
                fields = fields[1:]  # POD/CONTAINER
            out.append((arrival, fields[0], " ".join(fields[1:])))
        return out

    def saw(self, text: str) -> bool:
        return any(line.endswith(text) for _, line in self.lines[-50:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait(check, what: str, timeout: float = 300) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/nodelogs_follow: timed out waiting for {what}")
        time.sleep(0.05)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    with ExitStack() as stack:
        found = setup(stack, "bench/nodelogs_follow")
        if found is None:
            return 1
        zipapp, image, env, kubectl = found.zipapp, found.image, found.env, found.kubectl
        namespace = f"debugx-bench-{os.getpid()}"
        subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
        stack.callback(lambda: subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"],
                                              capture_output=True))
        script = WRITER.replace("LAT", str(LAT_LINES)).replace("LINES", str(lines))
        subprocess.run([*kubectl, "run", "writer", "-n", namespace, f"--image={image}", "--restart=Never",
                        "--command", "--", "sh", "-c", script], check=True, capture_output=True)
        subprocess.run([*kubectl, "wait", "-n", namespace, "--for=condition=Ready", "pod/writer",
                        "--timeout=120s"], check=True, capture_output=True)
        ours = Follower("debugx", [str(zipapp), "nodelogs", "writer", "-n", namespace, "--follow", "--tail", "0",
                                   "--timestamps"], env)
        theirs = Follower("kubectl", [*kubectl, "logs", "-f", "writer", "-n", namespace, "--tail", "0",
                                      "--timestamps"], env)
        followers = (ours, theirs)
        for f in followers:
            stack.callback(f.stop)
        wait(lambda: any("Following " in line for line in ours.stderr), "debugx to follow")
        time.sleep(1.0)  # kubectl logs -f has no ready line: give its request time to reach the kubelet

        def touch(name: str) -> None:
            subprocess.run([*kubectl, "exec", "-n", namespace, "writer", "--", "touch", f"/tmp/{name}"],
                           check=True, capture_output=True)

        touch("lat")
        wait(lambda: all(f.saw(f"lat {LAT_LINES}") for f in followers), "the latency lines")
        cpu_before = [f.cpu() for f in followers]
        touch("bulk")
        wait(lambda: all(f.saw("done") for f in followers), "the bulk lines")
        cpu = [f.cpu() - before for f, before in zip(followers, cpu_before, strict=True)]
        for f in followers:
            f.stop()

    print(f"lines:                 {LAT_LINES} latency lines (one per 100 ms), then {lines} lines of 100 bytes")
    results = {}
    for f, used in zip(followers, cpu, strict=True):
        texts = f.texts()
        lat_texts = [t for _, _, t in texts if t.startswith("lat ")]
        bulk = [t.split()[1] for _, _, t in texts if t.startswith("bulk ")]
        ok = lat_texts == [f"lat {i}" for i in range(1, LAT_LINES + 1)] and bulk == [str(i) for i in
                                                                                      range(1, lines + 1)]
        delays = [(arrival - cri_epoch(stamp)) * 1000 for arrival, stamp, t in texts if t.startswith("lat ")][5:]
        per_10k = used / lines * 10000
        results[f.name] = per_10k
        print(f"{f.name + ':':22} latency median {statistics.median(delays):6.0f} ms  p95 {percentile(delays, 95):6.0f}"
              f" ms  max {max(delays):6.0f} ms;  CPU {used:6.2f} s = {per_10k:6.3f} s per 10k lines;  "
              f"every line once, in order: {'yes' if ok else 'NO'}")
    print(f"ratio CPU per line, debugx / kubectl logs -f: {results['debugx'] / results['kubectl']:6.2f}")
    print(f"load average:          {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
