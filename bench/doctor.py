"""Benchmark: `doctor` against what a user does by hand -- one `kubectl auth can-i` per permission -- in the
same run, on the test cluster (or $KUBECONFIG), with and without API latency (test cluster only)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from bench.startup import RUNS, row, timed, web_pod

# Every permission doctor asks for all four commands (remote/access.py NEEDS), as `kubectl auth can-i` words.
CAN_I = [["get", "pods"], ["patch", "pods", "--subresource=ephemeralcontainers"],
         ["get", "pods", "--subresource=exec"], ["create", "pods", "--subresource=exec"],
         ["get", "nodes", "--subresource=proxy"], ["create", "pods"], ["delete", "pods"]]


def by_hand(kubectl: list[str], namespace: str) -> list[list[str]]:
    return [[*kubectl, "auth", "can-i", *words, "-n", namespace] for words in CAN_I]


def main() -> int:
    exe = str(Path(sys.argv[1] if len(sys.argv) > 1 else "dist/kubectl-debugx").resolve())
    if not os.access(exe, os.X_OK):
        print(f"bench/doctor: no executable {exe}; run ./build.sh", file=sys.stderr)
        return 1
    with ExitStack() as stack:
        cluster = None
        kubeconfig = os.environ.get("KUBECONFIG", "")
        if not kubeconfig:
            from tests.cluster import TestCluster

            cluster = stack.enter_context(TestCluster())
            kubeconfig = str(cluster.kubeconfig)
        env = dict(os.environ, KUBECONFIG=kubeconfig)
        kubectl = ["kubectl", "--kubeconfig", kubeconfig]
        namespace = web_pod(kubectl, stack, "doctor")
        doctor = [exe, "doctor", "web", "-n", namespace]
        verbose = subprocess.run([*doctor, "-v=1"], env=env, capture_output=True, text=True)
        if verbose.returncode != 0:  # a doctor that fails is no measurement of doctor (exit 4: what it lacks)
            print(f"bench/doctor: doctor exited {verbose.returncode}:\n{verbose.stdout}{verbose.stderr}",
                  file=sys.stderr)
            return 1
        requests = sum(1 for line in verbose.stderr.splitlines() if line.startswith("I "))
        reviews = sum(1 for line in verbose.stderr.splitlines() if "selfsubjectaccessreviews" in line)
        runs = max(5, RUNS // 2)
        hand = by_hand(kubectl, namespace)
        print(f"doctor makes {requests} API requests, {reviews} of them access reviews (the {len(CAN_I)} "
              "permissions, asked in one parallel batch); it creates nothing")
        print(f"| {'what':<42} | {'ours':>11} | {'baseline':>11} {'':<28} | ratio |")
        latencies = [0.0, 0.05] if cluster is not None else [None]
        for latency in latencies:
            if cluster is not None and latency is not None:
                cluster.set_latency(latency)
            label = f"doctor, all four ({'real cluster' if latency is None else f'{latency * 1000:.0f} ms latency'})"
            ours = timed(doctor, env, runs, warmup=1, check=True)
            # one after another, as typed (can-i exits 1 for "no": `;`, not `&&`)
            theirs = timed(["sh", "-c", "; ".join(shlex.join(c) for c in hand)], env, runs, warmup=1, check=False)
            print(row(label, ours, theirs, f"{len(CAN_I)} x kubectl auth can-i"))
        if cluster is not None:
            cluster.set_latency(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
