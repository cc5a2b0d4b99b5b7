"""What the benchmarks that run against a cluster share: $KUBECONFIG or the test cluster, and the pod `web`
(nginx) with a `traffic` ephemeral container to make requests from inside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def kubeconfig_or_test_cluster(stack: ExitStack, prog: str) -> tuple[str, Any] | None:
    """($KUBECONFIG, None) when it is set (a real cluster), else a test cluster started for the stack's life
    (root needed; None after saying so)."""
    kubeconfig = os.environ.get("KUBECONFIG", "")
    if kubeconfig:
        return kubeconfig, None
    if os.geteuid() != 0:
        print(f"{prog}: the test cluster needs root (or set KUBECONFIG)", file=sys.stderr)
        return None
    from tests.cluster import TestCluster

    cluster = stack.enter_context(TestCluster())
    return str(cluster.kubeconfig), cluster


@dataclass(frozen=True)
class Setup:
    """The built executable, the cluster to run it against, and how to run it and kubectl there."""

    zipapp: Path
    image: str  # DEBUGX_E2E_IMAGE, else busybox
    kubeconfig: str
    env: dict[str, str]  # KUBECONFIG, and SHIV_ROOT in a folder removed with the stack
    kubectl: list[str]


def setup(stack: ExitStack, prog: str) -> Setup | None:
    """Everything a benchmark of the executable needs (None after saying what is missing)."""
    zipapp = Path(os.environ.get("DEBUGX_EXECUTABLE", "dist/kubectl-debugx")).resolve()
    if not zipapp.exists():
        print(f"{prog}: {zipapp} is missing: run ./build.sh first", file=sys.stderr)
        return None
    found = kubeconfig_or_test_cluster(stack, prog)
    if found is None:
        return None
    kubeconfig = found[0]
    shiv_root = Path(tempfile.mkdtemp(prefix="debugx-bench-shiv-"))
    stack.callback(shutil.rmtree, shiv_root, True)
    env = {**os.environ, "KUBECONFIG": kubeconfig, "SHIV_ROOT": str(shiv_root)}
    return Setup(zipapp, os.environ.get("DEBUGX_E2E_IMAGE", "busybox:1.36"), kubeconfig, env,
                 ["kubectl", "--kubeconfig", kubeconfig])


def sleeping_pod(stack: ExitStack, kubectl: list[str], namespace: str, image: str, name: str) -> None:
    """Namespace `namespace` (deleted with the stack) and pod `name` (`image` running `sleep`, Ready) in it."""
    subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
    stack.callback(lambda: subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"],
                                          capture_output=True))
    subprocess.run([*kubectl, "run", name, "-n", namespace, f"--image={image}", "--restart=Never",
                    "--command", "--", "sleep", "3600"], check=True, capture_output=True)
    subprocess.run([*kubectl, "wait", "-n", namespace, "--for=condition=Ready", f"pod/{name}", "--timeout=120s"],
                   check=True, capture_output=True)


def web_with_traffic(stack: ExitStack, kubectl: list[str], namespace: str, nginx: str, image: str, profile: str,
                     create_namespace: bool = True) -> None:
    """Pod `web` (nginx, Ready) in `namespace` (created, and deleted with the stack, unless told), and its
    running ephemeral container `traffic` (`image`, `profile`, targeting web)."""

    def run(*args: str) -> str:
        res = subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=180)
        if res.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    if create_namespace:
        run("create", "namespace", namespace)
        stack.callback(lambda: subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"],
                                              capture_output=True))
    run("run", "web", "-n", namespace, f"--image={nginx}", "--restart=Never")
    run("wait", "-n", namespace, "--for=condition=Ready", "pod/web", "--timeout=120s")
    run("debug", "-n", namespace, "web", f"--image={image}", "--target=web", "-c", "traffic",
        f"--profile={profile}", "--", "sleep", "7200")
    deadline = time.monotonic() + 120
    while "traffic" not in run("get", "pod", "web", "-n", namespace, "-o",
                               "jsonpath={.status.ephemeralContainerStatuses[?(@.state.running)].name}"):
        if time.monotonic() > deadline:
            raise SystemExit("the traffic container did not start")
        time.sleep(0.3)
