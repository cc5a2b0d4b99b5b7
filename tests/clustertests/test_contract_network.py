"""Round-5 contract, the pod network (recordings/50-*): what the lab's CNI (bridge, host-local IPAM) does that
tests rely on. 50-pod-ip-after-delete: a pod deleted, the next pod created gets the address after the last one
given, not the deleted pod's (a client's ARP entry for that address would still name the old pod)."""

from __future__ import annotations

import ipaddress

import pytest

from .test_contract import ALL_CASES

pytestmark = pytest.mark.e2e

CASE = next(c for c in ALL_CASES if c["case"] == "50-pod-ip-after-delete")


def test_the_next_pod_never_gets_the_address_of_the_pod_just_deleted(e2e, namespace):
    if e2e.cluster is None:
        pytest.skip("the contract replay runs against the local test cluster only")
    got = {}
    for name in ("ip-b", "ip-c"):  # as recorded
        e2e.kubectl("run", name, "-n", namespace, f"--image={e2e.nginx_image}", "--restart=Never")
        e2e.kubectl("wait", "-n", namespace, "--for=condition=Ready", f"pod/{name}", "--timeout=120s", timeout=150)
        got[name] = e2e.kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.podIP}").stdout.strip()
        e2e.kubectl("delete", "pod", name, "-n", namespace, "--grace-period=1", timeout=60)
    recorded = dict(line.split(" ") for line in CASE["output"] if not line.endswith("deleted"))
    assert CASE["facts"]["next_pod_gets_the_deleted_pods_address"] is False
    assert (got["ip-c"] != got["ip-b"]) == (recorded["ip-c"] != recorded["ip-b"])
    # the next address after the last given, as host-local hands them out
    assert int(ipaddress.ip_address(got["ip-c"])) - int(ipaddress.ip_address(got["ip-b"])) == int(
        ipaddress.ip_address(recorded["ip-c"])) - int(ipaddress.ip_address(recorded["ip-b"])) == 1
