"""Benchmark: how soon a capture stops once its viewer closes -- `capture --wireshark` against the pipeline
typed by hand (`capture -o - | wireshark -k -i -`), in the same run, with a stand-in viewer that reads the pcap
header and one packet, notes the time and exits (as a user closing Wireshark). Measured: from that exit to the
end of the command, under light traffic (5 requests/s) and with none after the one packet (a pipe's writer
learns that its reader is gone only at its next write), and whether a tcpdump is left running in the pod.
On the test cluster (root) or $KUBECONFIG."""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.startup import web_pod

RUNS = int(os.environ.get("RUNS", "3"))
GIVE_UP = 15.0  # seconds after the viewer's exit
STAND_IN = """#!{python}
import struct, sys, time
source = sys.stdin.buffer
source.read(24)
head = source.read(16)
if len(head) == 16:
    source.read(struct.unpack("<I", head[8:12])[0])
with open({out!r}, "w") as f:
    f.write(repr(time.time()))
"""


def stop_after_viewer(cmd: list[str], env: dict[str, str], mark: Path) -> float | None:
    """Seconds from the viewer's exit to the command's end; None if it had not ended GIVE_UP s later."""
    mark.unlink(missing_ok=True)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    started = time.time()
    while not mark.exists() or not mark.read_text():
        if proc.poll() is not None or time.time() - started > 90:
            os.killpg(proc.pid, 9)
            raise RuntimeError(f"{shlex.join(cmd)}: ended, or its viewer got no packet in 90 s")
        time.sleep(0.01)
    closed = float(mark.read_text())
    try:
        proc.wait(timeout=max(0.1, closed + GIVE_UP - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        return None
    return time.time() - closed


def main() -> int:
    exe = str(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/kubectl-debugx").resolve())
    image = os.environ.get("DEBUGX_E2E_IMAGE", "nicolaka/netshoot:v0.13")
    with ExitStack() as stack:
        kubeconfig = os.environ.get("KUBECONFIG", "")
        if not kubeconfig:
            from tests.cluster import TestCluster

            kubeconfig = str(stack.enter_context(TestCluster()).kubeconfig)
        env = dict(os.environ, KUBECONFIG=kubeconfig)
        kubectl = ["kubectl", "--kubeconfig", kubeconfig]
        namespace = web_pod(kubectl, stack, "viewer")
        subprocess.run([*kubectl, "debug", "-n", namespace, "web", f"--image={image}", "--target=web", "-c",
                        "traffic", "--profile=baseline", "--", "sleep", "3600"], check=True, capture_output=True)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        mark, viewer = tmp / "closed", tmp / "wireshark"
        viewer.write_text(STAND_IN.format(python=sys.executable, out=str(mark)))
        viewer.chmod(0o755)
        capture = [exe, "capture", "web", "-n", namespace, "-f", "tcp port 80", "-q"]
        ours = [*capture, "--wireshark"]
        by_hand = ["sh", "-c", f"{shlex.join([*capture, '-o', '-'])} | {shlex.quote(str(viewer))}"]
        in_pod = [*kubectl, "exec", "-n", namespace, "web", "-c", "traffic", "--", "sh", "-c"]

        def tcpdumps_left() -> int:
            return sum(int(line.split()[0]) for line in subprocess.run(
                [*in_pod, "ps -eo args | grep -c '^tcpdump' || true"], capture_output=True, text=True
            ).stdout.split()[:1])

        print(f"| {'traffic':<22} | {'what':<24} | {'median stop after close':>23} | {'never stopped':>13} | "
              f"{'tcpdump left':>12} |")
        for rate in (5, 0):
            for label, cmd in (("capture --wireshark", ours), ("capture -o - | wireshark", by_hand)):
                times, never = [], 0
                for _ in range(RUNS):
                    # 0: one request (its first packet closes the viewer) and nothing more
                    loop = (f"while :; do curl -s -o /dev/null http://127.0.0.1/; sleep {1 / rate:g}; done" if rate
                            else "sleep 4; curl -s -o /dev/null http://127.0.0.1/")
                    traffic = subprocess.Popen([*in_pod, loop], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    try:
                        took = stop_after_viewer(cmd, dict(env, KUBECTL_DEBUGX_WIRESHARK=str(viewer)), mark)
                    finally:
                        traffic.kill()
                        subprocess.run([*in_pod, "pkill -f 'while :; do curl' || true"], capture_output=True)
                    if took is None:
                        never += 1
                    else:
                        times.append(took)
                median = f"{statistics.median(times) * 1000:.0f} ms" if times else "-"
                left = tcpdumps_left()
                print(f"| {f'{rate} req/s' if rate else '1 packet, then none':<22} | {label:<24} | {median:>23} | "
                      f"{never:>4} of {RUNS:<5} | {left:>12} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
