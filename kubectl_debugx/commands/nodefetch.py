"""Reading a node's pod log directories: through the API server's node proxy, or from a short-lived node pod.

Both sources answer the same three questions, so the nodelogs workflow does not care which one it has:

- ``list_dir(rel)``: the entries of ``/var/log/pods/REL`` (None when it does not exist);
- ``fetch(dest, pod_dir, containers)``: copy ``/var/log/pods/POD_DIR/CONTAINER/*`` to ``dest/POD_DIR/...``
  byte for byte, never writing outside ``dest``;
- ``fetch_docker(dest, ids)``: Docker's ``ID-json.log*`` files (node pod only: the kubelet's ``/logs/``
  serves /var/log and nothing else).

Proxy (``--via proxy``): the kubelet's ``/logs/`` handler is Go's http.FileServer over /var/log
(docs/kubernetes-facts.md; tests/cluster/recordings/10-nodeproxy-*, logs/4*-nodeproxy-*): directories come
back as an HTML listing of relative hrefs, files as their raw bytes (``.gz`` as ``application/gzip`` without
Content-Encoding). It needs get on nodes/proxy and creates nothing.

Pod (``--via pod``): a pod pinned to the node, mounting /var/log/pods (and /var/lib/docker/containers on
Docker nodes) read-only; listings come from ``ls`` and the files from ``tar -c`` streamed back over exec
into :func:`logtree.extract_tar_stream`. :func:`node_pod_session` deletes the pod on every way out and
waits until it is gone.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote, unquote

from kubectl_debugx.errors import Forbidden, NotFound, NotReady, RemoteFailed, UsageError
from kubectl_debugx.formats import logtree
from kubectl_debugx.formats.logtree import ExtractedFile, ExtractReport, SkippedMember
from kubectl_debugx.kube import pods
from kubectl_debugx.kube.client import ApiError, KubeApi
from kubectl_debugx.kube.execstream import ExecOutcome, pump
from kubectl_debugx.remote import profiles, specs
from kubectl_debugx.remote.streamrun import (  # noqa: F401 - StopRequested, stop_signals_raise: nodelogs' run
    StopRequested,
    StopState,
    catch_stop_signals,
    raise_if_noted,
    stop_signals_raise,
)

PODS_DIR = "/var/log/pods"
DOCKER_DIR = "/var/lib/docker/containers"
NODE_CONTAINER = "debugger"
NODE_POD_TTL = 1800  # the node pod's bounded sleep, in seconds
NODE_POD_DEADLINE = NODE_POD_TTL + 60  # activeDeadlineSeconds: the safety net if the sleep does not end it
DELETE_TIMEOUT = 60.0  # seconds to wait for the node pod to be gone
DOCKER_SUBDIR = "docker"  # local folder (beside the pod directory) for Docker's ID-json.log* files
_CHUNK = 1 << 16
_STDERR_KEEP = 8192

Say = Callable[[str], None]


@dataclass(frozen=True)
class Entry:
    """One entry of a node directory listing."""

    name: str
    is_dir: bool


# ---------------------------------------------------------------------------------------------- listings


_HREF = re.compile(r'<a href="([^"]*)"')


def parse_listing(text: str) -> tuple[list[Entry], list[str]]:
    """Entries of a Go http.FileServer directory listing, and the hrefs refused.

    Go writes ``<a href="URL">NAME</a>`` with the name percent-encoded (``./`` first when it holds a colon)
    and HTML-escaped; a directory's href ends with ``/``. Anything that is not one plain name in this
    directory (``..``, a slash inside, an absolute URL, NUL or backslash) is refused, never followed.
    """
    entries: list[Entry] = []
    refused: list[str] = []
    for match in _HREF.finditer(text):
        href = html.unescape(match.group(1))
        name = unquote(href)
        name = name[2:] if name.startswith("./") else name
        is_dir = name.endswith("/")
        name = name[:-1] if is_dir else name
        if not _plain_name(name) or "?" in href or "#" in href:
            refused.append(href)
            continue
        entries.append(Entry(name, is_dir))
    return entries, refused


def parse_ls(text: str) -> tuple[list[Entry], list[str]]:
    """Entries of ``ls -1Ap`` output (directories end with ``/``), and the lines refused."""
    entries: list[Entry] = []
    refused: list[str] = []
    for line in text.splitlines():
        if not line:
            continue
        is_dir = line.endswith("/")
        name = line[:-1] if is_dir else line
        if _plain_name(name):
            entries.append(Entry(name, is_dir))
        else:
            refused.append(line)
    return entries, refused


def _plain_name(name: str) -> bool:
    if not name or name in (".", ".."):
        return False
    try:
        return len(logtree.member_parts(name)) == 1
    except logtree.UnsafeMemberError:
        return False


def proxy_path(*parts: str, directory: bool = False) -> str:
    """The node-proxy path of /var/log/pods/PARTS (each part percent-encoded)."""
    path = "logs/pods/" + "/".join(quote(part, safe="") for part in parts)
    if directory and not path.endswith("/"):
        path += "/"
    return path


# ---------------------------------------------------------------------------------------------- proxy


class ProxySource:
    """The node's /var/log/pods through ``/api/v1/nodes/NODE/proxy/logs/pods/``."""

    via = "proxy"

    def __init__(self, kube: KubeApi, node: str) -> None:
        self.kube = kube
        self.node = node
        self.notes: list[str] = []

    def where(self) -> str:
        return f"the node proxy of {self.node}"

    def _get(self, path: str) -> Any:
        try:
            return self.kube.node_proxy_get(self.node, path)
        except ApiError as e:
            if e.status == 403:
                raise Forbidden(f"{e.args[0]} (--via proxy needs get on nodes/proxy; --via pod reads the "
                                "files from a node pod instead)") from None
            raise

    def handler_available(self) -> bool:
        """Whether the kubelet serves /logs/pods/ (enableSystemLogHandler, on by default)."""
        try:
            response = self._get(proxy_path(directory=True))
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        # Read the (small) listing: a connection returned to the pool with unread bytes breaks the next
        # request on it (http.client's ResponseNotReady).
        try:
            response.read(decode_content=False)
        finally:
            response.release_conn()
        return True

    def list_dir(self, *parts: str) -> list[Entry] | None:
        try:
            response = self._get(proxy_path(*parts, directory=True))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        try:
            content_type = response.headers.get("content-type", "")
            body = response.read(decode_content=False)
        finally:
            response.release_conn()
        if not content_type.startswith("text/html"):
            return None  # a file, not a directory
        entries, refused = parse_listing(body.decode("utf-8", "replace"))
        self.notes.extend(f"ignored listing entry {href!r} in /var/log/pods/{'/'.join(parts)}"
                          for href in refused)
        return entries

    def fetch(
        self, dest: Path, pod_dir: str, containers: Sequence[str], whole: bool = False, docker: bool = False
    ) -> ExtractReport:
        """Copy each container's directory, file by file. Docker's 0.log symlinks come as their target's
        content: the kubelet's file server follows them."""
        files: list[ExtractedFile] = []
        directories: list[str] = []
        skipped: list[SkippedMember] = []
        for container in containers:
            seen: set[str] = set()
            # A second listing picks up what rotation renamed or compressed while we copied.
            for _ in range(2):
                entries = self.list_dir(pod_dir, container)
                if entries is None:
                    break
                if not seen:
                    logtree._make_dirs(dest, (pod_dir, container), f"{pod_dir}/{container}")
                    directories.append(f"{pod_dir}/{container}")
                fresh = [e for e in entries if e.name not in seen]
                if not fresh:
                    break
                for entry in fresh:
                    seen.add(entry.name)
                    rel = f"{pod_dir}/{container}/{entry.name}"
                    if entry.is_dir:
                        skipped.append(SkippedMember(rel, "a directory inside a container log directory"))
                        continue
                    size = self._fetch_file(dest, (pod_dir, container, entry.name))
                    if size is None:
                        skipped.append(SkippedMember(rel, "gone before it could be copied (rotated away)"))
                    else:
                        files.append(ExtractedFile(rel, size))
        return ExtractReport(tuple(files), tuple(directories), tuple(skipped))

    def _fetch_file(self, dest: Path, parts: tuple[str, str, str]) -> int | None:
        member = "/".join(parts)
        try:
            response = self._get(proxy_path(*parts))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        try:
            mtime = _last_modified(response.headers.get("last-modified"))
            parent = logtree._make_dirs(dest, parts[:-1], member)
            return logtree._write_file(parent / parts[-1], cast(IO[bytes], _RawBody(response)), 0o640, mtime, member)
        except BaseException:
            response.close()  # unread bytes must not go back to the pool with the connection
            raise
        finally:
            response.release_conn()

    def fetch_docker(self, dest: Path, ids: Sequence[str]) -> ExtractReport:
        if ids:
            self.notes.append("through the node proxy only each Docker container's current log file comes "
                              "(as N.log); its rotated -json.log.N files need --via pod")
        return ExtractReport((), (), ())


class _RawBody:
    """The response body exactly as sent: urllib3 would otherwise undo a Content-Encoding."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def read(self, size: int = -1) -> bytes:
        return bytes(self.response.read(None if size < 0 else size, decode_content=False))


def _last_modified(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------- node pod


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
                         ["sleep", str(NODE_POD_TTL)])
    pod = profiles.apply_to_node_pod(profile, pod, NODE_CONTAINER)
    if custom:
        containers = pod["spec"]["containers"]
        containers[0] = profiles.merge_custom(containers[0], custom)
    return pod


def node_pod_name() -> str:
    return f"{specs.NAME_PREFIX}nodelogs-{specs.random_suffix()}"


PSA_HINT = ("Use --pod-namespace with a namespace whose Pod Security level is privileged (e.g. kube-system), "
            "or --via proxy (needs get on nodes/proxy)")


def preflight(kube: KubeApi, pod: Mapping[str, Any], namespace: str) -> None:
    """Refuse, before anything exists, a node pod that RBAC or Pod Security would refuse."""
    needs = (("create", "pods", ""), ("get", "pods", "exec"), ("delete", "pods", ""))
    for verb, resource, sub in needs:
        if kube.can_i(verb, resource, namespace, sub) is False:
            what = f"{resource}/{sub}" if sub else resource
            raise Forbidden(f"you may not {verb} {what} in namespace {namespace}, which the node pod needs "
                            "(create pods, get pods/exec, delete pods); nothing was created. Use "
                            "--pod-namespace with a namespace where you may, or --via proxy")
    try:
        kube.create_pod(namespace, pod, dry_run=True)
    except ApiError as e:
        raise _refusal(e, namespace) from None


def _refusal(error: ApiError, namespace: str) -> Exception:
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


def wait_running(kube: KubeApi, pod: Mapping[str, Any], timeout: float) -> None:
    """Wait until the node pod's container runs; one clear NotReady when it cannot or does not."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    node = pod["spec"].get("nodeName", "")
    image = pod["spec"]["containers"][0].get("image", "")
    last = _node_pod_state(pod, image)
    if last == "running":
        return

    def running(event: Mapping[str, Any]) -> bool:
        nonlocal last
        last = _node_pod_state(event, image)
        return last == "running"

    def deleted() -> Exception:
        return NotReady(f"node pod {namespace}/{name} was deleted before it started")

    if not pods.wait_for_pod(kube, namespace, pod, timeout, running, deleted):
        raise NotReady(f"node pod {namespace}/{name} did not start on node {node} within {int(timeout)}s"
                       + (f" (last state: {last})" if last else "")
                       + "; is the node Ready and the image pullable?")


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
    try:
        say(f"Creating node pod {namespace}/{name} on node {pod['spec']['nodeName']} "
            f"(image {pod['spec']['containers'][0]['image']})")
        attempted = True
        try:
            created = kube.create_pod(namespace, pod)
        except ApiError as e:
            # The server answered that it created nothing: a pod of that name (AlreadyExists) is not ours.
            attempted = False
            raise _refusal(e, namespace) from None
        record.created = True
        record.uid = str((created.get("metadata") or {}).get("uid") or "")
        wait_running(kube, created, start_timeout)
        yield PodSource(kube, namespace, name, record)
    finally:
        if attempted:
            # A second Ctrl-C must not stop the deletion half-way: signals are only noted from here on.
            with catch_stop_signals(StopState()):
                remove_node_pod(kube, namespace, name, record.uid, say, warn)


def remove_node_pod(kube: KubeApi, namespace: str, name: str, uid: str, say: Say, warn: Say) -> bool:
    """Delete the node pod and wait until it is gone; on failure tell the user what to run."""
    command = f"kubectl delete pod -n {namespace} {name}"
    try:
        kube.delete_pod(namespace, name)
    except ApiError as e:
        if e.status != 404:
            warn(f"could not delete node pod {namespace}/{name}: {e}; delete it with: {command}")
            return False
    except Exception as e:  # noqa: BLE001 - a cleanup failure must be reported, not mask the outcome
        warn(f"could not delete node pod {namespace}/{name}: {e}; delete it with: {command}")
        return False
    try:
        gone = kube.wait_pod_gone(namespace, name, uid or None, time.monotonic() + DELETE_TIMEOUT)
    except Exception as e:  # noqa: BLE001
        warn(f"could not confirm that node pod {namespace}/{name} is gone: {e}; check with: "
             f"kubectl get pod -n {namespace} {name}, and delete it with: {command}")
        return False
    if not gone:
        warn(f"node pod {namespace}/{name} still exists {int(DELETE_TIMEOUT)}s after its deletion; "
             f"delete it with: {command}")
        return False
    say(f"Deleted node pod {namespace}/{name}")
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

    def _open(self, command: list[str]) -> Any:
        try:
            return self.kube.open_exec(self.namespace, self.name, NODE_CONTAINER, command)
        except ApiError as e:
            raise _exec_refusal(e) from None

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
        logtree._make_dirs(dest, (DOCKER_SUBDIR,), DOCKER_SUBDIR)
        members = [f"containers/{name}" for name in names]
        report = self._tar(["tar", "-C", "/host/var/lib/docker", "-cf", "-", *members], target, "refuse")
        return ExtractReport(
            tuple(ExtractedFile(f"{DOCKER_SUBDIR}/{f.path}", f.size) for f in report.files),
            tuple(f"{DOCKER_SUBDIR}/{d}" for d in report.directories),
            report.skipped,
        )

    def _tar(self, command: list[str], dest: Path, outside_links: logtree.OutsideLinks) -> ExtractReport:
        conn = self._open(command)
        try:
            report, error, err, outcome = stream_tar(conn, dest, outside_links)
        finally:
            conn.close()
        said = err.decode("utf-8", "replace").strip()
        if error is not None and not isinstance(error, logtree.ArchiveError):
            raise error  # an unsafe member, or the output cannot be written: that is the news
        if outcome.exit_code is None or (outcome.exit_code != 0 and not _only_changed_while_read(said)):
            raise RemoteFailed(_tool_failure("tar", outcome, said))
        if error is not None or report is None:
            raise error or RemoteFailed("tar sent no archive")
        if said:
            self.notes.extend(f"tar: {line}" for line in said.splitlines()[:5])
        return report


def stream_tar(
    conn: Any, dest: Path, outside_links: logtree.OutsideLinks
) -> tuple[ExtractReport | None, BaseException | None, bytes, ExecOutcome]:
    """Pump an exec stream running ``tar -c`` into :func:`logtree.extract_tar_stream` through a pipe, in
    constant memory: frames are written as they arrive, a thread unpacks them. Returns the extraction
    report (None if it failed), the extraction's error, tar's stderr (its first few KiB) and how tar ended:
    the caller decides which failure to tell."""
    read_fd, write_fd = os.pipe()
    result: dict[str, Any] = {}

    def extract() -> None:
        try:
            with os.fdopen(read_fd, "rb") as reader:
                result["report"] = logtree.extract_tar_stream(reader, dest, outside_links=outside_links)
                while reader.read(_CHUNK):  # tar pads its output: drain it so the writer never blocks
                    pass
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            result["error"] = e

    thread = threading.Thread(target=extract, name="nodelogs-untar", daemon=True)
    thread.start()
    err = bytearray()
    broken = False

    def on_stdout(data: memoryview) -> None:
        nonlocal broken
        view = data
        while view and not broken:
            try:
                written = os.write(write_fd, view)
            except BrokenPipeError:
                broken = True  # the extractor gave up; its error says why. Stop at the next tick.
                return
            view = view[written:]

    def on_stderr(data: bytes) -> None:
        if len(err) < _STDERR_KEEP:
            err.extend(data[: _STDERR_KEEP - len(err)])

    try:
        outcome = pump_deferring_signals(conn, on_stdout, on_stderr, lambda: broken)
    finally:
        os.close(write_fd)
        thread.join()
    return result.get("report"), result.get("error"), bytes(err), outcome


def pump_deferring_signals(
    conn: Any,
    on_stdout: Callable[[memoryview], None],
    on_stderr: Callable[[bytes], None],
    give_up: Callable[[], bool] = lambda: False,
) -> ExecOutcome:
    """execstream.pump, with SIGINT/SIGTERM (and ``give_up()``) acted on between frames, never inside one:
    the signal is noted, and :class:`StopRequested` raised from pump's tick, where no frame buffer is held."""
    state = StopState()

    def tick() -> None:
        raise_if_noted(state)
        if give_up():
            raise BrokenPipeError("the local end stopped reading")

    with catch_stop_signals(state):
        outcome = pump(conn, on_stdout, on_stderr, tick=tick, tick_interval=0.1)
    raise_if_noted(state)
    return outcome


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


def _exec_refusal(error: ApiError) -> Exception:
    if error.status == 403:
        return Forbidden(f"{error.args[0]} (reading through the node pod needs get on pods/exec)")
    return error

