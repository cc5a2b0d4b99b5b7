"""Benchmark: does capture lose packets? Known HTTP traffic at rising rates into one pod, counted in the pcap.

For each rate, a curl in the pod sends N keep-alive requests to nginx on 127.0.0.1 while one of these
captures the pod's traffic on `any`. Rates: requests per second (`--rate`), `max` (one connection, as fast as
curl goes) and `maxN` (N connections at once, curl --parallel): the last are the bursts.

* debugx  -- the built kubectl-debugx with its default options, `-o -`, stopped with SIGINT like Ctrl-C;
* plain   -- `kubectl exec ... tcpdump -U -w - -i any` (the by-hand baseline), stopped by `kill -INT`;
* old     -- the same with the options capture used before (`-U --immediate-mode -p`).

Reported per run: tcpdump's own captured/received/dropped counts, how many of the N requests and of their
responses the pcap holds (tshark), the packet rate reached, and for each packet how late it reached us
(arrival time minus its pcap timestamp: meaningful on the test cluster, whose pods share our clock).
The by-hand captures are stopped only after the same grace debugx waits (capture_drain.STOP_GRACE), so that all
three are judged on loss, not on how they stop.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.cluster import kubeconfig_or_test_cluster, web_with_traffic
from kubectl_debugx.formats.pcap import PcapFormatError, PcapReader

COUNTS = re.compile(rb"(\d+) (?:packets? )?(captured|received by filter|dropped by kernel)")
RATES = os.environ.get("RATES", "100,500,1000,2000,5000,max,max8,max16").split(",")
SECONDS = float(os.environ.get("SECONDS_PER_RATE", "5"))
MAX_REQUESTS = int(os.environ.get("MAX_REQUESTS", "10000"))
VARIANTS = os.environ.get("VARIANTS", "debugx,plain,old").split(",")
BY_HAND = {
    "plain": ["tcpdump", "-U", "-w", "-", "-i", "any"],
    "old": ["tcpdump", "-U", "--immediate-mode", "-p", "-w", "-", "-i", "any"],
}


@dataclass
class LatenessReader:
    """Copies a pcap stream to a file and notes how late each packet arrived (wall clock - its timestamp)."""

    stream: IO[bytes]
    path: Path
    lateness: list[float] = field(default_factory=list)

    def run(self) -> None:
        # The product's one pcap parser: either byte order, µs or ns, every record bounded.
        reader: PcapReader | None = PcapReader()
        with self.path.open("wb") as out:
            while chunk := self.stream.read1(1 << 16):  # type: ignore[attr-defined]
                now = time.time()
                out.write(chunk)
                if reader is None:
                    continue
                try:
                    self.lateness.extend(now - packet.ts_ns / 1e9 for packet in reader.feed(chunk))
                except PcapFormatError:
                    reader = None  # keep copying all the same: the writer must never block on a full pipe


def tshark_uris(path: Path, display_filter: str, fld: str, tag: str) -> int:
    out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", fld],
                         capture_output=True, text=True, timeout=300).stdout
    return len({line for line in out.splitlines() if tag in line})


def tshark_packets(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True).stdout
    match = re.search(r"Number of packets:\s+(\d+)", out)
    return int(match.group(1)) if match else 0


class Bench:
    def __init__(self, stack: ExitStack, kubeconfig: str, zipapp: Path, image: str, nginx: str) -> None:
        self.kubectl = ["kubectl", "--kubeconfig", kubeconfig]
        self.zipapp = zipapp
        self.image = image
        self.ns = f"debugx-loss-{os.getpid()}"
        self.tmp = Path(tempfile.mkdtemp(prefix="debugx-loss-"))
        stack.callback(shutil.rmtree, self.tmp, True)
        self.kc = kubeconfig
        web_with_traffic(stack, self.kubectl, self.ns, nginx, image, "netadmin")
        # Running is not listening: retry until nginx answers.
        self.exec("curl", "-s", "-o", "/dev/null", "--retry", "20", "--retry-connrefused", "--retry-delay", "1",
                  "http://127.0.0.1/")
        # The grace debugx waits before stopping tcpdump; the by-hand captures get the same.
        from kubectl_debugx.commands.capture_drain import STOP_GRACE

        self.grace = STOP_GRACE

    def run(self, *args: str) -> str:
        return subprocess.run([*self.kubectl, *args], check=True, capture_output=True, text=True).stdout

    def exec(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.kubectl, "exec", "-n", self.ns, "web", "-c", "traffic", "--", *argv],
                              capture_output=True, text=True, check=True)

    def traffic(self, tag: str, rate: str) -> tuple[int, float]:
        """rate: requests per second, or "max" (one connection as fast as curl goes), or "maxN" (N at once)."""
        if rate.startswith("max"):
            n = MAX_REQUESTS
            parallel = int(rate[3:] or 1)
            pace = ["--parallel", "--parallel-immediate", "--parallel-max", str(parallel)] if parallel > 1 else []
        else:
            n = max(1, int(float(rate) * SECONDS))
            pace = ["--rate", f"{rate}/s"]
        start = time.monotonic()
        self.exec("curl", "-s", "-o", "/dev/null", *pace, f"http://127.0.0.1/{tag}-[1-{n}]")
        return n, time.monotonic() - start

    def one(self, variant: str, rate: str) -> dict:
        tag = f"loss{variant}{rate}x{time.monotonic_ns() % 10**6}"
        out = self.tmp / f"{tag}.pcap"
        if variant == "debugx":
            argv = [str(self.zipapp), "capture", "web", "-n", self.ns, "-o", "-", "--kubeconfig", self.kc]
        else:
            argv = [*self.kubectl, "exec", "-n", self.ns, "web", "-c", "traffic", "--", *BY_HAND[variant]]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        reader = LatenessReader(proc.stdout, out)
        thread = threading.Thread(target=reader.run, daemon=True)
        thread.start()
        stderr = bytearray()
        while b"listening on" not in stderr:
            line = proc.stderr.readline()
            if not line:
                raise SystemExit(f"{variant}: never listened: {stderr.decode()}")
            stderr += line
        sent, took = self.traffic(tag, rate)
        if variant == "debugx":
            proc.send_signal(signal.SIGINT)
        else:
            time.sleep(self.grace)  # the same grace debugx waits by itself
            self.exec("sh", "-c", "kill -INT $(pidof tcpdump)")
        stderr += proc.stderr.read()
        proc.wait(timeout=120)
        thread.join(timeout=60)
        counts = {m.group(2).decode(): int(m.group(1)) for m in COUNTS.finditer(bytes(stderr))}
        late = sorted(reader.lateness) or [0.0]
        return {
            "variant": variant, "rate": rate, "sent": sent, "pps": tshark_packets(out) / max(took, 1e-3),
            "captured": counts.get("captured", -1), "received": counts.get("received by filter", -1),
            "dropped": counts.get("dropped by kernel", -1),
            "requests": tshark_uris(out, "http.request", "http.request.uri", tag),
            "responses": tshark_uris(out, "http.response", "http.response_for.uri", tag),
            "late_p50": statistics.median(late), "late_max": late[-1],
        }


def main() -> int:
    zipapp = Path(os.environ.get("DEBUGX_EXECUTABLE", "dist/kubectl-debugx")).resolve()
    if not zipapp.exists():
        print(f"bench/capture_loss: {zipapp} is missing: run ./build.sh first", file=sys.stderr)
        return 1
    for tool in ("kubectl", "tshark", "capinfos"):
        if not shutil.which(tool):
            print(f"bench/capture_loss: {tool} is missing (tests/system-deps.sh installs it)", file=sys.stderr)
            return 1
    with ExitStack() as stack:
        found = kubeconfig_or_test_cluster(stack, "bench/capture_loss")
        if found is None:
            return 1
        kubeconfig = found[0]
        bench = Bench(stack, kubeconfig, zipapp, os.environ.get("DEBUGX_E2E_IMAGE", "nicolaka/netshoot:v0.13"),
                      os.environ.get("DEBUGX_E2E_NGINX_IMAGE", "nginx:1.27"))
        print(f"{'rate req/s':>10} {'variant':>7} {'pkt/s':>7} {'captured':>9} {'received':>9} {'dropped':>8} "
              f"{'requests':>12} {'responses':>12} {'late p50':>9} {'late max':>9}", flush=True)
        for rate in RATES:
            for variant in VARIANTS:
                r = bench.one(variant, rate)
                print(f"{r['rate']:>10} {r['variant']:>7} {r['pps']:7.0f} {r['captured']:9d} {r['received']:9d} "
                      f"{r['dropped']:8d} {r['requests']:>5}/{r['sent']:<6} {r['responses']:>5}/{r['sent']:<6} "
                      f"{r['late_p50']:8.2f}s {r['late_max']:8.2f}s", flush=True)
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {SECONDS:g} s per rate; "
          "received counts loopback packets twice on `any`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
