"""kill -9 of `nodelogs --via pod` at random moments: how long the node pod's main process and our objects (the
node pod, its Job) outlive the client. One table on stdout, a row per kill.

Columns: the moment of the kill (seconds after the start), how far the run had got (its last stderr line:
`nothing yet`, `creating` the node pod, `reading` through it once the lease is held), then seconds after the kill
until the node pod's container was seen terminated (or the pod gone: `main ended`) and until no node pod or Job of
ours was left in the namespace (`objects gone`); `-` when the kill came before anything was created.
A kill before the lease is held leaves the main process to its lease window (nodelogs/pod.LEASE_WINDOW).

Uses $KUBECONFIG (a real cluster; DEBUGX_E2E_IMAGE, DEBUGX_E2E_NGINX_IMAGE) or starts the test cluster (root).
    bench/nodelogs_kill [--kills N] [--seed N] [--max-moment S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench.cluster import kubeconfig_or_test_cluster
from bench.reliability import MANAGED, Bench

POLL = 0.1
GIVE_UP = 90.0  # seconds after the kill


def ours(bench: Bench) -> tuple[list[dict], list[dict]]:
    pods = json.loads(bench.run("get", "pods", "-n", bench.ns, "-l", MANAGED, "-o", "json"))["items"]
    jobs = json.loads(bench.run("get", "jobs", "-n", bench.ns, "-l", MANAGED, "-o", "json"))["items"]
    return pods, jobs


def main_ended(pods: list[dict]) -> bool:
    """No node pod whose container runs or may still start."""
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ended = bool(statuses) and "terminated" in (statuses[0].get("state") or {})
        if not ended and pod["status"].get("phase") not in ("Succeeded", "Failed"):
            return False
    return True


def one_kill(bench: Bench, moment: float) -> dict:
    out = bench.scratch() / "out"
    proc = subprocess.Popen(bench.argv("nodelogs", out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(moment)  # the subject: a kill at a random moment
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    _, err = proc.communicate(timeout=30)
    said = err.decode(errors="replace").splitlines()
    phase = ("reading" if any("Reading /var/log/pods" in line for line in said) else
             "creating" if any("Creating node pod" in line for line in said) else "nothing yet")
    if proc.returncode != -signal.SIGKILL:
        phase = f"ended by itself ({proc.returncode})"
    main_at = gone_at = None
    while time.monotonic() < killed + GIVE_UP:
        pods, jobs = ours(bench)
        now = time.monotonic() - killed
        if main_at is None and main_ended(pods):
            main_at = now
        if not pods and not jobs:
            gone_at = now
            break
        time.sleep(POLL)
    bench.clean_done_node_pods()
    return {"moment": moment, "phase": phase, "main": main_at, "gone": gone_at}


def render(rows: list[dict]) -> str:
    def s(v: float | None) -> str:
        return "left" if v is None else f"{v:.1f}"

    lines = ["| # | kill at (s) | run had got to | main ended (s after) | objects gone (s after) |",
             "|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        lines.append(f"| {i} | {r['moment']:.2f} | {r['phase']} | {s(r['main'])} | {s(r['gone'])} |")
    mains = [r["main"] for r in rows if r["main"] is not None]
    gones = [r["gone"] for r in rows if r["gone"] is not None]
    lines.append(f"\nmax main ended {max(mains, default=0):.1f} s, max objects gone {max(gones, default=0):.1f} s, "
                 f"left {sum(r['gone'] is None for r in rows)} of {len(rows)}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/nodelogs_kill")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    # a nodelogs --via pod run takes about 1.2 s on the lab: moments over it hit every phase
    parser.add_argument("--max-moment", type=float, default=1.5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    zipapp = Path(os.environ.get("DEBUGX_EXECUTABLE", "dist/kubectl-debugx")).resolve()
    with ExitStack() as stack:
        found = kubeconfig_or_test_cluster(stack, "bench/nodelogs_kill")
        if found is None:
            return 2
        bench = Bench(stack, found[0], zipapp, os.environ.get("DEBUGX_E2E_IMAGE", "nicolaka/netshoot:v0.13"),
                      os.environ.get("DEBUGX_E2E_NGINX_IMAGE", "nginx:1.27"), found[1])
        stack.callback(bench.run, "delete", "namespace", bench.ns, "--wait=false", check=False)
        rows = []
        for _ in range(args.kills):
            rows.append(one_kill(bench, round(rng.uniform(0.0, args.max_moment), 2)))
            print(rows[-1], file=sys.stderr)
        print(f"seed {args.seed}")
        print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
