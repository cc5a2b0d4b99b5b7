"""What nodelogs is asked for: the options and their checks, the pod and its containers, the pod's directory.

Everything here is decided before any file is read: :func:`validate` and :func:`check_output_dir` need no
cluster, :func:`resolve` asks the API server once for the pod.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kubectl_debugx.commands.nodelogs.listing import Entry
from kubectl_debugx.errors import NotFound, NotReady, OutputError, UsageError
from kubectl_debugx.formats import crilog
from kubectl_debugx.kube import pods
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote import profiles, specs

DEFAULT_IMAGE = specs.DEFAULT_IMAGE  # needs sh, ls and tar
VIAS = ("auto", "proxy", "pod")
DEFAULT_PROFILE = "baseline"  # no host namespaces, no added capability: only the read-only mounts
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CONTAINER_KINDS = (
    ("init", "initContainers", "initContainerStatuses"),
    ("container", "containers", "containerStatuses"),
    ("ephemeral", "ephemeralContainers", "ephemeralContainerStatuses"),
)
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_UID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")


@dataclass(frozen=True)
class NodeLogsOptions:
    pod: str
    container: str | None = None
    all_containers: bool = False
    since_seconds: float | None = None
    since_time: datetime | None = None
    raw: bool = False
    output_dir: str = "nodelogs"
    via: str = "auto"
    pod_namespace: str | None = None  # the node pod's namespace; default: the pod's
    image: str = DEFAULT_IMAGE
    profile: str = "auto"  # auto = baseline
    custom: Mapping[str, Any] | None = None
    node: str | None = None
    uid: str | None = None
    start_timeout: float = pods.START_TIMEOUT


def validate(opts: NodeLogsOptions) -> None:
    """Checks that need no cluster; each message names its flag."""
    if opts.via not in VIAS:
        raise UsageError(f"--via: must be one of {', '.join(VIAS)}, got {opts.via!r}")
    if opts.profile not in ("auto", *profiles.PROFILES):
        raise UsageError(f"--profile: unknown profile {opts.profile!r}; choose auto (= {DEFAULT_PROFILE}) or "
                         f"one of {', '.join(profiles.PROFILES)}")
    if opts.container and opts.all_containers:
        raise UsageError("-c/--container and --all-containers cannot be used together")
    if opts.since_seconds is not None and opts.since_time is not None:
        raise UsageError("--since and --since-time cannot be used together")
    if not _DNS_SUBDOMAIN.fullmatch(opts.pod):
        raise UsageError(f"invalid pod name {opts.pod!r}")
    if opts.container is not None and not _DNS_LABEL.fullmatch(opts.container):
        raise UsageError(f"-c/--container: invalid container name {opts.container!r}")
    if opts.node is not None and not _DNS_SUBDOMAIN.fullmatch(opts.node):
        raise UsageError(f"--node: invalid node name {opts.node!r}")
    if opts.uid is not None and not _UID.fullmatch(opts.uid):
        raise UsageError(f"--uid: invalid pod UID {opts.uid!r} (a UUID, or a static pod's config hash)")
    if opts.pod_namespace is not None and not _DNS_LABEL.fullmatch(opts.pod_namespace):
        raise UsageError(f"--pod-namespace: invalid namespace name {opts.pod_namespace!r}")


def parse_since_time(text: str) -> datetime:
    """--since-time: an RFC3339 time with its offset, as kubectl takes it."""
    parsed = crilog.parse_timestamp(text.strip())
    if parsed is None:
        raise UsageError(f"--since-time: invalid time {text!r}; use RFC3339, e.g. 2026-11-27T07:18:00Z")
    return parsed.to_datetime()


def since_limit(opts: NodeLogsOptions, now: datetime) -> datetime | None:
    if opts.since_time is not None:
        return opts.since_time
    if opts.since_seconds is not None:
        return now - timedelta(seconds=opts.since_seconds)
    return None


def check_output_dir(path: Path) -> None:
    """Refuse, before touching the cluster, an output directory that exists and is not empty."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise OutputError(f"output path {path} exists and is not a directory")
    if next(path.iterdir(), None) is not None:
        raise OutputError(f"output directory {path} exists and is not empty; choose another with -o")


# ---------------------------------------------------------------------------------------------- the pod


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    kind: str  # init, container, ephemeral
    restarts: int
    ids: Mapping[str, int] = field(default_factory=dict)  # bare container ID -> restart number


@dataclass(frozen=True)
class LogTarget:
    """Whose files to read, on which node. ``uid`` None: search the node for NS_POD_*."""

    namespace: str
    pod: str
    node: str
    uid: str | None
    containers: tuple[ContainerInfo, ...] = ()  # empty when the pod object is not the one on the node
    runtime: str = ""
    default_container: str | None = None
    static: bool = False

    def pod_dir(self, uid: str | None = None) -> str:
        return f"{self.namespace}_{self.pod}_{uid or self.uid}"


def pod_uid(pod: Mapping[str, Any]) -> tuple[str, bool]:
    """The UID the kubelet names the log directory after, and whether the pod is static (its mirror)."""
    metadata = pod.get("metadata") or {}
    mirror = (metadata.get("annotations") or {}).get(MIRROR_ANNOTATION)
    if mirror:
        return str(mirror), True
    return str(metadata.get("uid") or ""), False


def pod_containers(pod: Mapping[str, Any]) -> tuple[ContainerInfo, ...]:
    """Every container of the pod (init, regular, ephemeral) with its restarts and container IDs."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    out = []
    for kind, spec_key, status_key in CONTAINER_KINDS:
        statuses = {s.get("name"): s for s in status.get(status_key) or []}
        for container in spec.get(spec_key) or []:
            st = statuses.get(container["name"]) or {}
            restarts = int(st.get("restartCount") or 0)
            ids: dict[str, int] = {}
            current = _bare_id(st.get("containerID"))
            if current:
                ids[current] = restarts
            previous = _bare_id(((st.get("lastState") or {}).get("terminated") or {}).get("containerID"))
            if previous and restarts > 0:
                ids[previous] = restarts - 1
            out.append(ContainerInfo(container["name"], kind, restarts, ids))
    return tuple(out)


def _bare_id(container_id: Any) -> str:
    return str(container_id).split("://", 1)[-1] if container_id else ""


def pod_runtime(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    for _, _, key in CONTAINER_KINDS:
        for st in status.get(key) or []:
            if "://" in str(st.get("containerID") or ""):
                return profiles.runtime_name(st["containerID"])
    return ""


def default_container(pod: Mapping[str, Any]) -> str | None:
    from kubectl_debugx.remote.specs import default_container as kubectl_default

    return kubectl_default(pod) if (pod.get("spec") or {}).get("containers") else None


def target_from(
    namespace: str, name: str, pod: Mapping[str, Any] | None, node: str | None, uid: str | None
) -> LogTarget:
    """Which node and directory hold the files, from the pod object (None if it is gone) and --node/--uid.

    The pod's own containers describe the directory only when it is that pod's directory (same node, same
    UID); an older incarnation (another --uid, or a search on another --node) is read from what the node has.
    """
    if pod is None:
        if not node:
            raise NotFound(f'pods "{name}" not found in namespace "{namespace}"; for the files of a pod that '
                           "no longer exists give --node NODE (and --uid UID if you know it)")
        return LogTarget(namespace, name, node, uid)
    own_uid, static = pod_uid(pod)
    own_node = str((pod.get("spec") or {}).get("nodeName") or "")
    if not node and not own_node:
        raise NotReady(f'pod "{name}" is not scheduled to a node yet, so it has no log files')
    node = node or own_node
    if node != own_node:
        # Another node: an earlier pod of that name ran there; search it unless --uid says which.
        return LogTarget(namespace, name, node, uid)
    uid = uid or own_uid
    if uid != own_uid:
        return LogTarget(namespace, name, node, uid, runtime=pod_runtime(pod))
    return LogTarget(namespace, name, node, uid, pod_containers(pod), pod_runtime(pod),
                     default_container(pod), static)


def resolve(kube: KubeApi, opts: NodeLogsOptions, namespace: str) -> LogTarget:
    try:
        pod: dict[str, Any] | None = kube.get_pod(namespace, opts.pod)
    except ApiError as e:
        if e.status != 404:
            raise
        pod = None  # target_from says what to give for a pod that no longer exists
    target = target_from(namespace, opts.pod, pod, opts.node, opts.uid)
    if not _DNS_SUBDOMAIN.fullmatch(target.node):
        raise UsageError(f"unexpected node name {target.node!r}")
    try:
        node = kube.get_node(target.node)
    except ApiError as e:
        if e.status == 404:
            raise NotFound(f'node "{target.node}" not found') from None
        if e.status != 403:
            raise
        return target  # reading nodes is often not allowed; the node proxy or the node pod will tell
    if not target.runtime:
        info = (node.get("status") or {}).get("nodeInfo") or {}
        runtime = profiles.runtime_name(info.get("containerRuntimeVersion", ""))
        target = LogTarget(target.namespace, target.pod, target.node, target.uid, target.containers, runtime,
                           target.default_container, target.static)
    return target


def select_containers(target: LogTarget, opts: NodeLogsOptions) -> tuple[tuple[str, ...] | None, str]:
    """The containers asked for (None: every one the node has) and a note for the user, like kubectl logs:
    -c, --all-containers, else the default container."""
    names = [c.name for c in target.containers]
    if opts.container:
        if names and opts.container not in names:
            raise NotFound(f'container "{opts.container}" not found in pod "{target.pod}" '
                           f"(containers: {', '.join(names)})")
        return (opts.container,), ""
    if opts.all_containers or not names:
        return None, ""
    chosen = target.default_container or names[0]
    note = ""
    if len(names) > 1:
        listed = ", ".join(f"{c.name} ({c.kind})" if c.kind != "container" else c.name for c in target.containers)
        note = f'Defaulted container "{chosen}" out of: {listed}; use --all-containers for every one'
    return (chosen,), note


def match_pod_dirs(entries: Sequence[Entry], namespace: str, pod: str) -> list[str]:
    """The UIDs of NS_POD_UID directories of this pod (namespaces and pod names never hold ``_``)."""
    uids = []
    for entry in entries:
        parts = entry.name.split("_")
        if entry.is_dir and len(parts) == 3 and parts[0] == namespace and parts[1] == pod and parts[2]:
            uids.append(parts[2])
    return sorted(uids)


def docker_ids_of(target: LogTarget, containers: Sequence[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for info in target.containers:
        if info.name in containers:
            ids.update(info.ids)
    return ids
