"""Benchmark: a long ring capture. Steady HTTP traffic inside pod `web` (curl with keep-alive, a 4 kB header per
request, in a loop from the pod's `traffic` container) while `capture web --ring RING --max-size SIZE` runs for
DURATION; then the same capture without --ring for the same time, in the same run. Printed:

- the disk the ring's files take (`du -k` of the folder, and their apparent bytes) against RING x SIZE;
- files written and rotated, packets written against tcpdump's own captured count, packets per kept file, and
  `kept + dropped = written` as the summary reports it;
- the client's CPU (user + system of the kubectl-debugx process) per GB written, with and without --ring, and
  their ratio.

On the test cluster (root) or $KUBECONFIG."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.cluster import kubeconfig_or_test_cluster, web_with_traffic

DURATION = int(os.environ.get("DURATION", "120"))  # seconds
RING = int(os.environ.get("RING", "3"))
SIZE = os.environ.get("SIZE", "1MB")
TRAFFIC = ("pad=$(printf '%04000d' 0); while :; do "
           "curl -s -H \"X-Pad: $pad\" 'http://127.0.0.1/r[1-500]' >/dev/null; done")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def capture(exe: str, env: dict[str, str], namespace: str, out: Path, extra: list[str]) -> tuple[dict[str, Any], float]:
    """One capture of DURATION: its JSON summary and the CPU seconds it used."""
    before = children_cpu()
    result = subprocess.run([exe, "capture", "web", "-n", namespace, "-f", "tcp port 80", "-q", "--duration",
                             f"{DURATION}s", "-o", str(out), "--summary", "json", *extra],
                            env=env, capture_output=True, timeout=DURATION + 300)
    cpu = children_cpu() - before
    if result.returncode != 0:
        raise SystemExit(f"capture {' '.join(extra)} failed ({result.returncode}): {result.stderr.decode()}")
    return json.loads(result.stdout), cpu


def main() -> int:
    exe = str(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/kubectl-debugx").resolve())
    image = os.environ.get("DEBUGX_E2E_IMAGE", "nicolaka/netshoot:v0.13")
    nginx = os.environ.get("DEBUGX_E2E_NGINX_IMAGE", "nginx:1.27")
    from kubectl_debugx.options import parse_size

    size = parse_size(SIZE, "SIZE")
    with ExitStack() as stack:
        found = kubeconfig_or_test_cluster(stack, "bench/capture_ring")
        if found is None:
            return 2
        kubeconfig = found[0]
        env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECTL_DEBUGX_IMAGE": image}
        kubectl = ["kubectl", "--kubeconfig", kubeconfig]
        namespace = "bench-ring"
        web_with_traffic(stack, kubectl, namespace, nginx, image, "netadmin")
        traffic = subprocess.Popen([*kubectl, "exec", "-n", namespace, "web", "-c", "traffic", "--", "sh", "-c",
                                    TRAFFIC], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(traffic.kill)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        (tmp / "ring").mkdir()
        (tmp / "plain").mkdir()
        ring, ring_cpu = capture(exe, env, namespace, tmp / "ring" / "web.pcap", ["--ring", str(RING),
                                                                                  "--max-size", SIZE])
        plain, plain_cpu = capture(exe, env, namespace, tmp / "plain" / "web.pcap", [])
        du_k = int(subprocess.run(["du", "-sk", str(tmp / "ring")], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
        files = sorted((tmp / "ring").iterdir())
        apparent = sum(p.stat().st_size for p in files)
        kept = ring["ringFiles"]
        print(f"capture --ring {RING} --max-size {SIZE} ({size:,} bytes) for {DURATION}s of steady traffic "
              f"({ring['bytesWritten'] / DURATION / 1e6:.2f} MB/s captured)")
        print(f"  files on disk:       {len(files)} ({', '.join(p.name for p in files)})")
        print(f"  disk used (du -sk):  {du_k} KiB = {du_k * 1024:,} bytes; apparent {apparent:,} bytes; "
              f"limit N x SIZE = {RING * size:,} bytes ({du_k * 1024 / (RING * size):.3f} of it)")
        print(f"  largest file:        {max(p.stat().st_size for p in files):,} bytes (SIZE {size:,})")
        print(f"  files written:       {ring['filesWritten']} ({ring['filesWritten'] - 1} rotations), "
              f"{ring['filesDropped']} dropped")
        print(f"  packets written:     {ring['packetsWritten']:,}; tcpdump captured {ring['packetsCaptured']:,}, "
              f"dropped by kernel {ring['droppedByKernel']}")
        print(f"  packets kept:        {' + '.join(str(k['packets']) for k in kept)} + dropped "
              f"{ring['packetsDropped']:,} = {sum(k['packets'] for k in kept) + ring['packetsDropped']:,}")
        ring_gb, plain_gb = ring["bytesWritten"] / 1e9, plain["bytesWritten"] / 1e9
        ring_per, plain_per = ring_cpu / ring_gb, plain_cpu / plain_gb
        print(f"  client CPU:          --ring {ring_cpu:.2f}s for {ring_gb * 1000:.1f} MB = {ring_per:.1f} s/GB; "
              f"without --ring {plain_cpu:.2f}s for {plain_gb * 1000:.1f} MB = {plain_per:.1f} s/GB; "
              f"ratio {ring_per / plain_per:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
