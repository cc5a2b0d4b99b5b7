"""`python -m tests.cluster`: run the test cluster in the foreground (needs root).

The first stdout line is the kubeconfig path (flushed), so scripts can do
`KUBECONFIG=$(python -m tests.cluster | head -1)`-style setups; SIGINT/SIGTERM stop it and clean up.
With `--play DIST` (what `./build.sh cluster` runs) stdout says instead how to use it from another shell, with
DIST (the built plugin's folder) on PATH: the cluster to play with that issue 22 found hard to find.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from . import TestCluster


def play_instructions(cluster: TestCluster, dist: Path) -> str:
    """What a person needs to use the cluster from another shell (./build.sh cluster)."""
    return f"""\
The test cluster is up: API server {cluster.server}, one node "{cluster.node_name}" whose pods are real
processes on this machine. In another shell:

  export KUBECONFIG={cluster.kubeconfig}
  export PATH="{dist.resolve()}:$PATH"     # `kubectl debugx` is this build
  kubectl create deployment web --image=nginx
  kubectl rollout status deployment/web
  kubectl debugx capture deploy/web --duration 20s -o web.pcap &
  kubectl exec deploy/web -- curl -s -o /dev/null localhost   # some traffic for the capture
  kubectl debugx trace deploy/web --process "nginx: worker" -e trace=network --duration 10s
  kubectl debugx nodelogs deploy/web -o web-logs

Images are host programs (nginx: the host's nginx; anything else runs its command from the host's files).
Pods reach each other by pod IP; Service IPs and cluster DNS do not route (tests/cluster/README.md, "Playing").
Context {cluster.limited_context}: a user that may only read pods.
Ctrl-C here stops the cluster and removes all it made (pods, mounts, network namespaces, this kubeconfig).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster",
                                     description="Run the test cluster in the foreground (needs root).")
    parser.add_argument("--node-name", default="debugx-node")
    parser.add_argument("--play", metavar="DIST", type=Path,
                        help="print how to use the cluster (with DIST, the plugin's folder, on PATH) instead of "
                             "the bare kubeconfig path")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    if os.geteuid() != 0:
        # Pods are processes in Linux namespaces with veths and mounts: nothing works without root.
        print("error: the test cluster needs root (it runs pods as processes in Linux namespaces): "
              "sudo .venv/bin/python -m tests.cluster", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cluster = TestCluster(node_name=args.node_name)
    cluster.start()
    try:
        if args.play is not None:
            print(play_instructions(cluster, args.play), flush=True)
        else:
            print(cluster.kubeconfig, flush=True)
            print(f"# server {cluster.server}, contexts {cluster.context} and {cluster.limited_context}; "
                  "Ctrl-C stops", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if args.play is not None:
            print("stopping the test cluster...", file=sys.stderr, flush=True)
        cluster.stop()
        if args.play is not None:
            print("stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
