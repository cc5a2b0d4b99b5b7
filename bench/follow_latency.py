"""Benchmark: capture --follow through rollouts. A Deployment of 2 nginx pods, steady HTTP requests into every
pod (a curl loop per pod from a client pod, started as soon as the pod is seen Running), and
`kubectl debugx capture deploy/web --follow` into a pcapng while ROUNDS `kubectl rollout restart`s replace the
pods. For every pod it measures

* joiners (the rollouts' new pods): from the moment our own watch sees the pod Running and Ready to (a) the
  line of its tcpdump saying it listens, (b) its first packet in the file (the packet's timestamp);
* baseline, the first pods (captured from the start): from the command's start to the same two moments: the
  time kubectl-debugx takes to set a pod up from nothing, in the same run on the same cluster.

Goal (issue 13): a joiner's first packet within 2 s of it becoming Running. The traffic to a joiner starts
when our watch sees it Running (one `kubectl exec` away), so (b) includes that start too.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.cluster import kubeconfig_or_test_cluster

REPLICAS = 2


def manifest(nginx: str) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"terminationGracePeriodSeconds": 2,
                                       "containers": [{"name": "nginx", "image": nginx}]}}}})


def running(pod: dict[str, Any]) -> bool:
    """What the product joins on (kube/podwatch.py, workloads.pod_state): Running, not being deleted; not Ready,
    which comes later and would start the clock after the product could already act."""
    status = pod.get("status") or {}
    return (status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
            and bool(status.get("podIP")))


class Watcher:
    """Our own watch of the pods (the product's client, kube/client.py): when each was first seen Running
    (as the product joins); starts the traffic into it at once (curl retries until nginx answers)."""

    def __init__(self, kubeconfig: str, namespace: str, on_ready) -> None:
        from kubectl_debugx.kube.client import Kube
        from kubectl_debugx.kube.config import KubeFlags

        self.kube = Kube(KubeFlags(kubeconfig=kubeconfig))
        self.namespace, self.on_ready = namespace, on_ready
        self.running_at: dict[str, float] = {}
        self.gone: set[str] = set()
        self.stop = False
        pods, self.version = self.kube.list_pods_at(namespace, "app=web")
        for pod in pods:
            self._see("ADDED", pod)
        threading.Thread(target=self._run, daemon=True).start()

    def _see(self, kind: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            self.gone.add(name)
        elif running(pod) and name not in self.running_at:
            self.running_at[name] = time.time()
            self.on_ready(name, pod["status"]["podIP"])

    def _run(self) -> None:
        while not self.stop:
            for kind, pod in self.kube.watch_pods(self.namespace, "app=web", self.version, 60):
                self.version = pod["metadata"].get("resourceVersion", self.version)
                if kind != "BOOKMARK":
                    self._see(kind, pod)


def first_packets(path: Path) -> dict[str, float]:
    """Per pod, the timestamp of its first packet in the pcapng (also one still being written)."""
    if not path.exists():
        return {}
    fields = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name",
                             "-e", "frame.time_epoch"], capture_output=True, text=True).stdout
    first: dict[str, float] = {}
    for line in fields.splitlines():
        iface, _, ts = line.partition("\t")
        if ts:
            pod = iface.rsplit("/", 1)[-1]
            first[pod] = min(first.get(pod, float("inf")), float(ts))
    return first


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    exe = os.environ.get("DEBUGX_EXECUTABLE", "dist/kubectl-debugx")
    image = os.environ.get("DEBUGX_E2E_IMAGE", "nicolaka/netshoot:v0.13")
    nginx = os.environ.get("DEBUGX_E2E_NGINX_IMAGE", "nginx:1.27")
    if not Path(exe).exists():
        print(f"bench/follow_latency: {exe} is missing: run ./build.sh first", file=sys.stderr)
        return 1
    with ExitStack() as stack:
        found = kubeconfig_or_test_cluster(stack, "bench/follow_latency")
        if found is None:
            return 1
        kubeconfig, _ = found
        kubectl = ["kubectl", "--kubeconfig", kubeconfig]
        env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECTL_DEBUGX_IMAGE": image}
        out_dir = Path(tempfile.mkdtemp(prefix="debugx-follow-"))
        stack.callback(shutil.rmtree, out_dir, True)
        ns = f"debugx-follow-{os.getpid()}"
        subprocess.run([*kubectl, "create", "namespace", ns], check=True, capture_output=True)
        stack.callback(subprocess.run, [*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True)
        subprocess.run([*kubectl, "create", "-n", ns, "-f", "-"], input=manifest(nginx), text=True, check=True,
                       capture_output=True)
        subprocess.run([*kubectl, "run", "load", "-n", ns, f"--image={image}", "--restart=Never", "--command",
                        "--", "sleep", "3600"], check=True, capture_output=True)
        subprocess.run([*kubectl, "wait", "-n", ns, "--for=condition=Ready", "pod", "--all", "--timeout=180s"],
                       check=True, capture_output=True)
        loads: list[subprocess.Popen] = []

        def traffic(name: str, ip: str) -> None:  # 20 requests a second into the pod, for at most 10 minutes
            loads.append(subprocess.Popen(
                [*kubectl, "exec", "-n", ns, "load", "--", "timeout", "600", "sh", "-c",
                 f"while :; do curl -s -o /dev/null --max-time 1 http://{ip}/{name}; sleep 0.05; done"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        stack.callback(lambda: [p.kill() for p in loads])
        watcher = Watcher(kubeconfig, ns, traffic)
        first_pods = set(watcher.running_at)
        out = out_dir / "follow.pcapng"
        started = time.time()
        proc = subprocess.Popen([exe, "capture", "deploy/web", "--follow", "-n", ns, "-o", str(out),
                                 "-f", "tcp port 80", "--summary", "json"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        listening: dict[str, float] = {}
        lines: list[str] = []

        def read_stderr() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                lines.append(line)
                pod, sep, rest = line.partition(": ")
                if sep and "listening on" in rest:
                    listening.setdefault(pod, time.time())

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()

        def wait(check, what: str, timeout: float = 180) -> None:
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"bench/follow_latency: timed out waiting for {what}:\n" + "\n".join(lines))
                time.sleep(0.1)

        wait(lambda: first_pods <= set(listening), "the first pods' tcpdumps")
        # A pod's deletion kills its tcpdump with what it still holds (up to 1 s of packets, recordings/28-*):
        # the rollouts start once the first pods' packets are in the file.
        wait(lambda: first_pods <= set(first_packets(out)), "the first pods' packets in the file")
        for _ in range(rounds):
            before = set(watcher.running_at)
            subprocess.run([*kubectl, "rollout", "restart", "deploy/web", "-n", ns], check=True, capture_output=True)
            wait(lambda before=before: len(set(watcher.running_at) - before) == REPLICAS and before <= watcher.gone,
                 "the rollout")
            wait(lambda before=before: set(watcher.running_at) - before <= set(listening), "the joiners' tcpdumps")
        time.sleep(3)  # a few seconds of traffic into the last pods, then stop
        proc.send_signal(2)
        stdout, _ = proc.communicate(timeout=120)
        reader.join(10)
        watcher.stop = True
        if proc.returncode != 130:  # the documented exit code of a follow stopped by Ctrl-C (README: Exit codes)
            print(f"bench/follow_latency: capture exited {proc.returncode} after Ctrl-C (130 expected):\n"
                  + "\n".join(lines), file=sys.stderr)
            return 1
        first_packet = first_packets(out)
        summary = json.loads(stdout)
    rows = []
    for pod, running in sorted(watcher.running_at.items(), key=lambda kv: kv[1]):
        joiner = pod not in first_pods
        t0 = running if joiner else started
        rows.append((pod, "joiner" if joiner else "first", listening.get(pod, float("nan")) - t0,
                     first_packet.get(pod, float("nan")) - t0))
    print(f"capture deploy/web --follow through {rounds} rollout restarts of {REPLICAS} replicas (HTTP into every "
          f"pod at 20/s); {summary['packetsWritten']} packets; exit {summary['exitCode']}")
    print("from: joiners = our watch sees the pod Running (when the product may join it); first pods = the "
          "command starts")
    print(f"{'pod':<28} {'kind':<7} {'-> listening':>13} {'-> 1st packet':>14}")
    for pod, kind, listen, packet in rows:
        print(f"{pod:<28} {kind:<7} {listen:>12.2f}s {packet:>13.2f}s")
    for kind in ("first", "joiner"):
        listen = [r[2] for r in rows if r[1] == kind]
        packet = [r[3] for r in rows if r[1] == kind]
        print(f"{kind + 's':<8} median {statistics.median(listen):.2f}s listening, {statistics.median(packet):.2f}s "
              f"first packet; max {max(packet):.2f}s")
    joiners = [r[3] for r in rows if r[1] == "joiner"]
    firsts = [r[3] for r in rows if r[1] == "first"]
    ratio = statistics.median(joiners) / statistics.median(firsts)
    print(f"ratio joiner / first pod (median first packet): {ratio:.2f}; goal: every joiner's first packet "
          f"within 2 s: {'met' if max(joiners) <= 2.0 else 'NOT met'}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
