"""The test cluster's kubelet: pods as real processes in real Linux namespaces (see CONTRACT.md).

The API server owns the Pod objects and calls run_pod / sync_ephemeral / delete_pod / exec; this class owns
processes, namespaces and files under node_root and reports every change of a pod's .status through
on_status, in order, from one dispatcher thread. Namespace and mount work is done by helper processes
(containers.py); CRI log writing by the per-container shim (podlogs.py); image names by images.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import pwd
import queue
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen, TimeoutExpired

from . import containers, dockermode, expansion, images, podlogs
from .containers import HelperError, Holder, Lifeline, NodeNetwork, Shim
from .worker import temp_prefix

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PULL_DELAY = 1.0  # real: 11-15 s until ErrImagePull / ErrImageNeverPull (recordings 08-*); shortened
PULL_BACKOFF_MAX = 10.0
RESTART_BACKOFF_MAX = 5.0  # real: 10 s doubling to 5 min; shortened
LOG_MAX_SIZE = 10 << 20  # kubelet defaults: containerLogMaxSize 10Mi, checked every 10 s
LOG_MONITOR_INTERVAL = 10.0
# A real kubelet removes a deleted pod's log dir ~57 s later (container GC, 32-pod-deletion-log-cleanup); here it
# goes before on_gone() unless a test sets Kubelet.log_gc_delay to keep that window.
LOG_GC_DELAY = 0.0
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


class ContainerNotFound(Exception):
    """No such container in the pod -> API 400 "container X is not valid for pod P"."""


class ContainerNotRunning(Exception):
    """The container exists but is not running -> API 500 'container not found ("X")'."""


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def go_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    return f"{seconds:g}s"


# ---------------------------------------------------------------------------------------------------------
# State


@dataclass
class Instance:
    """One run of a container (one containerID, one N.log)."""

    restart: int
    container_id: str
    log: Path
    started_at: str = ""
    finished_at: str = ""
    link: Path | None = None
    shim: Shim | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    exited: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return self.shim is not None and not self.exited.is_set()

    def terminated(self) -> dict:
        t: dict = {"exitCode": self.exit_code, "reason": self.reason}
        if self.message:
            t["message"] = self.message
        t.update(startedAt=self.started_at or "1970-01-01T00:00:00Z", finishedAt=self.finished_at,
                 containerID=self.container_id)
        return {"terminated": t}


@dataclass
class Ctr:
    """A container of a pod: its spec, the API state and its instances."""

    kind: str  # "init" | "regular" | "ephemeral"
    spec: dict
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    restart_count: int = 0
    current: Instance | None = None
    previous: Instance | None = None
    image_ok: bool = False
    restart_pending: bool = False
    done: bool = False  # no more instances will be started
    thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec["name"]


@dataclass
class Pod:
    namespace: str
    name: str
    uid: str
    spec: dict
    start_time: str
    ctrs: dict[str, Ctr] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    stop: threading.Event = field(default_factory=threading.Event)
    sandbox_ready: threading.Event = field(default_factory=threading.Event)
    sandbox: Holder | None = None
    pod_ip: str | None = None
    initialized: bool = False
    phase_override: tuple[str, str, str] | None = None  # (phase, reason, message)
    deleting: bool = False
    terminal: bool = False
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)  # type -> (status, time)
    execs: list[Popen] = field(default_factory=list)
    exec_container: dict[int, str] = field(default_factory=dict)  # exec's pid -> its container's name
    thread: threading.Thread | None = None
    last_status: dict | None = None
    created: str = ""
    deadline_timer: threading.Timer | None = None
    on_gone: list[Callable[[], None]] = field(default_factory=list)
    kill_by: float = 0.0  # monotonic time of the SIGKILL after the grace period

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def ctrs_of(self, kind: str) -> list[Ctr]:
        with self.lock:  # sync_ephemeral may add containers from another thread
            return [c for c in self.ctrs.values() if c.kind == kind]

    def all_ctrs(self) -> list[Ctr]:
        with self.lock:
            return list(self.ctrs.values())


# ---------------------------------------------------------------------------------------------------------


class Kubelet:
    """See CONTRACT.md. All public methods are thread-safe and return quickly (work happens in threads)."""

    def __init__(self, node_name: str, node_root: Path, host_ip: str,
                 on_status: Callable[[str, str, dict], None]) -> None:
        self.node_name = node_name
        self.node_root = Path(node_root)
        self.host_ip = host_ip
        self.on_status = on_status
        self.layout = podlogs.PodLogLayout(self.node_root)
        self.log_gc_delay = LOG_GC_DELAY
        self.runtime = "containerd"  # or "docker" (dockermode.py): set by TestCluster before start()
        self._pods: dict[tuple[str, str], Pod] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._workdir: Path | None = None
        self._lifeline: Lifeline | None = None
        self._network: NodeNetwork | None = None
        self._dispatcher: threading.Thread | None = None
        self._janitor: Popen[bytes] | None = None
        self._gc: list[threading.Timer] = []
        self._gc_pending: list[Pod] = []
        self._started = False
        self._stopping = threading.Event()
        self._rotate_lock = threading.Lock()  # the size monitor and the test switch never rotate at once

    # ---- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._workdir = Path(tempfile.mkdtemp(prefix=temp_prefix("test-kubelet")))
        (self._workdir / "rootfs").mkdir()  # mountpoint for every container's root (inside its own mount ns)
        self._lifeline = Lifeline(str(self._workdir))
        self._janitor = containers.start_janitor(self._lifeline, str(self._workdir))
        self._network = NodeNetwork(self._lifeline)
        self.layout.ensure_base(fix_modes=True)
        self._dispatcher = threading.Thread(target=self._dispatch, name="kubelet-status", daemon=True)
        self._dispatcher.start()
        self._stopping = threading.Event()
        threading.Thread(target=self._log_monitor, name="kubelet-logs", daemon=True).start()
        self._started = True

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        with self._lock:
            pods = list(self._pods.values())
            self._pods.clear()
        for pod in pods:
            with pod.lock:
                pod.deleting = True
                pod.stop.set()
        for pod in pods:
            self._kill_all(pod, signal.SIGKILL)
        for pod in pods:
            self._wait_dead(pod, 5)
            self._teardown(pod)
        for t in self._gc:
            t.cancel()
        for pod in pods + self._gc_pending:
            self._remove_pod_logs(pod)
        self._gc_pending.clear()
        if self._network:
            self._network.stop()
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
        if self._lifeline:
            self._lifeline.close()  # any helper we missed sees EOF and exits
        if self._janitor is not None:
            with contextlib.suppress(TimeoutExpired):
                self._janitor.wait(5)  # the dir is gone already: it just exits
        self._queue.put(None)
        if self._dispatcher:
            self._dispatcher.join(5)

    def node_info(self) -> dict:
        uname = os.uname()
        machine_id = _read("/etc/machine-id").strip() or secrets.token_hex(16)
        return {
            "machineID": machine_id,
            "systemUUID": machine_id,
            "bootID": _read("/proc/sys/kernel/random/boot_id").strip(),
            "kernelVersion": uname.release,
            "osImage": _os_image(),
            "containerRuntimeVersion": dockermode.runtime_version(self.runtime),
            "kubeletVersion": "v1.33.4",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        }

    # ---- pods -----------------------------------------------------------------------------------------

    def run_pod(self, pod: dict) -> None:
        if not self._started:
            return  # stopped (or never started): nothing may be left running after stop()
        meta, spec = pod["metadata"], pod.get("spec") or {}
        p = Pod(meta.get("namespace", "default"), meta["name"], meta.get("uid") or secrets.token_hex(16),
                spec, now_rfc3339())
        p.created = meta.get("creationTimestamp") or p.start_time
        for kind, key in (("init", "initContainers"), ("regular", "containers"),
                          ("ephemeral", "ephemeralContainers")):
            for c in spec.get(key) or []:
                ctr = Ctr(kind, c)
                if kind == "regular" and spec.get("initContainers"):
                    ctr.state = {"waiting": {"reason": "PodInitializing"}}
                p.ctrs[c["name"]] = ctr
        with self._lock:
            old = self._pods.get(p.key)
            if old is not None and old.uid == p.uid:
                return  # already running this pod
            self._pods[p.key] = p
            if old is not None:
                # same name, another pod (the old one is being deleted, or was forgotten): it must go
                self._begin_delete(old, 0, lambda: None)
        self._emit(p)
        p.thread = threading.Thread(target=self._run_pod, args=(p,), name=f"pod-{p.name}", daemon=True)
        p.thread.start()

    def sync_ephemeral(self, pod: dict) -> None:
        p = self._pod(pod["metadata"].get("namespace", "default"), pod["metadata"]["name"])
        if p is None:
            return
        new = []
        with p.lock:
            p.spec = pod.get("spec") or p.spec
            for c in p.spec.get("ephemeralContainers") or []:
                if c["name"] not in p.ctrs:
                    ctr = Ctr("ephemeral", c)
                    p.ctrs[c["name"]] = ctr
                    new.append(ctr)
        if new:
            self._emit(p)
        for ctr in new:
            self._spawn_loop(p, ctr)

    def delete_pod(self, namespace: str, name: str, grace_seconds: int, on_gone: Callable[[], None]) -> None:
        # lock order everywhere: self._lock, then a pod's lock
        with self._lock:
            p = self._pods.get((namespace, name))
            if p is None:
                self._queue.put(("call", on_gone))
                return
            self._begin_delete(p, grace_seconds, on_gone)

    def _begin_delete(self, p: Pod, grace_seconds: float, on_gone: Callable[[], None]) -> None:
        with p.lock:
            p.on_gone.append(on_gone)
            if p.deleting:
                # a second DELETE (e.g. --grace-period=0 --force): shorten the grace period
                p.kill_by = min(p.kill_by, time.monotonic() + grace_seconds)
                return
            p.deleting = True
            p.kill_by = time.monotonic() + grace_seconds
            p.stop.set()
            self._hold_open(p, p.execs)
        threading.Thread(target=self._delete, args=(p,), name=f"delete-{p.name}", daemon=True).start()

    def _hold_open(self, p: Pod, execs: list[Popen[bytes]]) -> None:
        """Docker mode, the pod deleted or an ephemeral container ended (p.lock held): cri-dockerd keeps the exec
        streams into an ephemeral container open and silent, its processes gone (recordings 40-docker-exec-
        stream-in-an-ephemeral-container-of-a-deleted-pod: still open 90 s after; lab: gc --stop-idle's own exec,
        which ended its container's sleep, hung 120 s); a regular container's end with 137 as on containerd."""
        if self.runtime != "docker":
            return
        for proc in execs:
            ctr = p.ctrs.get(p.exec_container.get(proc.pid, ""))
            if ctr is not None and ctr.kind == "ephemeral":
                proc.held_open = True  # type: ignore[attr-defined]  # read by execws._finish

    def exec(self, namespace: str, name: str, container: str, command: list[str],
             tty: bool = False) -> Popen[bytes]:
        p, ctr, inst = self._running(namespace, name, container)
        with p.lock:
            spec = self._process_spec(p, ctr)
            p.execs = [e for e in p.execs if e.poll() is None]
        spec["argv"] = list(command)
        spec["kubelet"] = str(self._workdir)
        if tty:
            spec["env"].setdefault("TERM", "xterm")
            spec["tty"] = True
        assert inst.shim is not None
        try:
            proc = containers.exec_in(inst.shim.pid, spec)
        except HelperError as e:
            if not inst.running:
                raise ContainerNotRunning(container) from e
            raise
        with p.lock:
            p.execs.append(proc)
            p.exec_container = {e.pid: p.exec_container.get(e.pid, container) for e in p.execs}
            ended = inst.exited.is_set()
        if ended:  # it joined the namespaces of a main process that has just exited: it goes as the rest did
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return proc

    def log_path(self, namespace: str, name: str, container: str, previous: bool = False) -> Path | None:
        p = self._pod(namespace, name)
        if p is None:
            return None
        with p.lock:
            ctr = p.ctrs.get(container)
            if ctr is None:
                return None
            cur = ctr.current
            if previous:
                # in back-off the last dead instance is both "current" and "previous" (60-pod-log-crasher-*)
                inst = cur if cur is not None and not cur.running and ctr.restart_pending else ctr.previous
            else:
                inst = cur
        if inst is None:
            return None
        # Docker mode: N.log is an absolute link as the node sees it (30-docker-b02); the kubelet reads the
        # json-file it names (30-docker-c05: kubectl logs of a Docker pod gives its lines; c16: the live file only)
        path = dockermode.resolve_link(self.node_root, inst.log) if self.runtime == "docker" else inst.log
        return path if path.exists() else None

    # ---- test switches --------------------------------------------------------------------------------

    def _running(self, namespace: str, name: str, container: str):
        """(pod, container, instance) of a running container, or ContainerNotFound/ContainerNotRunning."""
        p = self._pod(namespace, name)
        if p is None:
            raise ContainerNotFound(container)
        with p.lock:
            ctr = p.ctrs.get(container)
            if ctr is None:
                raise ContainerNotFound(container)
            inst = ctr.current
            if inst is None or not inst.running or inst.shim is None:
                raise ContainerNotRunning(container)
        return p, ctr, inst

    def restart_container(self, namespace: str, name: str, container: str) -> None:
        """Kill the container's process; it restarts (next N.log) per restartPolicy. Returns once the next
        instance runs (or the container is final)."""
        p, ctr, inst = self._running(namespace, name, container)
        assert inst.shim is not None
        inst.shim.signal(signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not p.stop.is_set():
            with p.lock:
                if ctr.done or (ctr.current is not inst and ctr.current is not None and ctr.current.running):
                    return
            time.sleep(0.02)

    def rotate_logs(self, namespace: str, name: str, container: str) -> None:
        _, _, inst = self._running(namespace, name, container)
        assert inst.shim is not None
        with self._rotate_lock:
            if self.runtime == "docker":  # Docker rotates its own file (JsonFile.rotate); the kubelet never does
                inst.shim.reopen_log()
                return
            podlogs.rotate(inst.log, reopen=inst.shim.reopen_log)

    def _log_monitor(self) -> None:
        """Rotate live logs that outgrew containerLogMaxSize, as the kubelet's log manager does."""
        while not self._stopping.wait(LOG_MONITOR_INTERVAL):
            if self.runtime == "docker":
                continue  # Docker rotates its own files; the kubelet never does (30-docker-c18)
            with self._lock:
                pods = list(self._pods.values())
            for p in pods:
                for ctr in p.all_ctrs():
                    inst = ctr.current
                    if inst is None or not inst.running or inst.shim is None:
                        continue
                    try:
                        if inst.log.stat().st_size >= LOG_MAX_SIZE:
                            with self._rotate_lock:
                                podlogs.rotate(inst.log, reopen=inst.shim.reopen_log)
                    except OSError:
                        log.exception("rotating %s failed", inst.log)

    # ---- internals: pod lifecycle ---------------------------------------------------------------------

    def _pod(self, namespace: str, name: str) -> Pod | None:
        with self._lock:
            return self._pods.get((namespace, name))

    def _run_pod(self, p: Pod) -> None:
        try:
            self._start_sandbox(p)
        except Exception as e:  # noqa: BLE001 - report on the pod instead of dying silently
            log.exception("sandbox of %s/%s failed", p.namespace, p.name)
            with p.lock:
                if not p.deleting:
                    p.phase_override = ("Failed", "SandboxFailed", f"failed to create pod sandbox: {e}")
            self._emit(p)
            return
        if p.stop.is_set():
            return
        deadline = p.spec.get("activeDeadlineSeconds")
        if deadline is not None:
            p.deadline_timer = threading.Timer(float(deadline), self._deadline_exceeded, args=(p,))
            p.deadline_timer.daemon = True
            p.deadline_timer.start()
        self._emit(p)
        for ctr in p.ctrs_of("init"):
            if p.stop.is_set():
                return
            self._container_loop(p, ctr)
            with p.lock:
                ok = ctr.current is not None and ctr.current.exit_code == 0
            if not ok:
                self._check_terminal(p)
                return
        with p.lock:
            p.initialized = True
            for ctr in p.ctrs_of("regular"):
                if ctr.state.get("waiting", {}).get("reason") == "PodInitializing":
                    ctr.state = {"waiting": {"reason": "ContainerCreating"}}
        self._emit(p)
        for ctr in p.ctrs_of("regular") + p.ctrs_of("ephemeral"):
            self._spawn_loop(p, ctr)

    def _start_sandbox(self, p: Pod) -> None:
        assert self._lifeline is not None and self._network is not None and self._workdir is not None
        spec = p.spec
        new: list[str] = []
        if not spec.get("hostNetwork"):
            new += ["net", "uts"]
        if not spec.get("hostIPC"):
            new.append("ipc")
        if spec.get("shareProcessNamespace") and not spec.get("hostPID"):
            new.append("pid")
        hostname = (spec.get("hostname") or p.name)[:63]
        holder = Holder(self._lifeline, {"new": new, "hostname": hostname})
        with p.lock:
            p.sandbox = holder
            if p.deleting:
                return
        ip = self.host_ip if spec.get("hostNetwork") else self._network.attach(holder.pid)
        self._volumes_dir(p).mkdir(parents=True, exist_ok=True)
        with p.lock:
            p.pod_ip = ip
        p.sandbox_ready.set()

    def _spawn_loop(self, p: Pod, ctr: Ctr) -> None:
        with p.lock:
            if ctr.thread is not None:
                return  # an ephemeral container added during init already has its loop
            ctr.thread = threading.Thread(target=self._container_loop, args=(p, ctr),
                                          name=f"ctr-{p.name}-{ctr.name}", daemon=True)
        ctr.thread.start()

    def _container_loop(self, p: Pod, ctr: Ctr) -> None:
        """Pull, start, wait, restart per policy: one container's life. Runs in its own thread (init
        containers in the pod thread, one after the other)."""
        while not p.sandbox_ready.wait(0.2):
            if p.stop.is_set():
                return
        while not p.stop.is_set():
            if not self._pull(p, ctr):
                return
            error = self._config_error(p, ctr)
            if error:
                # the kubelet refuses before creating anything, and retries on every sync
                with p.lock:
                    ctr.state = {"waiting": {"reason": "CreateContainerConfigError", "message": error}}
                self._emit(p)
                if p.stop.wait(2.0):
                    return
                continue
            inst = self._start_instance(p, ctr)
            if inst is None:
                return
            inst.exited.wait()
            if not self._after_exit(p, ctr, inst):
                return

    def _config_error(self, p: Pod, ctr: Ctr) -> str:
        pod_sc = p.spec.get("securityContext") or {}
        sc = ctr.spec.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root and self._security(p, ctr)["user"]["uid"] == 0:
            # every image here runs as root unless runAsUser says otherwise (kubelet verifyRunAsNonRoot)
            if sc.get("runAsUser", pod_sc.get("runAsUser")) is None:
                return (f'container has runAsNonRoot and image will run as root (pod: "{p.name}_{p.namespace}'
                        f'({p.uid})", container: {ctr.name})')
            return (f'container\'s runAsUser breaks non-root policy (pod: "{p.name}_{p.namespace}({p.uid})", '
                    f"container: {ctr.name})")
        return ""

    def _pull(self, p: Pod, ctr: Ctr) -> bool:
        if ctr.image_ok:
            return True
        image = ctr.spec.get("image") or ""
        policy = ctr.spec.get("imagePullPolicy") or ("Always" if image.endswith(":latest") else "IfNotPresent")
        err = images.pull_error(image, policy)
        if err is None:
            ctr.image_ok = True
            return True
        backoff = 2.0
        if p.stop.wait(PULL_DELAY):
            return False
        while True:
            with p.lock:
                ctr.state = {"waiting": {"reason": err.reason, "message": err.message}}
            self._emit(p)
            if err.reason == "ErrImageNeverPull":
                p.stop.wait()
                return False
            if p.stop.wait(PULL_DELAY):
                return False
            with p.lock:
                ctr.state = {"waiting": {"reason": "ImagePullBackOff",
                                         "message": images.back_off_message(image, err)}}
            self._emit(p)
            if p.stop.wait(backoff):
                return False
            backoff = min(backoff * 2, PULL_BACKOFF_MAX)

    def _start_instance(self, p: Pod, ctr: Ctr) -> Instance | None:
        with p.lock:
            if p.stop.is_set():
                return None
            restart = ctr.restart_count if ctr.current is None else ctr.restart_count + 1
            docker = self.runtime == "docker"
            cid = ("docker://" if docker else "containerd://") + secrets.token_hex(32)
            logfile = self.layout.create_log(p.namespace, p.name, p.uid, ctr.name, restart)
            inst = Instance(restart, cid, logfile)
            spec = self._container_spec(p, ctr, logfile)
            if docker:  # N.log links to Docker's json-file, which the shim writes and rotates (dockermode.py)
                spec.update(log=str(dockermode.create_log(self.node_root, logfile, cid)),
                            docker=list(dockermode.limits()))
                spec["volumes"].append({"path": "/.dockerenv", "src": str(self._dockerenv()), "readOnly": True})
        assert self._lifeline is not None
        started_at = now_rfc3339()  # taken before: a quick command may exit before Shim() returns
        try:
            shim = Shim(self._lifeline, spec, on_exit=lambda code: self._on_exit(p, ctr, inst, code))
        except (HelperError, OSError) as e:
            msg = str(e)
            if "executable file not found" in msg:
                msg = msg.replace("'", '"')
            with p.lock:
                inst.exit_code, inst.reason = 128, "StartError"
                inst.message = ("failed to create containerd task: failed to create shim task: OCI runtime "
                                "create failed: runc create failed: unable to start container process: "
                                f"{msg}: unknown")
                inst.finished_at = now_rfc3339()
                self._set_current(ctr, inst, restart)
                inst.exited.set()
            return inst
        with p.lock:
            inst.shim = shim
            inst.started_at = started_at
            inst.link = self.layout.link(p.namespace, p.name, ctr.name, cid, logfile)
            self._set_current(ctr, inst, restart)
            ctr.state = {"running": {"startedAt": inst.started_at}}
            kill = p.stop.is_set()
        if kill:
            shim.signal(signal.SIGKILL)
        self._emit(p)
        return inst

    @staticmethod
    def _set_current(ctr: Ctr, inst: Instance, restart: int) -> None:
        if ctr.current is not None and ctr.current is not inst:
            ctr.previous = ctr.current
        ctr.current = inst
        ctr.restart_count = restart
        ctr.restart_pending = False

    def _on_exit(self, p: Pod, ctr: Ctr, inst: Instance, code: int) -> None:
        with p.lock:
            inst.exit_code = code
            inst.reason = "Completed" if code == 0 else "Error"
            inst.finished_at = now_rfc3339()
            inst.exited.set()
            execs = [e for e in p.execs if p.exec_container.get(e.pid) == ctr.name and e.poll() is None]
            self._hold_open(p, execs)
        # The shim has SIGKILLed the container's mount namespace (runc: a container's processes go with its
        # init); an exec that joined it meanwhile goes too (recordings 25-ec-lifetime-*: every process exec'd
        # into the container is gone at once, its exec ends with exit code 137).
        for proc in execs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _after_exit(self, p: Pod, ctr: Ctr, inst: Instance) -> bool:
        """Record the termination; returns whether to start the container again."""
        with p.lock:
            old = ctr.previous
            if old is not None and old is not inst and not p.deleting:
                # the kubelet keeps one dead instance per container: the older file and link go
                self.layout.remove_instance(old.log, old.link)
                if self.runtime == "docker":
                    dockermode.remove_container(self.node_root, old.container_id)
                ctr.previous = None
            policy = p.spec.get("restartPolicy") or "Always"
            if ctr.kind == "ephemeral" or p.stop.is_set() or p.terminal:
                again = False
            elif ctr.kind == "init":
                again = inst.exit_code != 0 and policy != "Never"
            else:
                again = policy == "Always" or (policy == "OnFailure" and inst.exit_code != 0)
            ctr.done = not again
            if again:
                delay = 0.0 if inst.restart == 0 else min(0.5 * 2 ** (inst.restart - 1), RESTART_BACKOFF_MAX)
                ctr.last_state = inst.terminated()
                ctr.restart_pending = True
                if delay:
                    ctr.state = {"waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {go_duration(delay)} restarting failed container={ctr.name} "
                                   f"pod={p.name}_{p.namespace}({p.uid})"}}
                else:
                    ctr.state = inst.terminated()
            else:
                ctr.state = inst.terminated()
        self._emit(p)
        if not again:
            self._check_terminal(p)
            return False
        return not p.stop.wait(delay)

    def _check_terminal(self, p: Pod) -> None:
        """A pod whose containers will not run again is finished: stop the rest, release the sandbox."""
        with p.lock:
            if p.terminal or p.deleting:
                return
            phase = self._phase(p)[0]
            if phase not in ("Succeeded", "Failed"):
                return
            p.terminal = True
            p.stop.set()
        threading.Thread(target=self._finish_terminal, args=(p,), daemon=True).start()

    def _finish_terminal(self, p: Pod) -> None:
        grace = float(p.spec.get("terminationGracePeriodSeconds", 30))
        self._kill_all(p, signal.SIGTERM)
        if not self._wait_dead(p, grace):
            self._kill_all(p, signal.SIGKILL)
            self._wait_dead(p, 5)
        self._teardown(p)
        self._emit(p)

    def _deadline_exceeded(self, p: Pod) -> None:
        with p.lock:
            if p.terminal or p.deleting:
                return
            p.phase_override = ("Failed", "DeadlineExceeded", DEADLINE_MESSAGE)
            p.terminal = True
            p.stop.set()
        self._emit(p)
        self._finish_terminal(p)

    def _delete(self, p: Pod) -> None:
        with p.lock:
            # running and backing-off containers are removed at once (their links go), finished ones at GC
            live = [c.current for c in p.ctrs.values()
                    if c.current is not None and (c.current.running or c.restart_pending)]
        self._kill_all(p, signal.SIGTERM)
        while not self._wait_dead(p, 0.1):
            if time.monotonic() >= p.kill_by:
                self._kill_all(p, signal.SIGKILL)
                self._wait_dead(p, 5)
                break
        if p.deadline_timer is not None:
            p.deadline_timer.cancel()
        for t in [p.thread] + [c.thread for c in p.all_ctrs()]:
            if t is not None and t is not threading.current_thread():
                t.join(5)
        self._teardown(p)
        for inst in live:
            self.layout.remove_instance(Path("/nonexistent"), inst.link)
        if self.log_gc_delay <= 0:
            self._remove_pod_logs(p)
        else:
            self._gc_pending.append(p)
            timer = threading.Timer(self.log_gc_delay, self._gc_pod, args=(p,))
            timer.daemon = True
            self._gc.append(timer)
            timer.start()
        with self._lock, p.lock:
            if self._pods.get(p.key) is p:
                del self._pods[p.key]
            callbacks, p.on_gone = p.on_gone, []
        for cb in callbacks:
            self._queue.put(("call", cb))

    def _gc_pod(self, p: Pod) -> None:
        if p in self._gc_pending:
            self._gc_pending.remove(p)
            self._remove_pod_logs(p)

    def _remove_pod_logs(self, p: Pod) -> None:
        for ctr in p.all_ctrs():
            for inst in (ctr.previous, ctr.current):
                if inst is not None and inst.link is not None:
                    with contextlib.suppress(FileNotFoundError):
                        inst.link.unlink()
        self.layout.remove_pod(p.namespace, p.name, p.uid)

    def _kill_all(self, p: Pod, sig: int) -> None:
        with p.lock:
            insts = [c.current for c in p.ctrs.values() if c.current is not None and c.current.running]
            execs = list(p.execs)
        for inst in insts:
            assert inst.shim is not None
            inst.shim.signal(sig)
        if sig == signal.SIGKILL:
            for proc in execs:  # exec'd processes of host-PID pods are not in a namespace that dies
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)

    def _wait_dead(self, p: Pod, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            with p.lock:
                alive = any(c.current is not None and c.current.running for c in p.ctrs.values())
            if not alive:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _teardown(self, p: Pod) -> None:
        with p.lock:
            holder, p.sandbox = p.sandbox, None
            execs, p.execs = p.execs, []
        for proc in execs:
            # kill, but leave waiting and the pipes to the API server that holds this Popen
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for ctr in p.all_ctrs():
            for inst in (ctr.previous, ctr.current):
                if inst is not None and inst.shim is not None and not inst.exited.is_set():
                    inst.shim.kill_shim()
        if holder is not None:
            holder.kill()
        if self._network is not None and not p.spec.get("hostNetwork"):
            self._network.release(p.pod_ip)
        if self._workdir is not None:
            shutil.rmtree(self._volumes_dir(p).parent, ignore_errors=True)

    # ---- internals: process specs ---------------------------------------------------------------------

    def _volumes_dir(self, p: Pod) -> Path:
        assert self._workdir is not None
        return self._workdir / "pods" / p.uid / "volumes"

    def _security(self, p: Pod, ctr: Ctr) -> dict:
        pod_sc = p.spec.get("securityContext") or {}
        sc = ctr.spec.get("securityContext") or {}
        uid = sc.get("runAsUser", pod_sc.get("runAsUser", 0))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if gid is None:
            gid = images.primary_gid(str(ctr.spec.get("image") or ""), int(uid))
        groups = list(pod_sc.get("supplementalGroups") or [])
        if pod_sc.get("fsGroup") is not None:
            groups.append(pod_sc["fsGroup"])
        caps = containers.capabilities_for(sc)
        privileged = bool(sc.get("privileged"))
        return {
            "user": {"uid": int(uid), "gid": int(gid), "groups": [int(g) for g in groups]},
            "cap_numbers": None if privileged else containers.cap_numbers(caps),
            "no_new_privs": sc.get("allowPrivilegeEscalation") is False,
            "block_ptrace": not privileged and "SYS_PTRACE" not in caps and caps != ["ALL"],
            "privileged": privileged,
        }

    def _env(self, p: Pod, ctr: Ctr, uid: int) -> dict[str, str]:
        try:
            home = pwd.getpwuid(uid).pw_dir
        except KeyError:
            home = "/"
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": (p.spec.get("hostname") or p.name)[:63], "HOME": home}
        return {**env, **self._spec_env(p, ctr)}

    def _spec_env(self, p: Pod, ctr: Ctr) -> dict[str, str]:
        """The container's `env` as the kubelet makes it: values, fieldRefs, `$(VAR)` of earlier entries
        expanded; the mapping `$(VAR)` in command and args is expanded from (not the image's ENV)."""
        env: dict[str, str] = {}
        fields = {"metadata.name": p.name, "metadata.namespace": p.namespace, "metadata.uid": p.uid,
                  "spec.nodeName": self.node_name, "status.hostIP": self.host_ip,
                  "status.podIP": p.pod_ip or "", "spec.serviceAccountName":
                  p.spec.get("serviceAccountName", "default")}
        for e in ctr.spec.get("env") or []:
            if "value" in e:
                env[e["name"]] = expansion.expand(str(e["value"]), env)
            elif (e.get("valueFrom") or {}).get("fieldRef"):
                env[e["name"]] = fields.get(e["valueFrom"]["fieldRef"].get("fieldPath", ""), "")
            else:
                env[e["name"]] = ""
        return env

    def _process_spec(self, p: Pod, ctr: Ctr) -> dict:
        sec = self._security(p, ctr)
        spec = {k: sec[k] for k in ("user", "cap_numbers", "no_new_privs", "block_ptrace")}
        spec["env"] = self._env(p, ctr, sec["user"]["uid"])
        spec["cwd"] = ctr.spec.get("workingDir") or "/"
        return spec

    def _dockerenv(self) -> Path:
        """The empty /.dockerenv dockerd puts in every container's root (30-docker-a04)."""
        assert self._workdir is not None
        path = self._workdir / "dockerenv"
        if not path.exists():
            path.touch(mode=0o755)
        return path

    def _etc_files(self, p: Pod) -> list[dict]:
        """The kubelet-managed /etc/hosts and /etc/hostname of a pod with its own network."""
        if p.spec.get("hostNetwork") or not p.pod_ip:
            return []
        d = self._volumes_dir(p).parent
        hostname = (p.spec.get("hostname") or p.name)[:63]
        hosts = d / "etc-hosts"
        if not hosts.exists():
            hosts.write_text(
                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\n"
                f"fe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n{p.pod_ip}\t{hostname}\n")
            (d / "etc-hostname").write_text(hostname + "\n")
        return [{"path": "/etc/hosts", "src": str(hosts), "readOnly": False},
                {"path": "/etc/hostname", "src": str(d / "etc-hostname"), "readOnly": False}]

    def _volume_sources(self, p: Pod, ctr: Ctr) -> list[dict]:
        vols = {v["name"]: v for v in p.spec.get("volumes") or []}
        out = []
        for m in ctr.spec.get("volumeMounts") or []:
            v = vols.get(m.get("name"))
            if v is None:
                continue
            if "hostPath" in v:
                hp = v["hostPath"]
                src = self.node_root / (hp.get("path") or "/").lstrip("/")
                if hp.get("type") == "FileOrCreate" and not src.exists():
                    src.parent.mkdir(parents=True, exist_ok=True)
                    src.touch()
                elif not src.exists():
                    src.mkdir(parents=True, exist_ok=True)
            else:
                # emptyDir, projected, configMap, secret...: a per-pod directory shared by its containers
                src = self._volumes_dir(p) / v["name"]
                src.mkdir(parents=True, exist_ok=True)
                if "projected" in v:
                    (src / "namespace").write_text(p.namespace)
                if "emptyDir" in v:
                    src.chmod(0o777)  # as the kubelet makes it (emptydir's perm 0777): any uid may write
            if m.get("subPath"):
                src = src / m["subPath"]
                src.mkdir(parents=True, exist_ok=True)
            ro = bool(m.get("readOnly")) or ("projected" in v or "secret" in v or "configMap" in v)
            out.append({"path": m["mountPath"], "src": str(src), "readOnly": ro})
        return out

    def _container_spec(self, p: Pod, ctr: Ctr, logfile: Path) -> dict:
        assert p.sandbox is not None and self._workdir is not None
        # Kubernetes expands $(VAR) and $$ in command and args before the runtime sees them (expansion.py)
        env = self._spec_env(p, ctr)
        plan = images.plan({**ctr.spec, **{k: expansion.expand_all([str(a) for a in ctr.spec[k]], env)
                                          for k in ("command", "args") if ctr.spec.get(k)}})
        spec = self._process_spec(p, ctr)
        spec["argv"] = plan.argv
        pod_spec = p.spec
        ns_kinds = [k for k, host in (("ipc", pod_spec.get("hostIPC")), ("uts", pod_spec.get("hostNetwork")),
                                      ("net", pod_spec.get("hostNetwork"))) if not host]
        join: list = [[p.sandbox.pid, ns_kinds]] if ns_kinds else []
        new_pid = False
        target = p.ctrs.get(ctr.spec.get("targetContainerName") or "")
        if pod_spec.get("hostPID"):
            pass
        elif target is not None and target.current is not None and target.current.running:
            assert target.current.shim is not None
            join.append([target.current.shim.pid, ["pid"]])  # ephemeral --target: the target's PID ns
        elif pod_spec.get("shareProcessNamespace"):
            join.append([p.sandbox.pid, ["pid"]])
        else:
            new_pid = True
        volumes = [{"path": t, "tmpfs": True} for t in plan.tmpfs]
        volumes += [{"path": c, "src": h, "readOnly": True} for c, h in plan.binds.items()]
        if plan.passwd is not None:  # the image's own /etc/passwd, bound over the host's
            passwd = self._volumes_dir(p).parent / f"passwd-{ctr.spec['name']}"
            passwd.parent.mkdir(parents=True, exist_ok=True)
            passwd.write_text(plan.passwd)
            volumes.append({"path": "/etc/passwd", "src": str(passwd), "readOnly": True})
        volumes += self._volume_sources(p, ctr)
        volumes += self._etc_files(p)
        sc = ctr.spec.get("securityContext") or {}
        spec.update(join=join, new_pid=new_pid, root=str(self._workdir / "rootfs"),
                    privileged=self._security(p, ctr)["privileged"], volumes=volumes, files=plan.files,
                    log=str(logfile), read_only_root=bool(sc.get("readOnlyRootFilesystem")),
                    stdin_open=bool(ctr.spec.get("stdin")))
        return spec

    # ---- internals: status ----------------------------------------------------------------------------

    def _emit(self, p: Pod) -> None:
        with self._lock:
            if self._pods.get(p.key) is not p:
                return  # deleted (on_gone queued) or replaced: its statuses would land on another object
        with p.lock:
            status = self._status(p)
            if status == p.last_status:
                return
            p.last_status = status
            self._queue.put(("status", p.namespace, p.name, status))

    def _dispatch(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                if item[0] == "call":
                    item[1]()
                else:
                    self.on_status(item[1], item[2], item[3])
            except Exception:  # noqa: BLE001 - a failing callback must not stop status delivery
                log.exception("kubelet callback failed")

    def _phase(self, p: Pod) -> tuple[str, str, str]:
        if p.phase_override:
            return p.phase_override
        policy = p.spec.get("restartPolicy") or "Always"
        for ctr in p.ctrs_of("init"):
            term = ctr.state.get("terminated")
            if term and term["exitCode"] != 0 and policy == "Never":
                return ("Failed", "", "")
        if not p.initialized and p.ctrs_of("init"):
            return ("Pending", "", "")
        pending = running = stopped = succeeded = 0
        for ctr in p.ctrs_of("regular"):
            if "running" in ctr.state:
                running += 1
            elif "terminated" in ctr.state:
                stopped += 1
                succeeded += ctr.state["terminated"]["exitCode"] == 0
            elif ctr.last_state.get("terminated"):
                stopped += 1
            else:
                pending += 1
        if pending:
            return ("Pending", "", "")
        if running:
            return ("Running", "", "")
        if stopped:
            if p.deleting:
                # A pod being deleted whose containers have all stopped ends in a terminal phase whatever its
                # restartPolicy: nginx exits 0 on SIGTERM, so a Deployment's old pod ends Succeeded
                # (recordings/21-watch-pods-app-web-rollout-restart).
                return ("Succeeded", "", "") if stopped == succeeded else ("Failed", "", "")
            if policy == "Always":
                return ("Running", "", "")
            if stopped == succeeded:
                return ("Succeeded", "", "")
            if policy == "Never":
                return ("Failed", "", "")
            if all(c.done for c in p.ctrs_of("regular")):
                return ("Failed", "", "")
            return ("Running", "", "")
        return ("Pending", "", "")

    def _condition(self, p: Pod, ctype: str, ok: bool, reason: str = "", message: str = "") -> dict:
        status = "True" if ok else "False"
        prev = p.conditions.get(ctype)
        if prev is None or prev[0] != status:
            p.conditions[ctype] = (status, now_rfc3339() if ctype != "PodScheduled" else p.created)
        c = {"type": ctype, "status": status, "lastProbeTime": None,
             "lastTransitionTime": p.conditions[ctype][1]}
        if not ok and reason:
            c["reason"] = reason
            if message:
                c["message"] = message
        return c

    def _ctr_status(self, ctr: Ctr) -> dict:
        spec, inst = ctr.spec, ctr.current
        running = "running" in ctr.state
        if ctr.kind == "init":
            ready = "terminated" in ctr.state and ctr.state["terminated"]["exitCode"] == 0
        else:
            ready = running and ctr.kind == "regular"
        plan_image = images.normalize(spec.get("image") or "") if inst is not None else spec.get("image", "")
        image_id = images.image_id(spec.get("image") or "") if inst is not None else ""
        if self.runtime == "docker" and inst is not None:  # as the pod names it; docker:// IDs (30-docker-b07)
            plan_image, image_id = spec.get("image") or "", "docker://" + image_id
        s: dict = {"name": ctr.name, "state": ctr.state, "lastState": ctr.last_state, "ready": ready,
                   "restartCount": ctr.restart_count, "image": plan_image, "imageID": image_id}
        if inst is not None:
            s["containerID"] = inst.container_id
        if ctr.kind != "ephemeral":
            s["started"] = running
        if inst is not None:
            s["resources"] = {}
            mounts = []
            for m in spec.get("volumeMounts") or []:
                vm = {"name": m["name"], "mountPath": m["mountPath"]}
                if m.get("readOnly"):
                    vm.update(readOnly=True, recursiveReadOnly="Disabled")
                mounts.append(vm)
            if mounts:
                s["volumeMounts"] = mounts
        return s

    def _status(self, p: Pod) -> dict:
        phase, reason, message = self._phase(p)
        regular = sorted(p.ctrs_of("regular"), key=lambda c: c.name)
        inits = sorted(p.ctrs_of("init"), key=lambda c: c.name)
        ephemeral = sorted(p.ctrs_of("ephemeral"), key=lambda c: c.name)
        finished = phase in ("Succeeded", "Failed")
        unready = [c.name for c in regular if "running" not in c.state]
        incomplete = [c.name for c in p.ctrs_of("init") if not ("terminated" in c.state
                                                                and c.state["terminated"]["exitCode"] == 0)]
        init_ok = p.initialized or not p.ctrs_of("init") or not incomplete
        ready_reason = "PodCompleted" if finished else "ContainersNotReady"
        ready_msg = "" if finished else f"containers with unready status: [{' '.join(unready)}]"
        initialized = self._condition(p, "Initialized", init_ok or finished, "ContainersNotInitialized",
                                      f"containers with incomplete status: [{' '.join(incomplete)}]")
        if finished:
            initialized["reason"] = "PodCompleted"  # a finished pod says why (recordings/20-list-pods-job-once)
        conditions = [
            self._condition(p, "PodReadyToStartContainers", p.sandbox is not None and p.pod_ip is not None),
            initialized,
            self._condition(p, "Ready", not unready and not finished, ready_reason, ready_msg),
            self._condition(p, "ContainersReady", not unready and not finished, ready_reason, ready_msg),
            self._condition(p, "PodScheduled", True),
        ]
        status: dict = {"phase": phase, "conditions": conditions}
        if message:
            status["message"] = message
        if reason:
            status["reason"] = reason
        status["hostIP"] = self.host_ip
        status["hostIPs"] = [{"ip": self.host_ip}]
        if p.pod_ip:
            status["podIP"] = p.pod_ip
            status["podIPs"] = [{"ip": p.pod_ip}]
        status["startTime"] = p.start_time
        if inits:
            status["initContainerStatuses"] = [self._ctr_status(c) for c in inits]
        status["containerStatuses"] = [self._ctr_status(c) for c in regular]
        status["qosClass"] = _qos_class(p.spec)
        if ephemeral:
            status["ephemeralContainerStatuses"] = [self._ctr_status(c) for c in ephemeral]
        return _deepcopy(status)


def _deepcopy(obj):  # JSON-shaped data only; cheaper than copy.deepcopy
    if isinstance(obj, dict):
        return {k: _deepcopy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deepcopy(v) for v in obj]
    return obj


def _qos_class(spec: dict) -> str:
    ctrs = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    reqs = [(c.get("resources") or {}) for c in ctrs]
    if not any(r.get("requests") or r.get("limits") for r in reqs):
        return "BestEffort"
    for r in reqs:
        lim, req = r.get("limits") or {}, r.get("requests") or {}
        if not ("cpu" in lim and "memory" in lim):
            return "Burstable"
        if any(req.get(k, lim[k]) != lim[k] for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"
