"""Names of this process's per-session resources when pytest-xdist runs the suite on several workers.

Every worker (PYTEST_XDIST_WORKER: gw0, gw1, ...) starts its own test cluster. Ports are the kernel's choice,
the pod network lives in a network namespace of each cluster's own (containers.NodeNetwork), so what remains
to tell apart are the temp dirs: their names carry the worker, and a session's leak check (tests/conftest.py)
looks at its own worker's only."""

from __future__ import annotations

import os


def worker_id() -> str:
    """gw0, gw1, ... under pytest-xdist; empty otherwise."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def temp_prefix(kind: str) -> str:
    """mkdtemp prefix: `kind-` plus the worker's id and a dash under pytest-xdist (debugx-cluster-gw0-...)."""
    worker = worker_id()
    return f"{kind}-{worker}-" if worker else f"{kind}-"
