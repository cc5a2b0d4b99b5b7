"""nodelogs: a pod's log files exactly as its node keeps them, copied to a local folder and decoded.

Complete → Validate → Run, as capture does: the CLI builds a frozen :class:`NodeLogsOptions`,
:func:`validate` and :func:`check_output_dir` need no cluster (:mod:`.target`), and :func:`run` resolves the
pod, picks the way to the node (:mod:`.proxy`: the node proxy, or :mod:`.pod`: a node pod), copies the files
and decodes them (:mod:`.report`, with :mod:`crilog`).

Output under ``-o DIR``::

    DIR/NODE/NS_POD_UID/CONTAINER/N.log[.YYYYMMDD-HHMMSS[.gz]]   the files as the node has them
    DIR/NODE/docker/containers/ID/ID-json.log.N                Docker's rotated files (Docker nodes, --via pod;
                                                               the live one is N.log: commands/nodelogs/dockerfiles.py)
    DIR/CONTAINER_N.txt                                        one decoded file per container instance

Node names and container names cannot hold ``_``, so a decoded file never collides with a node folder.

SIGINT and SIGTERM raise :class:`StopRequested` (remote/streamrun.py documents the one signal model): the
node pod (or its Job: :mod:`.nodejob`) is deleted on the way out, and the exit status is 130 or 143.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubectl_debugx.commands.nodelogs import dockerfiles, nodejob
from kubectl_debugx.commands.nodelogs import pod as nodepod
from kubectl_debugx.commands.nodelogs.proxy import ProxySource
from kubectl_debugx.commands.nodelogs.report import (
    ContainerPlan,
    InstancePlan,
    InstanceResult,
    decode_all,
    human_size,
    plan_container,
    summary,
)
from kubectl_debugx.commands.nodelogs.target import (
    DEFAULT_IMAGE,
    DEFAULT_PROFILE,
    VIAS,
    ContainerInfo,
    LogTarget,
    NodeLogsOptions,
    check_output_dir,
    docker_ids_of,
    match_pod_dirs,
    parse_since_time,
    pod_containers,
    pod_runtime,
    pod_uid,
    resolve,
    select_containers,
    since_limit,
    target_from,
    validate,
)
from kubectl_debugx.errors import DebugxError, ExitCode, Forbidden, Interrupted, NotFound, UsageError
from kubectl_debugx.formats import logtree
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote.streamrun import StopRequested, stop_signals_raise
from kubectl_debugx.talk import Talk

__all__ = [
    "DEFAULT_IMAGE", "DEFAULT_PROFILE", "VIAS", "ContainerInfo", "ContainerPlan", "InstancePlan", "InstanceResult",
    "LogTarget", "NodeLogsOptions", "check_output_dir", "choose_via", "human_size", "parse_since_time",
    "plan_container", "pod_containers", "pod_runtime", "pod_uid", "run", "select_containers", "since_limit",
    "summary", "target_from", "validate",
]


# ---------------------------------------------------------------------------------------------- running


@dataclass
class Progress:
    """What exists locally, so an error or a signal can say what is kept (or remove an empty folder)."""

    out: Path
    created: bool = False


def run(kube: KubeApi, opts: NodeLogsOptions, talk: Talk) -> int:
    progress = Progress(Path(opts.output_dir))
    try:
        with stop_signals_raise():
            return _run(kube, opts, talk, progress)
    except StopRequested as stop:
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
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    since = since_limit(opts, now)
    namespace = kube.namespace
    target = resolve(kube, opts, namespace)
    selection, note = select_containers(target, opts)
    if note:
        talk.say(note)
    via = choose_via(kube, opts, target, talk)
    route = None
    if via == "proxy" and opts.via == "auto" and target.runtime == "docker":
        route = _docker_node_pod(kube, opts, target, talk)
        via = "proxy" if route is None else "pod"
    source_cm: AbstractContextManager[Any]
    if via == "proxy":
        source_cm = nullcontext(ProxySource(kube, target.node))
        node_pod_name = ""
        unused = [flag for flag, given in (("--pod-namespace", opts.pod_namespace), ("--custom", opts.custom),
                                           ("--profile", opts.profile != "auto")) if given]
        if unused:
            talk.say(f"Note: {', '.join(unused)} only shape the node pod; the node proxy needs none")
    else:
        pod_namespace = opts.pod_namespace or namespace
        profile = DEFAULT_PROFILE if opts.profile == "auto" else opts.profile
        node_pod_name = nodepod.node_pod_name()
        spec = nodepod.node_pod_spec(node_pod_name, pod_namespace, target.node, opts.image,
                                       target.runtime == "docker", profile, opts.custom)
        if profile == "restricted":
            talk.warn("the restricted profile runs as non-root, and the node's log files are readable by root "
                      "only (mode 0640): expect permission errors")
        route = route or nodepod.preflight(kube, spec, pod_namespace, target.pod)
        talk.say(route.why)
        session = nodejob.node_job_session if route.as_job else nodepod.node_pod_session
        source_cm = session(kube, spec, opts.start_timeout, talk.say, talk.warn)
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
        linked = {c: ids for c, ids in dockerfiles.linked_ids(report, pod_dir).items() if c in containers}
        if docker:
            for ids in linked.values():
                docker_ids.update(ids)
            extra = source.fetch_docker(node_dest, sorted(docker_ids))
            report = dockerfiles.place_live_files(node_dest, dockerfiles.merged(report, extra), pod_dir, linked)
        notes = list(source.notes)
        if via != "proxy":
            node_pod_name = source.name  # a Job's pod is named by the Job controller
    if not report.files:
        raise NotFound(f"no log files in /var/log/pods/{pod_dir}/ on node {target.node} for container(s) "
                       f"{', '.join(containers)}")
    results = decode_all(progress.out, target, pod_dir, containers, report, since, opts.raw, linked)
    summary(talk, opts, target, uid, via, node_pod_name, report, results, notes, since,
            elapsed=time.monotonic() - started)
    return ExitCode.OK


def _docker_node_pod(kube: KubeApi, opts: NodeLogsOptions, target: LogTarget, talk: Talk) -> nodepod.Route | None:
    """--via auto on a Docker node: Docker's rotated files are outside /var/log, which the node proxy serves
    (recordings 30-docker-e06: 3,388 of 15,592 lines; e07, through a node pod: all). A node pod when it would be
    allowed (its preflight, creating nothing), else the proxy, whose note says what is missing."""
    namespace = opts.pod_namespace or kube.namespace
    profile = DEFAULT_PROFILE if opts.profile == "auto" else opts.profile
    spec = nodepod.node_pod_spec("debugx-nodelogs-preflight", namespace, target.node, opts.image, True, profile,
                                 opts.custom)
    try:
        route = nodepod.preflight(kube, spec, namespace, target.pod)
    except (DebugxError, ApiError) as e:
        talk.say(f"Docker node: its rotated log files need a node pod, which is not possible ({e}): reading "
                 "the live files through the node proxy")
        return None
    talk.say(f"Docker node {target.node}: its rotated log files are outside /var/log, which the node proxy "
             "serves: reading through a node pod")
    return route


def choose_via(kube: KubeApi, opts: NodeLogsOptions, target: LogTarget, talk: Talk) -> str:
    """--via auto: the node proxy when the user may use it and the kubelet serves /logs/, else a node pod."""
    if opts.via != "auto":
        return opts.via
    allowed = kube.can_i("get", "nodes", "", "proxy")
    if not allowed:
        talk.say("Not allowed to get nodes/proxy: reading the files through a node pod")
        return "pod"
    try:
        available = ProxySource(kube, target.node).handler_available()
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
