"""``pods/log?follow=true`` as the kubelet serves it (what nodelogs --follow's wake-ups and `kubectl logs -f`
hold): from ``tailLines=0`` it sends every line written after it began, each once and in order, also through
rotations of the live file (the kubelet reads the renamed file to its end before it reopens N.log: its fsnotify
Write events come before the Rename), and it ends when the container ends. Runs on the test cluster and on a real
one (DEBUGX_E2E_KUBECONFIG) alike; the rotations are the test cluster's switch, left out on a real cluster."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.e2e.helpers import wait_until

pytestmark = pytest.mark.e2e

LINES = 3000
# Waits for /tmp/go, prints LINES numbered lines (a pause every 100, so the test can rotate between them),
# then waits for /tmp/end and ends: the stream must end with it.
WRITER = f"""
while [ ! -e /tmp/go ]; do sleep 0.05; done
i=1; while [ $i -le {LINES} ]; do echo "n $i"; [ $((i % 100)) = 0 ] && sleep 0.1; i=$((i+1)); done
while [ ! -e /tmp/end ]; do sleep 0.05; done
"""


def test_every_line_once_through_rotations_and_the_end(e2e: Any, namespace: str, make_pod: Any) -> None:
    make_pod(namespace, "writer", image=e2e.image, command=["sh", "-c", WRITER], restartPolicy="Never")
    response = e2e.api_client().call_api(
        f"/api/v1/namespaces/{namespace}/pods/writer/log", "GET", query_params=[
            ("container", "main"), ("follow", "true"), ("tailLines", "0")],
        header_params={"Accept": "*/*"}, auth_settings=["BearerToken"], _preload_content=False,
        _return_http_data_only=True)
    received = bytearray()

    def read() -> None:
        while chunk := response.read1(1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    e2e.kubectl("exec", "-n", namespace, "writer", "--", "touch", "/tmp/go")
    if e2e.cluster is not None:
        for k in (500, 1500, 2500):  # while it writes: each rotation renames 0.log under the open stream
            wait_until(lambda k=k: received.count(b"\n") >= k, f"{k} lines")
            e2e.cluster.rotate_logs(namespace, "writer", "main")
    wait_until(lambda: received.count(b"\n") >= LINES, f"{LINES} lines")
    done = e2e.kubectl("exec", "-n", namespace, "writer", "--", "touch", "/tmp/end", check=False)
    # 137: the container saw /tmp/end and ended before touch itself had exited, and took it along, as runc does
    # when a container's main process exits (CI once)
    assert done.returncode in (0, 137), done.stderr
    reader.join(60)  # the container ended: so does the answer
    assert not reader.is_alive()
    assert received.decode().splitlines() == [f"n {i}" for i in range(1, LINES + 1)]
