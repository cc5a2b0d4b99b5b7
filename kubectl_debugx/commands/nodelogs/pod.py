"""Reading the node's /var/log/pods from a short-lived node pod (``--via pod``).

A pod pinned to the node, mounting /var/log/pods (and /var/lib/docker/containers on Docker nodes)
read-only; listings come from ``ls`` and the files from ``tar -c`` streamed back over exec into
:func:`logtree.extract_tar_stream` (:mod:`.tarstream`). :func:`node_pod_session` deletes the pod on every way
out (return, error, SIGINT, SIGTERM: see remote/streamrun.py for the signal model) and waits until it is gone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kubectl_debugx.commands.nodelogs.listing import DOCKER_DIR, PODS_DIR, Entry, parse_ls
from kubectl_debugx.commands.nodelogs.tarstream import pump_deferring_signals, stream_tar
from kubectl_debugx.errors import ArchiveError, Forbidden, NotFound, NotReady, RemoteFailed, UsageError
from kubectl_debugx.formats import logtree
from kubectl_debugx.formats.logtree import ExtractedFile, ExtractReport
from kubectl_debugx.kube import pods
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.execstream import ExecOutcome, await_output
from kubectl_debugx.remote import access, profiles, specs
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.process import RemoteProcess
from kubectl_debugx.remote.streamrun import StopState, catch_stop_signals

NODE_CONTAINER = "debugger"
VIA_POD = "nodelogs --via pod"  # its permissions: remote/access.py NEEDS
VIA_JOB = "nodelogs --via pod, as a Job"  # the same and what a Job adds (nodejob.py)
NODE_POD_TTL = 1800  # the node pod's bounded sleep, in seconds
# How long the node pod's main process waits for our lease after it started (specs.node_pod_main): a client
# that dies between creating the pod and taking the lease leaves it running this long at most. The lease is
# asked by exec every LEASE_POLL s from the pod's creation (take_lease), so it is taken within a poll and an
# exec's round trip of the container's start (measured on the lab: bench/nodelogs_kill), not after the ~1 s the
# kubelet takes to report it Running (lab: within 0.3 s of the start). A kill -9 while the pod is created ends
# its main process this long after the container starts (bench/nodelogs_kill on the lab: 5.5 s after the kill
# with 5 s, 5.1 s with 4 s): 3 s keeps that within 5 s (issue 20) and still leaves ten lease round trips.
LEASE_WINDOW = 3
LEASE_POLL = 0.2
NODE_POD_DEADLINE = NODE_POD_TTL + 60  # activeDeadlineSeconds: the safety net if the sleep does not end it
DELETE_TIMEOUT = 60.0  # seconds to wait for the node pod to be gone
DOCKER_SUBDIR = "docker"  # local folder (beside the pod directory) for Docker's ID-json.log* files
Say = Callable[[str], None]


def node_pod_spec(
    name: str,
    namespace: str,
    node: str,
    image: str,
    docker: bool,
    profile: str,
    custom: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The node pod: only the log directories, read-only, a bounded sleep, then `profile` and `custom`."""
    host_paths = {"pod-logs": PODS_DIR}
    if docker:
        host_paths["docker-containers"] = DOCKER_DIR
    pod = specs.node_pod(name, namespace, node, image, host_paths, NODE_POD_DEADLINE,
                         specs.node_pod_main(NODE_POD_TTL, LEASE_WINDOW))
    pod = profiles.apply_to_node_pod(profile, pod, NODE_CONTAINER)
    if custom:
        containers = pod["spec"]["containers"]
        containers[0] = profiles.merge_custom(containers[0], custom)
    return pod


def node_pod_name() -> str:
    return f"{specs.NAME_PREFIX}nodelogs-{specs.random_suffix()}"


PSA_HINT = ("Use --pod-namespace with a namespace whose Pod Security level is privileged (e.g. kube-system), "
            "or --via proxy (needs get on nodes/proxy)")


@dataclass(frozen=True)
class Route:
    """How the node pod runs: as a Job (deleted by Kubernetes once it ends, even if we die) or a plain pod."""

    as_job: bool
    why: str  # one line for the user: which, and why


def preflight(kube: KubeApi, pod: Mapping[str, Any], namespace: str, target_pod: str) -> Route:
    """Refuse, before anything exists, a node pod that RBAC or Pod Security would refuse; every missing
    permission named at once (one batch of reviews, which also asks what a Job needs). Then the route: a Job
    when the user may (its dry run too), else a plain pod; never more than the user may do."""
    answers = access.review(kube, namespace, access.NEEDS[VIA_JOB])
    lacking = [p for p in access.missing(answers) if p in access.NEEDS[VIA_POD]]
    if lacking:
        raise access.lacking_error(VIA_POD, namespace, target_pod, lacking,
                                   "nothing was created. Use --pod-namespace with a namespace where you may, "
                                   "or --via proxy")
    try:
        kube.create_pod(namespace, pod, dry_run=True)
    except ApiError as e:
        raise refusal(e, namespace) from None
    plain = "the node pod is a plain pod, which stays (finished) until `kubectl debugx gc` if this run is killed"
    job_lacks = access.missing(answers)
    if job_lacks:
        return Route(False, f"Not allowed to {access.listed(job_lacks)} in namespace {namespace}: {plain}")
    try:
        kube.create_object(*specs.JOBS, namespace, specs.node_job(pod), dry_run=True)
    except ApiError as e:
        return Route(False, f"The API server refuses the node pod's Job ({e.args[0]}): {plain}")
    return Route(True, "Running the node pod as a Job (ttlSecondsAfterFinished 0): Kubernetes deletes it once "
                       "it ends, even if this run is killed")


def refusal(error: ApiError, namespace: str) -> Exception:
    message = error.args[0]
    if pods.is_pod_security(error):
        return Forbidden(f"Pod Security in namespace {namespace} refuses the node pod, which mounts host "
                         f"directories ({pods.short_psa(message)}); nothing was created. {PSA_HINT}")
    if error.status == 403:
        return Forbidden(f"{message}; nothing was created. Use --pod-namespace or --via proxy")
    if error.status == 404:
        return NotFound(f'namespace "{namespace}" not found (the node pod\'s namespace: --pod-namespace)')
    if error.status in (400, 422):
        return UsageError(f"the API server rejects the node pod: {message}")
    return error


def take_lease(kube: KubeApi, pod: Mapping[str, Any], timeout: float) -> Any:
    """The lease exec (specs.node_pod_lease), opened as soon as the node pod's container runs: asked every
    LEASE_POLL s, since the kubelet answers an exec once the container runs, before the pod's status says so
    (a PLEG relist, ~1 s later); between two tries a look at the pod gives one clear NotReady for a start that
    will never come (an image that cannot be pulled, the pod ended or deleted). Returns the open exec."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    node = pod["spec"].get("nodeName", "")
    image = pod["spec"]["containers"][0].get("image", "")
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            lease = kube.open_exec(namespace, name, NODE_CONTAINER, specs.node_pod_lease(), True)
        except ApiError as e:
            if e.status not in (400, 404, 500):  # not yet running: 500 'container not found', 400 while pending
                raise exec_refusal(e) from None
        else:
            # v5 upgrades an exec into a container that does not run yet, then ends it with an error status
            if await_output(lease, specs.LEASED.encode(), LEASE_WINDOW) is None:
                return lease
            lease.close()
        try:
            current = kube.get_pod(namespace, name)
        except NotFound:
            raise NotReady(f"node pod {namespace}/{name} was deleted before it started") from None
        last = _node_pod_state(current, image)
        if time.monotonic() >= deadline:
            raise NotReady(f"node pod {namespace}/{name} did not start on node {node} within {int(timeout)}s"
                           + (f" (last state: {last})" if last and last != "running" else "")
                           + "; is the node Ready and the image pullable?")
        time.sleep(LEASE_POLL)


def _node_pod_state(pod: Mapping[str, Any], image: str) -> str:
    """'running', or a short description of why not yet; raises when it never will."""
    status = pod.get("status") or {}
    name = pod["metadata"]["name"]
    phase = status.get("phase", "")
    statuses = status.get("containerStatuses") or []
    state = (statuses[0].get("state") or {}) if statuses else {}
    if "running" in state and phase == "Running":
        return "running"
    if phase in ("Failed", "Succeeded") or "terminated" in state:
        terminated = state.get("terminated") or {}
        why = status.get("reason") or terminated.get("reason") or phase
        message = (status.get("message") or terminated.get("message") or "").strip()
        raise NotReady(f"node pod {name} ended before it could be used ({why}"
                       + (f": {message}" if message else "") + ")")
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason", "")
    if reason in pods.STUCK_REASONS:
        message = (waiting.get("message") or "").strip()
        raise NotReady(f'node pod {name} cannot start: image "{image}": {reason}'
                       + (f": {message}" if message else ""))
    if reason:
        return reason
    for condition in status.get("conditions") or []:
        if condition.get("status") == "False" and condition.get("reason"):
            return f"{condition['type']}: {condition['reason']}"
    return phase or "Pending"


@dataclass
class NodePodRecord:
    """What happened to the node pod, for the summary."""

    namespace: str
    name: str
    created: bool = False
    uid: str = ""


@contextmanager
def node_pod_session(
    kube: KubeApi, pod: Mapping[str, Any], start_timeout: float, say: Say, warn: Say
) -> Iterator[PodSource]:
    """Create the node pod, wait until it runs, yield a source reading through it; delete it and wait until
    it is gone on every way out (return, error, SIGINT, SIGTERM). A failed deletion is reported with the
    exact command that finishes the job."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    record = NodePodRecord(namespace, name)
    attempted = False
    lease = None
    try:
        say(f"Creating node pod {namespace}/{name} on node {pod['spec']['nodeName']} "
            f"(image {pod['spec']['containers'][0]['image']})")
        attempted = True
        try:
            created = kube.create_pod(namespace, pod)
        except ApiError as e:
            # The server answered that it created nothing: a pod of that name (AlreadyExists) is not ours.
            attempted = False
            raise refusal(e, namespace) from None
        record.created = True
        record.uid = str((created.get("metadata") or {}).get("uid") or "")
        # Held open, never written, until the pod is deleted: if we die, its stdin's EOF ends the pod's main
        # process (specs.node_pod_lease), so nothing of ours runs on the node after a kill -9.
        lease = take_lease(kube, created, start_timeout)
        yield PodSource(kube, namespace, name, record)
    finally:
        if attempted:
            # A second Ctrl-C must not stop the deletion half-way: signals are only noted from here on.
            with catch_stop_signals(StopState()):
                remove_node_pod(kube, namespace, name, record.uid, say, warn)
                if lease is not None:
                    lease.close()


def remove_node_pod(kube: KubeApi, namespace: str, name: str, uid: str, say: Say, warn: Say) -> bool:
    """Delete the node pod and wait until it is gone; on failure tell the user what to run."""
    return remove(kube, namespace, f"node pod {namespace}/{name}", partial(kube.delete_pod, namespace, name),
                  f"kubectl delete pod -n {namespace} {name}", [(name, uid)], f"Deleted node pod {namespace}/{name}",
                  say, warn)


def remove(kube: KubeApi, namespace: str, what: str, delete: Callable[[], object], command: str,
           pods: Sequence[tuple[str, str]], done: str, say: Say, warn: Say) -> bool:
    """`delete` (the node pod, or its Job) and wait until each of `pods` (name, uid) is gone; on failure tell
    the user what to run (`command`)."""
    try:
        delete()
    except ApiError as e:
        if e.status != 404:
            warn(f"could not delete {what}: {e}; delete it with: {command}")
            return False
    except Exception as e:  # noqa: BLE001 - a cleanup failure must be reported, not mask the outcome
        warn(f"could not delete {what}: {e}; delete it with: {command}")
        return False
    deadline = time.monotonic() + DELETE_TIMEOUT
    for name, uid in pods:
        try:
            gone = kube.wait_pod_gone(namespace, name, uid or None, deadline)
        except Exception as e:  # noqa: BLE001
            warn(f"could not confirm that node pod {namespace}/{name} is gone: {e}; check with: "
                 f"kubectl get pod -n {namespace} {name}, and delete it with: {command}")
            return False
        if not gone:
            warn(f"node pod {namespace}/{name} still exists {int(DELETE_TIMEOUT)}s after its deletion; "
                 f"delete it with: {command}")
            return False
    say(done)
    return True


class PodSource:
    """The node's /var/log/pods (at /host/var/log/pods) in a running node pod, read by exec."""

    via = "pod"

    def __init__(self, kube: KubeApi, namespace: str, name: str, record: NodePodRecord) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.record = record
        self.notes: list[str] = []

    def where(self) -> str:
        return f"node pod {self.namespace}/{self.name}"

    def _open(self, command: list[str], tethered: bool = False) -> Any:
        """An exec of `command`; `tethered`: with stdin open, in specs.tethered_command, so that the command
        ends when we die (kill -9, a lost connection) instead of running on in the node pod."""
        try:
            if tethered:
                target = Target(self.namespace, {"metadata": {"name": self.name, "namespace": self.namespace}},
                                NODE_CONTAINER)
                return RemoteProcess(self.kube, target, NODE_CONTAINER, command[0], command, "KILL").open()
            return self.kube.open_exec(self.namespace, self.name, NODE_CONTAINER, command, False)
        except ApiError as e:
            raise exec_refusal(e) from None

    def run(self, command: list[str]) -> tuple[bytes, bytes, ExecOutcome]:
        """`command` in the node pod: its whole stdout, stderr and outcome."""
        return self._exec(command)

    def _exec(self, command: list[str]) -> tuple[bytes, bytes, ExecOutcome]:
        conn = self._open(command)
        out, err = bytearray(), bytearray()
        try:
            outcome = pump_deferring_signals(conn, out.extend, err.extend)
        finally:
            conn.close()
        return bytes(out), bytes(err), outcome

    def list_dir(self, *parts: str) -> list[Entry] | None:
        path = "/".join(("/host" + PODS_DIR, *parts))
        out, err, outcome = self._exec(["ls", "-1Ap", path + "/"])
        if outcome.exit_code != 0:
            said = err.decode("utf-8", "replace").strip()
            if "No such file" in said or "Not a directory" in said:
                return None
            raise RemoteFailed(_tool_failure("ls", outcome, said))
        entries, refused = parse_ls(out.decode("utf-8", "replace"))
        self.notes.extend(f"ignored listing entry {line!r} in {path}" for line in refused)
        return entries

    def fetch(
        self, dest: Path, pod_dir: str, containers: Sequence[str], whole: bool = False, docker: bool = False
    ) -> ExtractReport:
        """``tar -c`` of the pod directory (or of the chosen container directories) unpacked into ``dest``.
        On Docker nodes N.log is a symlink into /var/lib/docker: reported and skipped (see fetch_docker);
        elsewhere a link out of the tree is refused."""
        members = [pod_dir] if whole else [f"{pod_dir}/{c}" for c in containers]
        command = ["tar", "-C", "/host" + PODS_DIR, "-cf", "-", *members]
        return self._tar(command, dest, "skip" if docker else "refuse")

    def fetch_docker(self, dest: Path, ids: Sequence[str]) -> ExtractReport:
        """Docker's ``ID-json.log*`` files of these container IDs, into ``dest/docker/containers/ID/``."""
        ids = [i for i in ids if re.fullmatch(r"[0-9a-f]{64}", i)]
        if not ids:
            return ExtractReport((), (), ())
        script = ('cd /host' + DOCKER_DIR + ' || exit 3; for id; do for f in "$id/$id"-json.log*; do '
                  '[ -f "$f" ] && echo "$f"; done; done; true')
        out, err, outcome = self._exec(["sh", "-c", script, "sh", *ids])
        if outcome.exit_code != 0:
            raise RemoteFailed(_tool_failure("sh", outcome, err.decode("utf-8", "replace").strip()))
        wanted = re.compile(r"([0-9a-f]{64})/\1-json\.log(\.\d+)?(\.gz)?")
        names = [line for line in out.decode("ascii", "replace").splitlines() if wanted.fullmatch(line)]
        if not names:
            return ExtractReport((), (), ())
        target = dest / DOCKER_SUBDIR
        with logtree.log_tree(dest) as tree:
            tree.makedirs((DOCKER_SUBDIR,), DOCKER_SUBDIR)
        members = [f"containers/{name}" for name in names]
        report = self._tar(["tar", "-C", "/host/var/lib/docker", "-cf", "-", *members], target, "refuse")
        return ExtractReport(
            tuple(ExtractedFile(f"{DOCKER_SUBDIR}/{f.path}", f.size) for f in report.files),
            tuple(f"{DOCKER_SUBDIR}/{d}" for d in report.directories),
            report.skipped,
        )

    def _tar(self, command: list[str], dest: Path, outside_links: logtree.OutsideLinks) -> ExtractReport:
        conn = self._open(command, tethered=True)
        try:
            report, error, err, outcome = stream_tar(conn, dest, outside_links)
        finally:
            conn.close()
        said = err.decode("utf-8", "replace").strip()
        if error is not None and not isinstance(error, ArchiveError):
            raise error  # an unsafe member, or the output cannot be written: that is the news
        if outcome.exit_code is None or (outcome.exit_code != 0 and not _only_changed_while_read(said)):
            raise RemoteFailed(_tool_failure("tar", outcome, said))
        if error is not None or report is None:
            raise error or RemoteFailed("tar sent no archive")
        if said:
            self.notes.extend(f"tar: {line}" for line in said.splitlines()[:5])
        return report


def _only_changed_while_read(said: str) -> bool:
    """GNU tar exits 1 when a live log file grew while it was read: the copy is still a valid prefix."""
    lines = [line for line in said.splitlines() if line.strip()]
    return bool(lines) and all("file changed as we read it" in line for line in lines)


def _tool_failure(tool: str, outcome: ExecOutcome, said: str) -> str:
    if outcome.cut:
        return f"{outcome.message} while {tool} was running in the node pod"
    if "executable file not found" in outcome.message or "not found" in said and tool in said:
        return f"the node pod's image has no {tool}: choose an image with sh, ls and tar with --image"
    if said:
        return f"{tool} failed in the node pod: {said.splitlines()[-1]}"
    return f"{tool} failed in the node pod ({outcome.message or f'exit code {outcome.exit_code}'})"


def exec_refusal(error: ApiError) -> Exception:
    if error.status == 403:
        return Forbidden(f"{error.args[0]} (reading through the node pod needs get on pods/exec)")
    return error
