"""Benchmark: capture of a Deployment of N pods (N = 1, 5, 10, 20) under steady traffic into every pod, against
the same work by hand in the same run on the same cluster: N concurrent `kubectl exec` running the same tcpdump
(argv and filter) in the same debug containers for as long, each into a file; CPU per GB each received.

Per N it reports: the client's peak RSS; its CPU seconds per captured GB and the same for the N kubectl
processes (ratio, goal <= 1.0); packets written versus tcpdump's own "captured" counts (goal: equal); the time
from the command to the first packet of the last pod (goal at N = 10: the N = 1 time + 1 s).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from kubectl_debugx.commands.capture import CaptureOptions, tcpdump_argv

SIZES = (1, 5, 10, 20)
SECONDS = 20  # capture length per N
BODY_BYTES = 4_000_000  # each POST's body: nginx reads and discards it (405), tcpdump sees every byte


def manifest(name: str, replicas: int, nginx: str) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 2,
                                       "containers": [{"name": "nginx", "image": nginx}]}}}})


def run_child(argv: list[str], **kw) -> tuple[subprocess.Popen, float, float, int]:
    """Start, wait; (process, wall seconds, CPU seconds user+sys, peak RSS KiB) of that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc, time.perf_counter() - start, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> int:
    sizes = [int(x) for x in sys.argv[1:]] or list(SIZES)
    exe = os.environ.get("DEBUGX_EXECUTABLE", "dist/kubectl-debugx")
    image = os.environ.get("DEBUGX_E2E_IMAGE", "nicolaka/netshoot:v0.13")
    nginx = os.environ.get("DEBUGX_E2E_NGINX_IMAGE", "nginx:1.27")
    if not Path(exe).exists():
        print(f"bench/capture_fanout: {exe} is missing: run ./build.sh first", file=sys.stderr)
        return 1
    rows = []
    with ExitStack() as stack:
        kubeconfig = os.environ.get("KUBECONFIG", "")
        if not kubeconfig:
            if os.geteuid() != 0:
                print("bench/capture_fanout: the test cluster needs root (or set KUBECONFIG)", file=sys.stderr)
                return 1
            from tests.cluster import TestCluster

            kubeconfig = str(stack.enter_context(TestCluster()).kubeconfig)
        kubectl = ["kubectl", "--kubeconfig", kubeconfig]
        env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECTL_DEBUGX_IMAGE": image}
        out_dir = Path(tempfile.mkdtemp(prefix="debugx-fanout-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
        stack.callback(shutil.rmtree, out_dir, True)
        for n in sizes:
            ns = f"debugx-fanout-{n}-{os.getpid()}"
            subprocess.run([*kubectl, "create", "namespace", ns], check=True, capture_output=True)
            stack.callback(subprocess.run, [*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True)
            subprocess.run([*kubectl, "create", "-n", ns, "-f", "-"], input=manifest("web", n, nginx), text=True,
                           check=True, capture_output=True)
            subprocess.run([*kubectl, "run", "load", "-n", ns, f"--image={image}", "--restart=Never", "--command",
                            "--", "sleep", "3600"], check=True, capture_output=True)
            subprocess.run([*kubectl, "wait", "-n", ns, "--for=condition=Ready", "pod", "--all", "--timeout=180s"],
                           check=True, capture_output=True)
            ips = subprocess.run([*kubectl, "get", "pods", "-n", ns, "-l", "app=web", "-o",
                                  "jsonpath={.items[*].status.podIP}"], check=True, capture_output=True,
                                 text=True).stdout.split()
            # One curl sends 20 bodies on one connection (keep-alive): the traffic, not process starts.
            loops = " ".join(f"(while :; do curl -s -o /dev/null -H Expect: --data-binary @/tmp/body "
                             f"{' '.join([f'http://{ip}/'] * 20)}; done) &" for ip in ips)
            load = subprocess.Popen([*kubectl, "exec", "-n", ns, "load", "--", "sh", "-c",
                                     f"head -c {BODY_BYTES} /dev/zero > /tmp/body; {loops} wait"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(load.kill)
            out = out_dir / f"n{n}.pcapng"
            started = time.time()
            proc, wall, cpu, rss = run_child(
                [exe, "capture", "deploy/web", "-n", ns, "-o", str(out), "-f", "tcp port 80", "--duration",
                 f"{SECONDS}s", "--max-pods", str(n), "--summary", "json", "-q"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            summary = json.loads(proc.stdout.read()) if proc.stdout else {}
            err = proc.stderr.read().decode() if proc.stderr else ""
            if proc.returncode != 0:
                print(f"N={n}: capture failed ({proc.returncode}): {err}", file=sys.stderr)
                return 1
            fields = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.interface_id",
                                     "-e", "frame.time_epoch"], capture_output=True, text=True).stdout.split("\n")
            first: dict[str, float] = {}
            for line in fields:
                if "\t" in line:
                    iface, ts = line.split("\t")
                    first.setdefault(iface, float(ts))
            last_first = max(first.values()) - started if len(first) == n else float("nan")
            captured_bytes = out.stat().st_size
            # The same work by hand: N concurrent `kubectl exec` running the same tcpdump (the product's argv,
            # filter and all) in the same debug containers for as long, under the same traffic, each into a file.
            argv = tcpdump_argv(CaptureOptions(pod="", filter="tcp port 80"))
            files = [out_dir / f"n{n}-kubectl-{i}.pcap" for i in range(len(summary["pods"]))]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            execs = [subprocess.Popen([*kubectl, "exec", "-n", ns, p["pod"], "-c", p["debugContainer"], "--",
                                       "timeout", "-s", "INT", str(SECONDS), *argv], stdout=f.open("wb"),
                                      stderr=subprocess.DEVNULL) for p, f in zip(summary["pods"], files, strict=True)]
            for e in execs:
                e.wait()
            kubectl_wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            kubectl_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            kubectl_bytes = sum(f.stat().st_size for f in files)
            load.kill()
            gb = captured_bytes / 1e9
            rows.append({
                "n": n, "rss_mb": rss / 1024, "mb": captured_bytes / 1e6, "cpu_per_gb": cpu / gb,
                "kubectl_cpu_per_gb": kubectl_cpu / (kubectl_bytes / 1e9 or float("nan")),
                "written": summary["packetsWritten"],
                "captured": summary["packetsCaptured"], "dropped": summary["droppedByKernel"],
                "first_last": last_first, "wall": wall, "kubectl_wall": kubectl_wall,
            })
            subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True)
    print(f"capture deploy/web, {SECONDS}s of steady POST traffic into every pod (-f 'tcp port 80'), test cluster "
          "sharing this machine's cores")
    print(f"{'N':>3} {'MB':>7} {'peak RSS':>9} {'goal':>6} {'CPU s/GB':>9} {'kubectl':>8} {'ratio':>6} "
          f"{'written':>8} {'captured':>9} {'dropped':>8} {'1st pkt of last pod':>20}")
    for r in rows:
        print(f"{r['n']:>3} {r['mb']:>7.1f} {r['rss_mb']:>7.1f}MB {80 + 2 * r['n']:>4}MB {r['cpu_per_gb']:>9.2f} "
              f"{r['kubectl_cpu_per_gb']:>8.2f} {r['cpu_per_gb'] / r['kubectl_cpu_per_gb']:>6.2f} "
              f"{r['written']:>8} {r['captured']:>9} {r['dropped']:>8} {r['first_last']:>19.2f}s")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
