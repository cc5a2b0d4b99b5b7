"""nodelogs: a pod's log files exactly as its node keeps them, copied to a local folder and decoded.

Complete → Validate → Run, as capture does: the CLI builds a frozen :class:`NodeLogsOptions`,
:func:`validate` and :func:`check_output_dir` need no cluster, and :func:`run` resolves the pod, picks the
way to the node (:mod:`nodefetch`: node proxy or node pod), copies the files and decodes them
(:mod:`crilog`).

Output under ``-o DIR``::

    DIR/NODE/NS_POD_UID/CONTAINER/N.log[.YYYYMMDD-HHMMSS[.gz]]   the files as the node has them
    DIR/NODE/docker/containers/ID/ID-json.log[.N]              Docker's files (Docker nodes, --via pod)
    DIR/CONTAINER_N.txt                                        one decoded file per container instance

Node names and container names cannot hold ``_``, so a decoded file never collides with a node folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from kubectl_debugx.commands import nodefetch
from kubectl_debugx.errors import (
    DebugxError,
    ExitCode,
    Forbidden,
    Interrupted,
    NotFound,
    NotReady,
    OutputError,
    UsageError,
)
from kubectl_debugx.formats import crilog, logtree
from kubectl_debugx.formats.logtree import ExtractReport
from kubectl_debugx.kube import pods
from kubectl_debugx.kube.client import ApiError, KubeApi
from kubectl_debugx.remote import profiles, specs
from kubectl_debugx.talk import Talk

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
            raise NotFound(f'pods "{name}" not found; for the files of a pod that no longer exists give '
                           "--node NODE (and --uid UID if you know it)")
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
        if e.status != 404 or not opts.node:
            raise
        pod = None
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


def match_pod_dirs(entries: Sequence[nodefetch.Entry], namespace: str, pod: str) -> list[str]:
    """The UIDs of NS_POD_UID directories of this pod (namespaces and pod names never hold ``_``)."""
    uids = []
    for entry in entries:
        parts = entry.name.split("_")
        if entry.is_dir and len(parts) == 3 and parts[0] == namespace and parts[1] == pod and parts[2]:
            uids.append(parts[2])
    return sorted(uids)


# ---------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class InstancePlan:
    container: str
    instance: crilog.Instance
    paths: tuple[str, ...]  # relative to the output directory, reading order
    decoded: str  # file name in the output directory


@dataclass(frozen=True)
class ContainerPlan:
    container: str
    instances: tuple[InstancePlan, ...]
    skipped: tuple[crilog.Skipped, ...] = ()


def plan_container(
    node: str, pod_dir: str, container: str, files: Sequence[str], docker_ids: Mapping[str, int]
) -> ContainerPlan:
    """Which copied files (paths relative to the node folder) make which decoded file, in reading order.

    ``files`` are every copied file; those of ``container`` are its directory's and, on Docker nodes, the
    ``ID-json.log*`` of its container IDs (``docker_ids``: ID -> restart)."""
    by_name: dict[str, str] = {}
    prefix = f"{pod_dir}/{container}/"
    for rel in files:
        if rel.startswith(prefix) and "/" not in rel[len(prefix):]:
            by_name[rel[len(prefix):]] = rel
        parts = rel.split("/")
        if len(parts) == 4 and parts[:2] == [nodefetch.DOCKER_SUBDIR, "containers"] and parts[2] in docker_ids:
            by_name[parts[3]] = rel
    plan = crilog.plan_container_logs(by_name, docker_ids)
    instances = tuple(
        InstancePlan(
            container,
            instance,
            tuple(f"{node}/{by_name[name]}" for name in instance.files),
            f"{container}_{instance.label[:12]}.txt",
        )
        for instance in plan.instances
    )
    return ContainerPlan(container, instances, plan.skipped)


# ---------------------------------------------------------------------------------------------- running


@dataclass
class Progress:
    """What exists locally, so an error or a signal can say what is kept (or remove an empty folder)."""

    out: Path
    created: bool = False


def run(kube: KubeApi, opts: NodeLogsOptions, talk: Talk) -> int:
    progress = Progress(Path(opts.output_dir))
    try:
        with nodefetch.stop_signals_raise():
            return _run(kube, opts, talk, progress)
    except nodefetch.StopRequested as stop:
        _forget_empty(progress)
        copied = _count_files(progress.out) if progress.created else 0
        kept = f"; the {copied} files copied so far are in {progress.out}" if copied else "; nothing was written"
        raise Interrupted(f"stopped by {stop}{kept}", stop.exit_code) from None
    except DebugxError as e:
        _forget_empty(progress)
        copied = _count_files(progress.out) if progress.created and progress.out.is_dir() else 0
        if copied:
            raise DebugxError(f"{e}; the {copied} files copied so far are in {progress.out}", e.code) from None
        raise
    except BaseException:
        _forget_empty(progress)
        raise


def _count_files(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def _forget_empty(progress: Progress) -> None:
    """Remove the output directory we created if no file made it there."""
    if not progress.created or not progress.out.is_dir() or _count_files(progress.out):
        return
    shutil.rmtree(progress.out, ignore_errors=True)


def _run(kube: KubeApi, opts: NodeLogsOptions, talk: Talk, progress: Progress) -> int:
    now = datetime.now(timezone.utc)
    since = since_limit(opts, now)
    namespace = kube.namespace
    target = resolve(kube, opts, namespace)
    selection, note = select_containers(target, opts)
    if note:
        talk.say(note)
    via = choose_via(kube, opts, target, talk)
    source_cm: AbstractContextManager[Any]
    if via == "proxy":
        source_cm = nullcontext(nodefetch.ProxySource(kube, target.node))
        node_pod_name = ""
        unused = [flag for flag, given in (("--pod-namespace", opts.pod_namespace), ("--custom", opts.custom),
                                           ("--profile", opts.profile != "auto")) if given]
        if unused:
            talk.say(f"Note: {', '.join(unused)} only shape the node pod; the node proxy needs none")
    else:
        pod_namespace = opts.pod_namespace or namespace
        profile = DEFAULT_PROFILE if opts.profile == "auto" else opts.profile
        node_pod_name = nodefetch.node_pod_name()
        spec = nodefetch.node_pod_spec(node_pod_name, pod_namespace, target.node, opts.image,
                                       target.runtime == "docker", profile, opts.custom)
        if profile == "restricted":
            talk.warn("the restricted profile runs as non-root, and the node's log files are readable by root "
                      "only (mode 0640): expect permission errors")
        nodefetch.preflight(kube, spec, pod_namespace)
        source_cm = nodefetch.node_pod_session(kube, spec, opts.start_timeout, talk.say, talk.warn)
    logtree.prepare_output_dir(progress.out)
    progress.created = True
    node_dest = progress.out / target.node
    with source_cm as source:
        talk.say(f"Reading /var/log/pods on node {target.node} through {source.where()}")
        pod_dir, uid = find_pod_dir(source, target)
        containers = containers_on_node(source, target, pod_dir, selection, talk)
        node_dest.mkdir(exist_ok=True)
        docker = target.runtime == "docker"
        report = source.fetch(node_dest, pod_dir, containers, whole=selection is None, docker=docker)
        docker_ids = docker_ids_of(target, containers)
        if docker:
            extra = source.fetch_docker(node_dest, sorted(docker_ids))
            report = ExtractReport(report.files + extra.files, report.directories + extra.directories,
                                   report.skipped + extra.skipped)
        notes = list(source.notes)
    if not report.files:
        raise NotFound(f"no log files in /var/log/pods/{pod_dir}/ on node {target.node} for container(s) "
                       f"{', '.join(containers)}")
    results = decode_all(progress.out, target, pod_dir, containers, report, since, opts.raw)
    summary(talk, opts, target, uid, via, node_pod_name, report, results, notes, since)
    return ExitCode.OK


def choose_via(kube: KubeApi, opts: NodeLogsOptions, target: LogTarget, talk: Talk) -> str:
    """--via auto: the node proxy when the user may use it and the kubelet serves /logs/, else a node pod."""
    if opts.via != "auto":
        return opts.via
    allowed = kube.can_i("get", "nodes", "", "proxy")
    if not allowed:
        talk.say("Not allowed to get nodes/proxy: reading the files through a node pod")
        return "pod"
    try:
        available = nodefetch.ProxySource(kube, target.node).handler_available()
    except (ApiError, Forbidden) as e:
        talk.say(f"The node proxy refused ({e}): reading the files through a node pod")
        return "pod"
    if not available:
        talk.say(f"The kubelet on {target.node} does not serve /logs/: reading the files through a node pod")
        return "pod"
    return "proxy"


def find_pod_dir(source: Any, target: LogTarget) -> tuple[str, str]:
    """The pod's directory on the node: the known UID's, or the one NS_POD_* there is."""
    where = f"on node {target.node} ({source.where()})"
    if target.uid:
        return target.pod_dir(), target.uid
    entries = source.list_dir()
    if entries is None:
        raise NotFound(f"no /var/log/pods {where}")
    uids = match_pod_dirs(entries, target.namespace, target.pod)
    if not uids:
        raise NotFound(f"no log directory for pod {target.namespace}/{target.pod} {where}: looked for "
                       f"/var/log/pods/{target.namespace}_{target.pod}_*")
    if len(uids) > 1:
        raise UsageError(f"several log directories of pod {target.namespace}/{target.pod} {where} "
                         f"(UIDs {', '.join(uids)}); choose one with --uid")
    return target.pod_dir(uids[0]), uids[0]


def containers_on_node(
    source: Any, target: LogTarget, pod_dir: str, selection: tuple[str, ...] | None, talk: Talk
) -> list[str]:
    entries = source.list_dir(pod_dir)
    where = f"on node {target.node} ({source.where()})"
    if entries is None:
        raise NotFound(f"no log directory for pod {target.namespace}/{target.pod} {where}: looked for "
                       f"/var/log/pods/{pod_dir}/" + ("" if target.containers else
                                                      " (the pod's containers may have been removed)"))
    present = sorted(e.name for e in entries if e.is_dir)
    if selection is None:
        if not present:
            raise NotFound(f"/var/log/pods/{pod_dir}/ {where} has no container directories")
        return present
    missing = [c for c in selection if c not in present]
    for name in missing:
        talk.warn(f"container {name} has no log directory /var/log/pods/{pod_dir}/{name}/ (not started yet?)")
    chosen = [c for c in selection if c in present]
    if not chosen:
        raise NotFound(f"no log files for container(s) {', '.join(selection)} {where}: looked for "
                       + ", ".join(f"/var/log/pods/{pod_dir}/{c}/" for c in selection))
    return chosen


def docker_ids_of(target: LogTarget, containers: Sequence[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for info in target.containers:
        if info.name in containers:
            ids.update(info.ids)
    return ids


# ---------------------------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class InstanceResult:
    plan: InstancePlan
    report: crilog.DecodeReport
    written: bool  # False with --raw: counted, not written


def decode_all(
    out: Path,
    target: LogTarget,
    pod_dir: str,
    containers: Sequence[str],
    report: ExtractReport,
    since: datetime | None,
    raw: bool,
) -> list[tuple[ContainerPlan, list[InstanceResult]]]:
    files = [f.path for f in report.files]
    results = []
    for container in containers:
        ids = docker_ids_of(target, [container])
        plan = plan_container(target.node, pod_dir, container, files, ids)
        done = []
        for instance in plan.instances:
            paths = [out / p for p in instance.paths]
            with _decoded_file(out, instance.decoded, raw) as text:
                decoded = crilog.decode_instance(paths, text, since)
            done.append(InstanceResult(instance, decoded, not raw))
        results.append((plan, done))
    return results


@contextmanager
def _decoded_file(out: Path, name: str, raw: bool) -> Iterator[Any]:
    if raw:
        with open(os.devnull, "w", encoding="utf-8", newline="") as sink:
            yield sink
        return
    with (out / name).open("x", encoding="utf-8", newline="") as text:
        yield text


# ---------------------------------------------------------------------------------------------- summary


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def summary(
    talk: Talk,
    opts: NodeLogsOptions,
    target: LogTarget,
    uid: str,
    via: str,
    node_pod: str,
    report: ExtractReport,
    results: list[tuple[ContainerPlan, list[InstanceResult]]],
    notes: list[str],
    since: datetime | None,
) -> None:
    total = sum(f.size for f in report.files)
    sizes = {f"{target.node}/{f.path}": f.size for f in report.files}
    how = "the node proxy" if via == "proxy" else f"node pod {node_pod} (deleted)"
    talk.say(f"Copied {len(report.files)} files ({human_size(total)}) of pod {target.namespace}/{target.pod} "
             f"(uid {uid}) from node {target.node} through {how} into {opts.output_dir}")
    containers_json = []
    for plan, done in results:
        instances_json = []
        for result in done:
            r = result.report
            restart = result.plan.instance.restart
            label = f"restart {restart}" if restart is not None else f"id {result.plan.instance.label[:12]}"
            extras = [f"{r.stderr_lines} stderr"]
            if r.unterminated:
                extras.append(f"{r.unterminated} unterminated")
            if r.malformed:
                extras.append(f"{r.malformed} malformed")
            if since is not None:
                extras.append(f"{r.before_since} before --since")
            size = sum(sizes.get(p, 0) for p in result.plan.paths)
            into = f" -> {result.plan.decoded}" if result.written else ""
            talk.say(f"  {plan.container} {label}: {len(result.plan.paths)} files, {human_size(size)}, "
                     f"{r.lines} lines ({', '.join(extras)}){into}")
            for path, file_report in zip(result.plan.paths, r.files, strict=False):
                line = f"      {path}  {human_size(file_report.size)}  {file_report.records} records"
                for extra in (file_report.note, file_report.error):
                    if extra:
                        line += f"  ({extra})"
                if file_report.malformed:
                    shown = ", ".join(str(n) for n in file_report.malformed[:5])
                    line += f"  (malformed lines: {shown}{', ...' if len(file_report.malformed) > 5 else ''})"
                talk.say(line)
            instances_json.append({
                "restart": restart,
                "containerID": None if restart is not None else result.plan.instance.container_id,
                "decoded": result.plan.decoded if result.written else None,
                "lines": r.lines, "stderrLines": r.stderr_lines, "unterminated": r.unterminated,
                "malformed": r.malformed, "beforeSince": r.before_since,
                "files": [{"path": p, "size": f.size, "records": f.records, "note": f.note, "error": f.error}
                          for p, f in zip(result.plan.paths, r.files, strict=False)],
            })
        if not done:
            talk.say(f"  {plan.container}: no log files")
        for skipped in plan.skipped:
            talk.say(f"  {plan.container}: skipped {skipped.name} ({skipped.reason})")
        containers_json.append({"name": plan.container, "instances": instances_json,
                                "skipped": [{"name": s.name, "reason": s.reason} for s in plan.skipped]})
    for member in report.skipped:
        talk.say(f"  skipped {member.name}: {member.reason}")
    for note in notes:
        talk.say(f"Note: {note}")
    talk.record(
        pod=target.pod, namespace=target.namespace, node=target.node, uid=uid, static=target.static,
        via=via, nodePod=node_pod or None, outputDir=opts.output_dir, raw=opts.raw,
        since=since.isoformat() if since else None, files=len(report.files), bytes=total,
        containers=containers_json,
        skipped=[{"name": s.name, "reason": s.reason} for s in report.skipped],
    )
