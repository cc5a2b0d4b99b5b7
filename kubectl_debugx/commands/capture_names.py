"""What a merged capture's pcapng says of where it came from: the section's comment (the command line, the
server, the start) and the Name Resolution Block (the captured pods, their service, and every other pod and
service of their namespaces, so that peers have names in Wireshark)."""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from typing import Any

from kubectl_debugx.errors import DebugxError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.workloads import Resolution


def section_comment(kube: KubeApi, started: float) -> str:
    """The SHB comment: how the capture was made (the command line holds no credentials: we take none)."""
    server = getattr(kube, "host", "") or "?"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    return f"{shlex.join(['kubectl', 'debugx', *sys.argv[1:]])}\nserver: {server}\nstarted: {when}"


def name_records(resolution: Resolution) -> list[tuple[str, list[str]]]:
    """Pod IPs -> pod names (NAMESPACE/POD is the interface's name already; here the bare name, as DNS would
    say), and the service's cluster IPs -> SERVICE.NAMESPACE.svc for svc/."""
    records = []
    for pod in resolution.pods:
        for entry in (pod.get("status") or {}).get("podIPs") or [{"ip": (pod.get("status") or {}).get("podIP")}]:
            if entry.get("ip"):
                records.append((str(entry["ip"]), [str(pod["metadata"]["name"])]))
    svc = resolution.service
    if svc is not None:
        meta = svc["metadata"]
        for ip in (svc.get("spec") or {}).get("clusterIPs") or []:
            if ip and ip != "None":
                records.append((str(ip), [f"{meta['name']}.{meta['namespace']}.svc"]))
    return records


def peer_records(kube: KubeApi, resolution: Resolution) -> list[tuple[str, list[str]]]:
    """Every other pod's and service's IP in the namespaces of the captured pods (one list of pods and one of
    services per namespace), so that peers (the client pod, the service it called) have names in Wireshark, as
    the captured pods do; a list the user may not make names fewer. Pods by name, services as DNS names them."""
    named = {ip for ip, _ in name_records(resolution)}
    records: list[tuple[str, list[str]]] = []
    for namespace in sorted({p["metadata"]["namespace"] for p in resolution.pods}):
        pods: list[dict[str, Any]] = []
        services: list[dict[str, Any]] = []
        with contextlib.suppress(DebugxError):
            pods = kube.list_pods(namespace)
        with contextlib.suppress(DebugxError):
            services = kube.list_objects("/api/v1", "services", namespace)
        # running pods with their own IP: a finished pod's IP may be another's now, a hostNetwork pod's is the node's
        running = [p for p in sorted(pods, key=lambda p: p["metadata"]["name"])
                   if (p.get("status") or {}).get("phase") == "Running"
                   and not (p.get("spec") or {}).get("hostNetwork")]
        found = name_records(Resolution(resolution.ref, "", pods=running))
        for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
            found += name_records(Resolution(resolution.ref, "", service=svc))
        for ip, names in found:
            if ip not in named:
                named.add(ip)
                records.append((ip, names))
    return records
