"""`python -m tests.cluster`: run the test cluster in the foreground.

The first stdout line is the kubeconfig path (flushed), so scripts can do
`KUBECONFIG=$(python -m tests.cluster | head -1)`-style setups; SIGINT/SIGTERM stop it and clean up.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from . import TestCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster",
                                     description="Run the test cluster in the foreground (needs root).")
    parser.add_argument("--node-name", default="debugx-node")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cluster = TestCluster(node_name=args.node_name)
    cluster.start()
    try:
        print(cluster.kubeconfig, flush=True)
        print(f"# server {cluster.server}, contexts {cluster.context} and {cluster.limited_context}; "
              "Ctrl-C stops", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
