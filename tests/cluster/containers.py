"""Namespaces, mounts, capabilities and processes of the test kubelet.

Two halves live in this file, on purpose stdlib-only:

* the *library* half (``Holder``, ``NodeNetwork``, ``Shim``, ``exec_in``, ``capabilities_for``) is
  imported by ``kubelet.py``;
* the *helper* half runs as a separate single-threaded process (``python -S containers.py MODE SPEC``): the
  pause process of a pod, the per-container shim (like containerd-shim: it starts the container process and
  writes its CRI log) and the exec helper. All unshare/setns/mount/pivot_root work happens there, because
  fork() inside the multi-threaded kubelet (API server threads, log threads) is not safe.

Every helper watches a "lifeline" pipe whose write end only the kubelet holds: if the kubelet process dies
without stop(), the pipe reads EOF and the helpers kill what they hold, so no namespace outlives the cluster.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import marshal
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False  # not `from typing import ...`: typing alone costs the helper 5 ms per start
if __name__ != "__main__":
    # Only the kubelet side needs these; the helper process starts (and so every exec runs) faster without.
    import subprocess
    import threading

if TYPE_CHECKING:
    from collections.abc import Callable

HELPER = os.path.abspath(__file__)

# ---------------------------------------------------------------------------------------------------------
# Capabilities (shared by both halves)

CAP_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]
CAP_NUMBER = {name: i for i, name in enumerate(CAP_NAMES)}

# containerd's default set (pkg/oci/spec.go defaultUnixCaps): NET_RAW yes, NET_ADMIN and SYS_PTRACE no.
DEFAULT_CAPS = [
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP", "SETPCAP",
    "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
]


def _cap_last() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAP_NAMES) - 1


def host_bounding_set() -> set[int]:
    """The kubelet's own bounding set: a container can never get more (this VM lacks CAP_SYS_RESOURCE)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return {i for i in range(_cap_last() + 1) if mask >> i & 1}
    return set(range(_cap_last() + 1))


def _norm_cap(name: str) -> str:
    name = name.upper()
    return name[4:] if name.startswith("CAP_") else name


def capabilities_for(security_context: dict | None) -> list[str]:
    """Capability names a container gets, the way containerd's WithCapabilities computes them:
    privileged -> everything; add ALL -> everything; drop ALL -> nothing; then single adds, then single drops."""
    sc = security_context or {}
    if sc.get("privileged"):
        return ["ALL"]
    caps_spec = sc.get("capabilities") or {}
    add = [_norm_cap(c) for c in caps_spec.get("add") or []]
    drop = [_norm_cap(c) for c in caps_spec.get("drop") or []]
    caps = list(DEFAULT_CAPS)
    if "ALL" in add:
        caps = list(CAP_NAMES)
    if "ALL" in drop:
        caps = []
    for c in add:
        if c != "ALL" and c not in caps:
            caps.append(c)
    for c in drop:
        if c != "ALL" and c in caps:
            caps.remove(c)
    return caps


def cap_numbers(caps: list[str]) -> list[int]:
    """Names -> numbers, limited to what the kernel and our own bounding set allow (handled gracefully)."""
    allowed = host_bounding_set()
    if caps == ["ALL"]:
        return sorted(allowed)
    return sorted({CAP_NUMBER[c] for c in caps if c in CAP_NUMBER} & allowed)


# ---------------------------------------------------------------------------------------------------------
# Library half: used by the kubelet process


class HelperError(RuntimeError):
    """A helper process failed to set something up (message from the helper)."""


def _helper_argv(mode: str, spec: dict) -> list[str]:
    # -S -E: no site-packages, no PYTHON* variables; marshal rather than json (which pulls in re): the
    # helper starts in ~30 ms and imports nothing of ours.
    # The last argument is only there to be read by people and leak checks: which kubelet owns this helper.
    return [sys.executable, "-S", "-E", HELPER, mode, marshal.dumps(spec).hex(), f"kubelet={spec.get('kubelet')}"]


def _read_line(fd: int, timeout: float) -> str:
    """One status line from a helper (or '' on EOF/timeout)."""
    buf = b""
    while not buf.endswith(b"\n"):
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return ""
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace").strip()


def _read_until_eof(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise HelperError("exec helper did not start in time")
        chunk = os.read(fd, 4096)
        if not chunk:
            return buf
        buf += chunk


class Lifeline:
    """Pipe whose write end only the kubelet holds; helpers get the read end and exit on EOF."""

    def __init__(self, tag: str) -> None:
        self.tag = tag  # shown in every helper's command line: whose helper it is (leak checks)
        self.read_fd, self.write_fd = os.pipe()
        os.set_inheritable(self.read_fd, False)
        os.set_inheritable(self.write_fd, False)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class Holder:
    """A pause-like process that holds namespaces (a pod sandbox or the node's bridge network)."""

    def __init__(self, lifeline: Lifeline, spec: dict) -> None:
        r, w = os.pipe()
        spec = dict(spec, kubelet=lifeline.tag, lifeline_fd=lifeline.read_fd, status_fd=w)
        self.proc = subprocess.Popen(
            _helper_argv("pause", spec), pass_fds=(lifeline.read_fd, w), stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(w)
        try:
            line = _read_line(r, 10)
        finally:
            os.close(r)
        self._pidfd: int | None = None
        if not line.startswith("ready "):
            self.kill()
            raise HelperError(f"pause helper failed: {line or 'no answer'}")
        self.pid = int(line.split()[1])  # the process whose /proc/PID/ns/* are the pod's namespaces
        if self.pid != self.proc.pid:
            # PID 1 of the pod's PID namespace is our grandchild: a pidfd lets us kill it and see it gone
            with contextlib.suppress(ProcessLookupError):
                self._pidfd = os.pidfd_open(self.pid)

    def kill(self) -> None:
        """Kill and wait until gone: the namespaces are released when this returns."""
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self._pidfd is not None:
            select.select([self._pidfd], [], [], 5)  # readable once the process has exited
            os.close(self._pidfd)
            self._pidfd = None


def _ip_batch(pid: int, commands: list[str]) -> None:
    """Run `ip` commands inside the network namespace of pid (nsenter keeps the host untouched)."""
    res = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ip", "-batch", "-"], input="\n".join(commands) + "\n",
        capture_output=True, text=True, timeout=20,
    )
    if res.returncode != 0:
        raise HelperError(f"ip failed in netns of {pid}: {res.stderr.strip()}")


def next_host(used: set[int], last: int) -> int:
    """The pod address's last byte: the first free one after the last given, wrapping around (.2 to .254), as
    the CNI host-local IPAM hands them out (it keeps the last reserved address; the lab's bridge uses it). The
    lowest free one, given before, handed a deleted pod's address to the next pod at once: after a rollout a
    client still held the old pod's MAC for that address (its ARP entry REACHABLE for up to 45 s), and its
    SYNs went nowhere (CI: `curl` to a new pod hung past the test's 120 s)."""
    for i in (*range(last + 1, 255), *range(2, last + 1)):
        if i not in used:
            return i
    raise HelperError("the pod network 10.244.0.0/24 is full")


class NodeNetwork:
    """The pod network: a bridge in a network namespace of its own (made on first use), one veth per pod.

    The bridge lives outside the root namespace so that the host's interfaces, routes and addresses are never
    touched and everything vanishes with the holder process. Addresses: 10.244.0.0/24, gateway .1."""

    PREFIX = "10.244.0."
    GATEWAY = PREFIX + "1"

    def __init__(self, lifeline: Lifeline) -> None:
        self._lifeline = lifeline
        self._lock = threading.Lock()
        self._holder: Holder | None = None
        self._used: set[int] = set()
        self._last = 1  # the last address given (host-local's lastReservedIP): the next starts after it
        self._seq = 0

    def _ensure(self) -> Holder:
        if self._holder is None:
            holder = Holder(self._lifeline, {"new": ["net"], "hostname": None})
            _ip_batch(holder.pid, [
                "link set lo up", "link add br0 type bridge", f"addr add {self.GATEWAY}/24 dev br0",
                "link set br0 up",
            ])
            self._holder = holder
        return self._holder

    def attach(self, pod_pid: int) -> str:
        """Give the pod (netns of pod_pid) an eth0 on the bridge; returns its address."""
        with self._lock:
            holder = self._ensure()
            n = self._last = next_host(self._used, self._last)
            self._used.add(n)
            self._seq += 1
            veth = f"veth{self._seq}"
        ip = f"{self.PREFIX}{n}"
        try:
            _ip_batch(holder.pid, [
                f"link add {veth} type veth peer name eth0 netns {pod_pid}",
                f"link set {veth} master br0", f"link set {veth} up",
            ])
            _ip_batch(pod_pid, [
                "link set lo up", f"addr add {ip}/24 dev eth0", "link set eth0 up",
                f"route add default via {self.GATEWAY}",
            ])
        except Exception:
            self.release(ip)
            raise
        return ip

    def release(self, ip: str | None) -> None:
        # The veth pair disappears by itself when the pod's netns dies; only the address is ours to free.
        if ip and ip.startswith(self.PREFIX):
            with self._lock:
                self._used.discard(int(ip[len(self.PREFIX):]))

    def stop(self) -> None:
        with self._lock:
            if self._holder is not None:
                self._holder.kill()
                self._holder = None
            self._used.clear()


class Shim:
    """A running container: the shim helper process and the container's main process (host PID).

    Status lines from the shim are read by a thread; on_exit(code) is called once the container is gone."""

    def __init__(self, lifeline: Lifeline, spec: dict, on_exit: Callable[[int], None]) -> None:
        r, w = os.pipe()
        spec = dict(spec, kubelet=lifeline.tag, lifeline_fd=lifeline.read_fd, status_fd=w)
        self.proc = subprocess.Popen(
            _helper_argv("shim", spec), pass_fds=(lifeline.read_fd, w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        os.close(w)
        self._status_fd = r
        self._reopened = threading.Event()
        line = _read_line(r, 30)
        if not line.startswith("pid "):
            msg = line[6:] if line.startswith("error ") else (line or "shim died")
            self._finish()
            raise HelperError(msg)
        self.pid = int(line.split()[1])
        try:
            # signals go through a pidfd: never to a recycled PID once the container is gone
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._pidfd = None
        self._lock = threading.Lock()
        self.exit_code: int | None = None
        self._on_exit = on_exit
        threading.Thread(target=self._watch, name=f"shim-{self.pid}", daemon=True).start()

    def _watch(self) -> None:
        code = None
        with os.fdopen(self._status_fd, "rb", buffering=0) as f:
            for raw in iter(f.readline, b""):
                line = raw.decode(errors="replace").strip()
                if line == "reopened":
                    self._reopened.set()
                elif line.startswith("exit "):
                    code = int(line.split()[1])
        if code is None:
            # the shim died without reporting (killed, or a bug): make sure the container dies with it
            self.signal(signal.SIGKILL)
            code = 137
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        with self._lock:
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
        self.exit_code = code
        self._on_exit(code)

    def _finish(self) -> None:
        os.close(self._status_fd)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def signal(self, sig: int) -> None:
        with self._lock:
            if self._pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, sig)

    def reopen_log(self, timeout: float = 5.0) -> None:
        """Like the CRI ReopenContainerLog call: the shim reopens its log path; returns when it did."""
        self._reopened.clear()
        try:
            os.kill(self.proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return
        self._reopened.wait(timeout)

    def kill_shim(self) -> None:
        self.signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)


def exec_in(target_pid: int, spec: dict) -> subprocess.Popen[bytes]:
    """Start a process inside the namespaces of target_pid, with pipes straight to it.

    The helper joins the namespaces, forks (for the PID namespace) and the child execs the command: the pipes
    given to Popen are the command's own stdin/stdout/stderr, no copying in between. A CLOEXEC pipe reports
    an exec failure before we return (runc does the same)."""
    r, w = os.pipe()
    spec = dict(spec, target=target_pid, err_fd=w)
    resize_r = resize_w = -1
    if spec.get("tty"):
        # the terminal's size, as a JSON line per channel-4 message (execws), set on the pty by the helper
        resize_r, resize_w = os.pipe()
        spec["resize_fd"] = resize_r
    proc = subprocess.Popen(
        _helper_argv("exec", spec), pass_fds=(w,) + ((resize_r,) if resize_r >= 0 else ()),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,  # survives the API client and its signals
    )
    os.close(w)
    if resize_r >= 0:
        os.close(resize_r)
        os.set_blocking(resize_w, False)
        proc.resize_fd = resize_w  # type: ignore[attr-defined]  # written by execws, closed when the exec ends
    try:
        err = _read_until_eof(r, 30).decode(errors="replace")
    except BaseException:
        proc.kill()
        raise
    finally:
        os.close(r)
    if err:
        proc.wait()
        if resize_w >= 0:
            os.close(resize_w)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()
        if err.startswith("ENOENT"):
            raise FileNotFoundError(errno.ENOENT, "executable file not found in $PATH")
        raise HelperError(err)
    return proc


# ---------------------------------------------------------------------------------------------------------
# Helper half: runs in its own single-threaded process

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NS_FLAGS = {"mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "pid": CLONE_NEWPID,
            "net": CLONE_NEWNET}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

_ARCH = os.uname().machine
# (AUDIT_ARCH, ptrace, process_vm_readv, process_vm_writev, pivot_root, capset, capget)
_SYSCALLS = {
    "x86_64": (0xC000003E, 101, 310, 311, 155, 126, 125),
    "aarch64": (0xC00000B7, 117, 270, 271, 41, 91, 90),
}

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> int:
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_lib().mount(
        src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None,
        ctypes.c_ulong(flags), data.encode() if data else None,
    ), f"mount {src} on {dst}")


def _unshare(flags: int) -> None:
    _check(_lib().unshare(flags), "unshare")


def _setns_pid(pid: int, kinds: list[str]) -> None:
    """Join the namespaces of pid (all fds opened first: /proc/PID may vanish once we switch mnt)."""
    fds = []
    for kind in kinds:
        path = f"/proc/{pid}/ns/{kind}"
        if os.stat(path).st_ino == os.stat(f"/proc/self/ns/{kind}").st_ino:
            continue  # already there (host namespaces of node pods)
        fds.append((kind, os.open(path, os.O_RDONLY)))
    for kind, fd in fds:
        _check(_lib().setns(fd, NS_FLAGS[kind]), f"setns {kind}")
        os.close(fd)


def _pivot_root(new_root: str) -> None:
    nr = _SYSCALLS[_ARCH][4]
    os.chdir(new_root)
    # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the new root
    # (the trick runc uses: no put_old directory needed).
    _check(_lib().syscall(nr, b".", b"."), "pivot_root")
    _mount(None, ".", None, MS_SLAVE | MS_REC)
    _check(_lib().umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")


def _statvfs_flags(path: str) -> int:
    f = os.statvfs(path).f_flag
    return (f & (MS_NOSUID | MS_NODEV | MS_NOEXEC))


def _bind(src: str, dst: str, readonly: bool) -> None:
    _mount(src, dst, None, MS_BIND | MS_REC)
    if readonly:
        # A bind mount only becomes read-only by a remount of that bind (not recursive, like runc's default
        # recursiveReadOnly: Disabled); keep nosuid/nodev/noexec of the source.
        _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _statvfs_flags(dst))


class RootBuilder:
    """Builds a container's "/" from the host's: a tmpfs whose top-level entries are bind mounts of the host's
    (read-only unless privileged) so that new mountpoints (/host, /etc/nginx...) can be created without ever
    writing to the host's filesystem. A directory that needs a new child is "shadowed" the same way."""

    SKIP = {"proc", "tmp", "sys", "run", "dev", "lost+found"}
    DEVICES = ("null", "zero", "full", "random", "urandom", "tty", "net/tun", "fuse")

    def __init__(self, root: str, privileged: bool) -> None:
        self.root = root.rstrip("/")
        self.privileged = privileged
        self.mirrors: set[str] = set()  # container paths that are binds of the same host path
        self.volumes: set[str] = set()  # container paths where volumes are mounted (never shadowed)

    def _mirror(self, cpath: str) -> None:
        target = self.root + cpath if cpath != "/" else self.root
        _mount("tmpfs", target, "tmpfs", MS_NOSUID, "mode=755")
        os.chmod(target, os.stat(cpath).st_mode & 0o7777)
        for name in os.listdir(cpath):
            if cpath == "/" and name in self.SKIP:
                continue
            src = os.path.join(cpath, name)
            dst = os.path.join(target, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            elif os.path.isdir(src):
                os.mkdir(dst)
                # /dev stays writable (/dev/null, ptys); the rest read-only, even when privileged: a
                # container must never write the host's files (a real one writes its own image layer).
                _bind(src, dst, readonly=src != "/dev")
                self.mirrors.add(src)
            elif os.path.exists(src):
                open(dst, "w").close()
                _bind(src, dst, readonly=True)

    def build(self) -> None:
        self._mirror("/")
        for name, mode in (("proc", 0o555), ("sys", 0o555), ("tmp", 0o1777), ("run", 0o755), ("dev", 0o755)):
            os.mkdir(self.root + "/" + name)
            os.chmod(self.root + "/" + name, mode)
        self._dev()
        _mount("proc", self.root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        if not self.privileged:
            self._mask_proc()
        try:
            _mount("sysfs", self.root + "/sys", "sysfs",
                   MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if self.privileged else MS_RDONLY))
        except OSError:
            _bind("/sys", self.root + "/sys", readonly=not self.privileged)
        self.tmpfs("/tmp", "mode=1777")
        self.tmpfs("/run", "mode=755")

    def _mask_proc(self) -> None:
        """runc's readonlyPaths and maskedPaths: no container may reboot the VM via /proc/sysrq-trigger."""
        proc = self.root + "/proc"
        for name in ("bus", "fs", "irq", "sys", "sysrq-trigger"):
            path = f"{proc}/{name}"
            if os.path.exists(path):
                _bind(path, path, readonly=True)
        for name in ("acpi", "asound", "kcore", "keys", "latency_stats", "timer_list", "timer_stats",
                     "sched_debug", "scsi"):
            path = f"{proc}/{name}"
            if os.path.isdir(path):
                _mount("tmpfs", path, "tmpfs", MS_RDONLY)
            elif os.path.exists(path):
                _mount("/dev/null", path, None, MS_BIND)

    def _dev(self) -> None:
        """/dev as runc makes it: a tmpfs with the usual devices, a devpts of its own, a private /dev/shm.
        Privileged containers see the host's /dev (as on a real node)."""
        dev = self.root + "/dev"
        if self.privileged:
            _bind("/dev", dev, readonly=False)
            return
        _mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
        for name in self.DEVICES:
            if os.path.exists("/dev/" + name):
                os.makedirs(os.path.dirname(dev + "/" + name), exist_ok=True)
                open(dev + "/" + name, "w").close()
                _mount("/dev/" + name, dev + "/" + name, None, MS_BIND)
        os.mkdir(dev + "/pts")
        try:
            _mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
            os.symlink("pts/ptmx", dev + "/ptmx")
        except OSError:
            _bind("/dev/pts", dev + "/pts", readonly=False)
            open(dev + "/ptmx", "w").close()
            _mount("/dev/ptmx", dev + "/ptmx", None, MS_BIND)
        os.mkdir(dev + "/shm")
        _mount("shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore")):
            os.symlink(target, dev + "/" + name)
        open(dev + "/termination-log", "w").close()
        os.chmod(dev + "/termination-log", 0o666)  # any user may write it (the kubelet's file is 0666 too)
        self.volumes.add("/dev")

    def tmpfs(self, cpath: str, data: str = "mode=755") -> None:
        _mount("tmpfs", self.ensure_dir(cpath), "tmpfs", MS_NOSUID | MS_NODEV, data)
        self.volumes.add(os.path.normpath(cpath))

    def ensure_dir(self, cpath: str, depth: int = 0) -> str:
        """Host path of container directory cpath, creating it (and shadowing read-only parents) if needed."""
        if depth > 20:
            raise OSError(errno.ELOOP, f"too many symlinks in {cpath}")
        cur = "/"
        parts = [p for p in cpath.split("/") if p and p != "."]
        for i, part in enumerate(parts):
            nxt = os.path.join(cur, part)
            host = self.root + nxt
            if os.path.islink(host):
                link = os.readlink(host)
                base = link if link.startswith("/") else os.path.join(cur, link)
                rest = "/".join(parts[i + 1:])
                return self.ensure_dir(os.path.normpath(os.path.join(base, rest)), depth + 1)
            if not os.path.isdir(host):
                self._make_writable(cur)
                os.mkdir(host)
            cur = nxt
        return self.root + cur if cur != "/" else self.root

    def _make_writable(self, cur: str) -> None:
        """Before creating an entry in container dir cur: if cur shows the host's (read-only) directory, put a
        tmpfs over it that mirrors the host's entries, so the new entry never lands on the host."""
        if cur == "/" or self._under(cur, self.volumes):
            return
        if self._under(cur, self.mirrors):
            self.mirrors.discard(cur)
            self._mirror(cur)

    @staticmethod
    def _under(path: str, roots: set[str]) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def ensure_file(self, cpath: str) -> str:
        parent = self.ensure_dir(os.path.dirname(cpath) or "/")
        host = os.path.join(parent, os.path.basename(cpath))
        if not os.path.exists(host):
            self._make_writable(os.path.dirname(cpath) or "/")
            host = os.path.join(self.ensure_dir(os.path.dirname(cpath) or "/"), os.path.basename(cpath))
            open(host, "w").close()
        return host


def _ptrace_filter() -> bytes:
    """Seccomp BPF: PTRACE_ATTACH/PTRACE_SEIZE and process_vm_readv/writev fail with EPERM.

    Real nodes refuse ptrace of another container's process without CAP_SYS_PTRACE (Yama ptrace_scope=1 or
    the runtime's seccomp profile); this VM has no Yama, so containers without SYS_PTRACE get this filter."""
    arch, ptrace_nr, pvr, pvw = _SYSCALLS[_ARCH][:4]
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EPERM

    def ins(code: int, jt: int, jf: int, k: int) -> bytes:
        return code.to_bytes(2, "little") + bytes([jt, jf]) + k.to_bytes(4, "little")

    ld, jeq, ret = 0x20, 0x15, 0x06
    prog = [
        ins(ld, 0, 0, 4),           # 0 arch
        ins(jeq, 0, 7, arch),       # 1 -> 9 allow if foreign arch
        ins(ld, 0, 0, 0),           # 2 nr
        ins(jeq, 6, 0, pvr),        # 3 -> 10 deny
        ins(jeq, 5, 0, pvw),        # 4 -> 10 deny
        ins(jeq, 0, 3, ptrace_nr),  # 5 -> 9 allow if not ptrace
        ins(ld, 0, 0, 16),          # 6 args[0] (low 32 bits)
        ins(jeq, 2, 0, 16),         # 7 PTRACE_ATTACH -> 10
        ins(jeq, 1, 0, 0x4206),     # 8 PTRACE_SEIZE -> 10
        ins(ret, 0, 0, allow),      # 9
        ins(ret, 0, 0, deny),       # 10
    ]
    return b"".join(prog)


def _install_ptrace_filter() -> None:
    if _ARCH not in _SYSCALLS:
        return
    prog = _ptrace_filter()
    buf = ctypes.create_string_buffer(prog, len(prog))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog) // 8, ctypes.addressof(buf))
    _check(_lib().prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog), 0, 0),
           "seccomp")


def _capset_inheritable(caps: list[int]) -> None:
    """Inheritable = caps; permitted/effective stay (they are recomputed at execve from the bounding set)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    hdr = Header(0x20080522, 0)
    data = (Data * 2)()
    _check(_lib().syscall(_SYSCALLS[_ARCH][6], ctypes.byref(hdr), data), "capget")
    inh = 0
    for c in caps:
        inh |= 1 << c
    data[0].inheritable = inh & 0xFFFFFFFF
    data[1].inheritable = inh >> 32
    _check(_lib().syscall(_SYSCALLS[_ARCH][5], ctypes.byref(hdr), data), "capset")


def _apply_security(spec: dict) -> None:
    """Seccomp, bounding/inheritable capabilities, user and groups, no_new_privs: what runc does last."""
    caps = spec.get("cap_numbers")
    if spec.get("block_ptrace"):
        _install_ptrace_filter()  # needs CAP_SYS_ADMIN, so before the capabilities go
    if caps is not None:
        keep = set(caps)
        for c in range(_cap_last() + 1):
            if c not in keep:
                r = _lib().prctl(PR_CAPBSET_DROP, ctypes.c_ulong(c), 0, 0, 0)
                if r < 0 and ctypes.get_errno() != errno.EINVAL:
                    _check(r, f"drop capability {c}")
        _capset_inheritable(sorted(keep))
    user = spec.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    os.setgroups([int(g) for g in user.get("groups", [])])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)  # non-root: permitted/effective are cleared here, as on a real node
    if spec.get("no_new_privs"):
        _check(_lib().prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0), "no_new_privs")


def _exec_command(spec: dict, err_fd: int) -> None:
    """chdir, security, execvpe; on failure report through err_fd (CLOEXEC, so success closes it silently)."""
    env = spec.get("env") or {}
    # os.execvpe imports warnings lazily: do it while we can still read our own stdlib (a non-root user
    # may not be able to, e.g. under /root)
    import warnings  # noqa: F401, PLC0415

    try:
        try:
            os.chdir(spec.get("cwd") or "/")
        except OSError:
            os.chdir("/")
        _apply_security(spec)
        argv = spec["argv"]
        os.set_inheritable(err_fd, False)
        # A container starts with every signal at its default, as runc starts it. Ours descend from the test run,
        # which may ignore SIGINT and SIGQUIT (what a shell does to a command it starts in the background): that
        # would leak into every container, where `kill -INT` then ends nothing (the recorded 09h2 case).
        for sig in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        os.write(err_fd, f"ENOENT exec: {spec['argv'][0]!r}: executable file not found in $PATH".encode())
    except BaseException as e:  # noqa: BLE001 - anything here must be reported, then the child must die
        os.write(err_fd, f"ERROR {type(e).__name__}: {e}".encode())
    os._exit(127)


def _wait_status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _devnull_stdio() -> None:
    fd = os.open("/dev/null", os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)
    if fd > 2:
        os.close(fd)


def helper_pause(spec: dict) -> None:
    """Holds a pod's namespaces (or the bridge network) until killed or the kubelet's lifeline closes."""
    status_fd, lifeline = spec["status_fd"], spec["lifeline_fd"]
    flags = 0
    for kind in spec.get("new", []):
        flags |= NS_FLAGS[kind]
    try:
        _unshare(flags)
        if spec.get("hostname") and "uts" in spec.get("new", []):
            name = spec["hostname"].encode()
            _check(_lib().sethostname(name, len(name)), "sethostname")
    except OSError as e:
        os.write(status_fd, f"error {e}\n".encode())
        os._exit(1)
    child = 0
    if flags & CLONE_NEWPID:
        child = os.fork()  # the first child is PID 1 of the pod's PID namespace (shareProcessNamespace)
        if child:
            os.write(status_fd, f"ready {child}\n".encode())
            os.close(status_fd)
    else:
        os.write(status_fd, f"ready {os.getpid()}\n".encode())
        os.close(status_fd)
    if child == 0:
        with contextlib.suppress(OSError):
            os.close(status_fd)
    _devnull_stdio()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        r, _, _ = select.select([lifeline], [], [], 1.0)
        # as PID 1 of a shared PID namespace, reap orphans like the real pause does
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if r and not os.read(lifeline, 1):
            if child:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            os._exit(0)


def _setup_container_child(spec: dict) -> None:
    """In the forked child: own mount namespace with the container's root, then become the command."""
    _unshare(CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount ever propagates to the host
    rb = RootBuilder(spec["root"], bool(spec.get("privileged")))
    rb.build()
    for vol in spec.get("volumes", []):
        if vol.get("tmpfs"):
            rb.tmpfs(vol["path"])
            continue
        src = vol["src"]
        dst = rb.ensure_dir(vol["path"]) if os.path.isdir(src) else rb.ensure_file(vol["path"])
        _bind(src, dst, readonly=bool(vol.get("readOnly")))
        rb.volumes.add(os.path.normpath(vol["path"]))
    for path, content in (spec.get("files") or {}).items():
        host = rb.ensure_file(path)
        with open(host, "w") as f:
            f.write(content)
    _pivot_root(rb.root)
    if spec.get("read_only_root"):
        _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        # /tmp and /run are tmpfs mounts here, but a real container's are its image's folders, part of the root
        # that readOnlyRootFilesystem makes read-only (writes there fail with EROFS): the same here
        for path in ("/tmp", "/run"):
            _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def helper_shim(spec: dict) -> None:
    """Starts the container process and copies its stdout/stderr into the CRI log file until it exits."""
    sys.path.insert(0, os.path.dirname(HELPER))
    import podlogs  # noqa: PLC0415 - stdlib-only sibling module, imported by path in the helper process

    status_fd, lifeline = spec["status_fd"], spec["lifeline_fd"]

    def status(line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(status_fd, (line + "\n").encode())

    # The log file and the reopen handler exist before anyone can ask for a reopen (SIGUSR1 would kill us).
    docker = spec.get("docker")  # [max_size, max_file]: Docker's json-file (dockermode.py)
    if docker:
        import dockermode  # noqa: PLC0415 - stdlib-only sibling module, imported by path like podlogs

        log = dockermode.JsonFile(spec["log"], *docker)
    else:
        log = podlogs.CriLogFile(spec["log"])

    def on_reopen(*_: object) -> None:
        log.reopen()
        status("reopened")

    signal.signal(signal.SIGUSR1, on_reopen)
    err_r, err_w = os.pipe()
    out_r, out_w = os.pipe()
    errs_r, errs_w = os.pipe()
    # stdin: true in the spec keeps the container's stdin open (nobody attaches, but `sh` waits as it would)
    in_r, in_w = os.pipe() if spec.get("stdin_open") else (os.open("/dev/null", os.O_RDONLY), -1)
    try:
        for pid, kinds in spec.get("join") or []:
            _setns_pid(pid, kinds)
        if spec.get("new_pid"):
            _unshare(CLONE_NEWPID)
        child = os.fork()
    except OSError as e:
        status(f"error {e}")
        os._exit(1)
    if child == 0:
        os.close(err_r)
        os.close(out_r)
        os.close(errs_r)
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(errs_w, 2)
            for fd in (in_r, in_w, out_w, errs_w, status_fd, lifeline):
                if fd > 2:
                    os.close(fd)
            os.setsid()
            _setup_container_child(spec)
        except BaseException as e:  # noqa: BLE001
            os.write(err_w, f"ERROR {e}".encode())
            os._exit(127)
        _exec_command(spec, err_w)
    os.close(err_w)
    os.close(out_w)
    os.close(errs_w)
    os.close(in_r)  # in_w stays open in the shim for the container's life
    with os.fdopen(err_r, "rb") as f:
        err = f.read().decode(errors="replace")
    if err:
        os.waitpid(child, 0)
        if err.startswith("ENOENT "):
            err = err[len("ENOENT "):]
        status(f"error {err}")
        os._exit(1)
    status(f"pid {child}")
    _devnull_stdio()
    mnt = pin_mount_namespace(child)  # the container's own: our "cgroup"

    writer = dockermode.JsonWriter(log.write) if docker else podlogs.CriWriter(log.write)
    pidfd = os.pidfd_open(child)
    streams = {out_r: "stdout", errs_r: "stderr"}
    code: int | None = None
    drain_until: float | None = None
    lifeline_open = True
    while streams:
        fds = list(streams) + ([pidfd] if code is None else []) + ([lifeline] if lifeline_open else [])
        timeout = None if drain_until is None else max(0.0, drain_until - time.monotonic())
        ready, _, _ = select.select(fds, [], [], timeout)
        if not ready and drain_until is not None:
            break  # grandchildren still hold the pipes after the main process died (shared PID namespace)
        for fd in ready:
            if fd == lifeline:
                if not os.read(lifeline, 1):
                    lifeline_open = False  # the kubelet is gone: the container goes too
                    _kill(child, signal.SIGKILL)
            elif fd == pidfd:
                _, st = os.waitpid(child, 0)
                code = _wait_status_code(st)
                # like runc when a container's init exits: its other processes go too (they survive on
                # their own in a shared or the host's PID namespace, and so would exec'd ones)
                if mnt is not None:
                    kill_mount_namespace(mnt)
                    os.close(mnt)
                    mnt = None
                drain_until = time.monotonic() + 0.5
            else:
                data = os.read(fd, 65536)
                if data:
                    writer.feed(streams[fd], data)
                else:
                    writer.close_stream(streams[fd])
                    del streams[fd]
                    os.close(fd)
    for name in ("stdout", "stderr"):
        writer.close_stream(name)
    if code is None:
        _, st = os.waitpid(child, 0)
        code = _wait_status_code(st)
    log.close()
    status(f"exit {code}")
    os._exit(0)


def pin_mount_namespace(pid: int) -> int | None:
    """An fd of pid's mount namespace, which keeps that namespace alive, so that its inode number names it and
    no other until the fd is closed; None if pid is gone or shares our own.

    The inode number alone is not enough: the kernel gives a new namespace the lowest free number, so the one
    of a namespace just freed goes to the next one created (20 of 20 times on this kernel). A container's
    namespace is freed when its last process exits; the next container started on the machine (another pod,
    another test cluster) got its number, and the shim's kill, by number, ended that container's main process
    an instant after it started (CI: "container not found" from an exec into a debug container shown running)."""
    try:
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    except OSError:
        return None
    ours = os.stat("/proc/self/ns/mnt")
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
        os.close(fd)  # never: that would be everybody's (the child always has a mount namespace of its own)
        return None
    return fd


def kill_mount_namespace(ns_fd: int) -> None:
    """SIGKILL every process in the mount namespace ns_fd holds (pin_mount_namespace), until none is left
    (max ~2 s)."""
    st = os.fstat(ns_fd)
    ns = (st.st_dev, st.st_ino)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        found = False
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                other = os.stat(f"/proc/{name}/ns/mnt")
                if (other.st_dev, other.st_ino) == ns:
                    found = True
                    os.kill(int(name), signal.SIGKILL)
            except OSError:
                continue
        if not found:
            return
        time.sleep(0.01)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def helper_exec(spec: dict) -> None:
    """Joins the namespaces of spec['target'], forks, and the child becomes the command.

    Without a tty the command gets our stdin/stdout/stderr pipes as they are (nothing copies the bytes);
    with a tty it gets a pseudo-terminal and we relay between it and the pipes, as runc's console does."""
    err_fd = spec["err_fd"]
    master = slave = -1
    try:
        _setns_pid(spec["target"], ["ipc", "uts", "net", "pid", "mnt"])
        if spec.get("tty"):
            master, slave = os.openpty()  # now from the container's own devpts
        child = os.fork()
    except OSError as e:
        os.write(err_fd, f"ERROR {e}".encode())
        os._exit(1)
    if child == 0:
        if spec.get("resize_fd") is not None:
            os.close(spec["resize_fd"])  # the command holds none of our fds
        if slave >= 0:
            import fcntl  # noqa: PLC0415
            import termios  # noqa: PLC0415

            os.close(master)
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            os.close(slave)
        _exec_command(spec, err_fd)
    os.close(err_fd)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        # forward: whoever signals the exec'd process by our PID reaches the command
        signal.signal(sig, lambda s, _f: _kill(child, s))
    if master >= 0:
        os.close(slave)
        _tty_relay(master, spec.get("resize_fd"))
    _devnull_stdio()  # the command alone holds the pipes: EOF when it (and its children) close them
    _, st = os.waitpid(child, 0)
    os._exit(_wait_status_code(st))


def _tty_relay(master: int, resize_fd: int | None = None) -> None:
    """stdin pipe -> terminal, terminal -> stdout pipe, until the terminal's last user is gone (EIO); each line
    of `resize_fd` ({"Width": W, "Height": H}, the exec's channel 4) sets the terminal's size, as the kubelet's
    runtime does (TIOCSWINSZ: the kernel sends SIGWINCH to the terminal's foreground job)."""
    stdin_open = True
    pending = b""
    while True:
        fds = [master] + ([0] if stdin_open else []) + ([resize_fd] if resize_fd is not None else [])
        ready, _, _ = select.select(fds, [], [])
        if resize_fd is not None and resize_fd in ready:
            data = os.read(resize_fd, 4096)
            if not data:
                resize_fd = None
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                _set_size(master, line)
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                os.write(master, data)
            else:
                stdin_open = False
                os.write(master, b"\x04")  # end of input on a terminal: ^D
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                return
            try:
                os.write(1, data)
            except BrokenPipeError:
                return


def _set_size(master: int, line: bytes) -> None:
    import fcntl  # noqa: PLC0415
    import json  # noqa: PLC0415
    import struct  # noqa: PLC0415
    import termios  # noqa: PLC0415

    try:
        size = json.loads(line)
        width, height = int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return  # the kubelet logs and drops a malformed resize
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def helper_janitor(spec: dict) -> None:
    """Removes the kubelet's temp dir if the kubelet dies without stop() (SIGKILL, crash)."""
    _devnull_stdio()
    lifeline = spec["lifeline_fd"]
    while True:
        ready, _, _ = select.select([lifeline], [], [])
        if ready and not os.read(lifeline, 1):
            break
    if os.path.exists(spec["path"]):
        import shutil  # noqa: PLC0415

        time.sleep(0.5)  # let the other helpers, which saw the same EOF, finish first
        shutil.rmtree(spec["path"], ignore_errors=True)
    os._exit(0)


def start_janitor(lifeline: Lifeline, path: str) -> subprocess.Popen[bytes]:
    spec = {"kubelet": lifeline.tag, "lifeline_fd": lifeline.read_fd, "path": path}
    return subprocess.Popen(_helper_argv("janitor", spec), pass_fds=(lifeline.read_fd,),
                            stdin=subprocess.DEVNULL, start_new_session=True)


def main() -> None:
    mode, spec = sys.argv[1], marshal.loads(bytes.fromhex(sys.argv[2]))
    {"pause": helper_pause, "shim": helper_shim, "exec": helper_exec, "janitor": helper_janitor}[mode](spec)


if __name__ == "__main__":
    main()
