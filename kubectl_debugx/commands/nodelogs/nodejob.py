"""The node pod run as a batch/v1 Job (``--via pod`` when the user may create and delete jobs).

Why a Job: after a kill -9 of the client the node pod's lease ends its main process (specs.node_pod_lease), but
nothing in Kubernetes deletes a standalone finished pod. A finished Job with ``ttlSecondsAfterFinished: 0`` is
deleted by the TTL-after-finished controller, and its pod by the garbage collector, with nobody of ours alive.
The pod is the same (specs.node_job wraps node_pod_spec's), so are the lease, the exec'd reads and the summary.

The Job's pod is named by the Job controller: it is found by the Job's `controller-uid` label (set by the Job
controller on its pods since batch/v1, next to batch.kubernetes.io/controller-uid since 1.27: recordings
20-create-job-once, 20-list-pods-job-once). At the end the Job is deleted with propagationPolicy Background: the
API's default for batch/v1 Jobs is Orphan, which would keep the pod.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any

from kubectl_debugx.commands.nodelogs import pod as nodepod
from kubectl_debugx.commands.nodelogs.pod import NodePodRecord, PodSource, Say
from kubectl_debugx.errors import NotReady, RemoteFailed
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.remote import specs
from kubectl_debugx.remote.streamrun import StopState, catch_stop_signals

JOBS = specs.JOBS
# The Job's deadline before the lease is held: the wait for its pod to run (start_timeout) and this margin for
# the lease exec and a slow API server.
START_MARGIN = 30
POLL = 0.5  # seconds between two looks for the Job's pod (list pods; watching would need one more permission)


def job_pods(kube: KubeApi, namespace: str, job_uid: str) -> list[dict[str, Any]]:
    return kube.list_pods(namespace, f"controller-uid={job_uid}")


def find_pod(kube: KubeApi, namespace: str, name: str, job_uid: str, timeout: float) -> dict[str, Any]:
    """The Job's pod, once its controller has made it."""
    deadline = time.monotonic() + timeout
    while True:
        found = job_pods(kube, namespace, job_uid)
        if found:
            return found[0]
        if time.monotonic() >= deadline:
            raise NotReady(f"Job {namespace}/{name} made no pod within {int(timeout)}s; see why with: "
                           f"kubectl describe job -n {namespace} {name}")
        time.sleep(POLL)


@contextmanager
def node_job_session(
    kube: KubeApi, pod: Mapping[str, Any], start_timeout: float, say: Say, warn: Say
) -> Iterator[PodSource]:
    """node_pod_session's twin: create the Job, wait until its pod runs, take the lease, yield a source reading
    through the pod; delete the Job (and so its pod) and wait until the pod is gone on every way out.

    The Job lives `start_timeout` + START_MARGIN seconds until the lease is held, then gets the pod's full
    deadline: a kill -9 while the image is pulled (or one that never arrives) ends it then."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    record = NodePodRecord(namespace, name)
    job_uid = ""
    attempted = False
    lease = None
    try:
        say(f"Creating node pod {namespace}/{name} as a Job on node {pod['spec']['nodeName']} "
            f"(image {pod['spec']['containers'][0]['image']})")
        started = time.monotonic()
        attempted = True  # from here on, a signal or a lost answer may leave a Job of ours: delete it by name
        try:
            deadline = int(start_timeout) + START_MARGIN
            created = kube.create_object(*JOBS, namespace, specs.node_job(pod, deadline))
        except ApiError as e:  # the server answered that it created nothing (a Job of that name is not ours)
            attempted = False
            raise nodepod.refusal(e, namespace) from None
        job_uid = str((created.get("metadata") or {}).get("uid") or "")
        found = find_pod(kube, namespace, name, job_uid, start_timeout)
        record.name, record.created = found["metadata"]["name"], True
        record.uid = str(found["metadata"].get("uid") or "")
        # The lease, as in node_pod_session: if we die, the main process ends, the Job finishes and goes.
        lease = nodepod.take_lease(kube, found, max(1.0, start_timeout - (time.monotonic() - started)))
        try:
            kube.patch_object(*JOBS, namespace, name, specs.job_deadline_patch(pod))
        except ApiError as e:  # the Job would end the pod mid-read at its start deadline
            raise RemoteFailed(f"cannot give Job {namespace}/{name} its full deadline: {e.args[0]}") from None
        yield PodSource(kube, namespace, record.name, record)
    finally:
        if attempted:
            with catch_stop_signals(StopState()):
                remove_node_job(kube, namespace, name, job_uid, say, warn)
                if lease is not None:
                    lease.close()


def remove_node_job(kube: KubeApi, namespace: str, name: str, job_uid: str, say: Say, warn: Say) -> bool:
    """Delete the Job with its pod (Background) and wait until the pod is gone; on failure say what to run."""
    try:
        pods = [(p["metadata"]["name"], str(p["metadata"].get("uid") or ""))
                for p in (job_pods(kube, namespace, job_uid) if job_uid else [])]
    except Exception:  # noqa: BLE001 - the Job's deletion matters; the wait for its pod is a courtesy
        pods = []
    names = ", ".join(pod for pod, _ in pods)
    done = f"Deleted node pod {namespace}/{names} and its Job {name}" if names else \
        f"Deleted node pod Job {namespace}/{name}"
    return nodepod.remove(kube, namespace, f"node pod Job {namespace}/{name}",
                          partial(kube.delete_object, *JOBS, namespace, name),
                          f"kubectl delete job -n {namespace} {name}", pods, done, say, warn)
