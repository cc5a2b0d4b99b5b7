"""`gc`: find what earlier runs left in the cluster, stop our tools, delete our node pods, print a table.

What counts as ours, and nothing else is touched:
- node pods: our label (app.kubernetes.io/managed-by=kubectl-debugx) AND our name prefix (specs.node_pod);
- node Jobs (nodelogs' node pod run as a Job, specs.node_job): the same label and prefix; deleted with
  propagationPolicy Background, so their pods go too (they are not listed on their own);
- debug containers: ephemeral containers with our name prefix running our bounded sleep
  (specs.is_debug_container); they cannot be removed from a pod, so they are listed with the TTL they have left;
- tools: the processes our records name inside those containers (specs.PID_GLOB: PID and start time written
  by the tool's own process), never a process found by its name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from kubectl_debugx.errors import DebugxError, RemoteFailed
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote import process, specs
from kubectl_debugx.talk import Talk, plural

MANAGED = f"{specs.MANAGED_BY_LABEL}={specs.MANAGED_BY}"
EPHEMERAL_NOTE = ("ephemeral containers cannot be removed from a pod: each debug container stays in the pod's "
                  "spec and ends by itself when its TTL runs out")


@dataclass(frozen=True)
class GcOptions:
    all_namespaces: bool = False
    dry_run: bool = False
    stop_idle: bool = False  # end the sleep of our idle debug containers now (they show Terminated)


@dataclass
class Found:
    """One row of the table (and one item of the summary's `found`)."""

    namespace: str
    pod: str
    container: str
    kind: str  # node-job, node-pod, debug-container, tool
    status: str
    action: str
    process: str | None = None  # tools: the tool's name
    pid: int | None = None  # tools: its PID in the container
    ttlSeconds: int | None = None  # noqa: N815 - debug containers: seconds left (the summary's camelCase)


def is_node_pod(pod: Mapping[str, Any]) -> bool:
    """Ours (a node pod, or a node Job: the same test)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (labels.get(specs.MANAGED_BY_LABEL) == specs.MANAGED_BY
            and str(meta.get("name", "")).startswith(specs.NAME_PREFIX))


def debug_containers(pod: Mapping[str, Any], now: float) -> list[tuple[str, str, int | None]]:
    """(name, status, seconds left) of each of our debug containers in the pod."""
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []}
    out: list[tuple[str, str, int | None]] = []
    for container in (pod.get("spec") or {}).get("ephemeralContainers") or []:
        if not specs.is_debug_container(container):
            continue
        state = (statuses.get(container["name"]) or {}).get("state") or {}
        if "running" in state:
            left = max(0, int(specs.seconds_left(container, state["running"].get("startedAt"), now)))
            out.append((container["name"], "Running", left))
        elif "terminated" in state:
            out.append((container["name"], "Terminated", None))
        else:
            out.append((container["name"], "Waiting", None))
    return out


def job_status(job: Mapping[str, Any]) -> str:
    """Complete or Failed once finished (its condition), else Running while a pod is active, else Pending."""
    status = job.get("status") or {}
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return "Running" if status.get("active") else "Pending"


def _node_jobs(kube: KubeApi, namespace: str | None, talk: Talk) -> list[dict[str, Any]]:
    """Our node Jobs; none when the user may not list jobs (then they cannot have made any: say so)."""
    try:
        jobs = kube.list_objects(*specs.JOBS, namespace, MANAGED)
    except ApiError as e:
        if e.status not in (403, 404):
            raise
        talk.say(f"Note: node Jobs not checked ({e.args[0]})")
        return []
    return [j for j in jobs if is_node_pod(j)]


def _delete(row: Found, problems: list[DebugxError], delete: Callable[[], object]) -> Found:
    try:
        delete()
        row.action = "deleted"
    except DebugxError as e:
        row.action = "delete failed"
        problems.append(e)
    return row


def collect(kube: KubeApi, opts: GcOptions, problems: list[DebugxError], now: float, talk: Talk) -> list[Found]:
    """Find (and unless dry run, clean) what debugx left; problems are collected, the rest goes on."""
    namespace = None if opts.all_namespaces else kube.namespace
    would = "would " if opts.dry_run else ""
    found: list[Found] = []
    jobs = set()
    for job in _node_jobs(kube, namespace, talk):
        meta = job["metadata"]
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        jobs.add(meta.get("uid"))
        row = Found(ns, name, "-", "node-job", job_status(job), f"{would}delete")
        delete = partial(kube.delete_object, *specs.JOBS, ns, name)
        found.append(row if opts.dry_run else _delete(row, problems, delete))
    for pod in kube.list_pods(namespace):
        meta = pod.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        if is_node_pod(pod):
            if any(ref.get("uid") in jobs for ref in meta.get("ownerReferences") or []):
                continue  # goes with its Job (Background propagation)
            phase = (pod.get("status") or {}).get("phase") or "Unknown"
            row = Found(ns, name, "-", "node-pod", "Terminating" if meta.get("deletionTimestamp") else phase,
                        f"{would}delete")
            found.append(row if opts.dry_run else _delete(row, problems, partial(kube.delete_pod, ns, name)))
            continue
        for container, status, left in debug_containers(pod, now):
            row = Found(ns, name, container, "debug-container", status, "none (ends by its TTL)", ttlSeconds=left)
            found.append(row)
            if status != "Running":
                continue
            try:
                running = process.running_tools(kube, ns, name, container)
                stopped = process.stop_tools(kube, ns, name, container, [r for r, _, _ in running]) if (
                    running and not opts.dry_run) else {}
                if opts.stop_idle:  # idle once its tools are stopped: nothing of a run of ours is in it
                    row.action = f"{would}end" if opts.dry_run else (
                        "ended" if process.end_idle(kube, ns, name, container) else "end failed")
                    if row.action == "end failed":
                        problems.append(RemoteFailed(f"could not end debug container {name}/{container}"))
            except DebugxError as e:
                row.status += " (tools unknown)"
                problems.append(e)
                continue
            for run_id, pid, tool in running:
                action = f"{would}stop" if opts.dry_run else {"stopped": "stopped", "gone": "ended"}.get(
                    stopped.get(run_id, ""), "stop failed")
                if action == "stop failed":
                    problems.append(RemoteFailed(f"could not stop {tool} (pid {pid}) in {name}/{container}"))
                found.append(Found(ns, name, container, "tool", "Running", action, process=tool, pid=pid))
    return found


def _age(seconds: int | None) -> str:
    """kubectl's short durations: 45s, 12m, 3h, 2d."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(found: list[Found], all_namespaces: bool) -> str:
    """kubectl's plain table: upper-case headers, columns three spaces apart; NAMESPACE only with -A."""
    headers = ["POD", "CONTAINER", "KIND", "PROCESS", "STATUS", "TTL", "ACTION"]
    rows = [[f.pod, f.container, f.kind, f"{f.process} (pid {f.pid})" if f.process else "-", f.status,
             _age(f.ttlSeconds), f.action] for f in found]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
        rows = [[f.namespace, *row] for f, row in zip(found, rows, strict=True)]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    return "".join("   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
                   for row in [headers, *rows])


def run(kube: KubeApi, opts: GcOptions, talk: Talk) -> int:
    problems: list[DebugxError] = []
    found = collect(kube, opts, problems, time.time(), talk)
    where = "any namespace" if opts.all_namespaces else f"namespace {kube.namespace}"
    talk.record(found=[asdict(f) for f in found], allNamespaces=opts.all_namespaces, dryRun=opts.dry_run)
    if not found:
        talk.say(f"No debugx leftovers found in {where}.")
    elif talk.json_summary:
        talk.say(table(found, opts.all_namespaces).rstrip("\n"))  # stdout carries the JSON alone
    else:
        talk.out(table(found, opts.all_namespaces))
    if any(f.kind == "debug-container" for f in found):
        talk.say(f"Note: {EPHEMERAL_NOTE}"
                 + ("" if opts.stop_idle else "; gc --stop-idle ends the idle ones now (they show Terminated)"))
    counts = {kind: sum(f.kind == kind for f in found) for kind in ("tool", "node-pod", "node-job")}
    idle = sum(f.action in ("ended", "would end") for f in found)
    jobs = f" and {plural(counts['node-job'], 'node Job')} (with its pods)" if counts["node-job"] else ""
    ended = f", end {plural(idle, 'idle debug container')}" if opts.stop_idle else ""
    if opts.dry_run:
        talk.say(f"Dry run: would stop {plural(counts['tool'], 'tool')}{ended} and delete "
                 f"{plural(counts['node-pod'], 'node pod')}{jobs}; nothing changed")
    elif found:
        done = [f for f in found if f.action in ("stopped", "ended", "deleted")]
        talk.say(f"Stopped {plural(sum(f.kind == 'tool' for f in done), 'tool')}"
                 + (f", ended {plural(sum(f.kind == 'debug-container' for f in done), 'idle debug container')}"
                    if opts.stop_idle else "")
                 + f", deleted {plural(sum(f.kind == 'node-pod' for f in done), 'node pod')} and "
                 f"{plural(sum(f.kind == 'node-job' for f in done), 'node Job')}")
    if problems:
        first = problems[0]
        raise DebugxError(f"gc could not finish: {plural(len(problems), 'problem')}, the first: {first}",
                          first.code)
    return 0
