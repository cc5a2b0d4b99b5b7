"""shell, end to end: `-- COMMAND` (exit status, stdin, stdout and stderr apart), an interactive session through a
pseudo-terminal (keys, resize, Ctrl-C, exit status, the terminal's mode restored) in a distroless non-root target
under Pod Security restricted, and nothing left running after kill -9 of the client."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from .helpers import connection_args, executable, newest_debug_container, wait_until
from .test_cp import make_target

pytestmark = pytest.mark.e2e


def shell(e2e, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """`kubectl-debugx shell ARGS`, the connection's flags first: after `--` they would be COMMAND's."""
    return subprocess.run([executable(), "shell", *connection_args(e2e), *args], input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL, capture_output=True, timeout=120)


def test_shell_command_exit_status_stdin_stdout_stderr(e2e, nginx_pod):
    namespace, pod = nginx_pod
    r = shell(e2e, pod, "-n", namespace, "--", "sh", "-c", "exit 7")
    assert r.returncode == 7, r.stderr.decode()
    assert "Left in the cluster: ephemeral container debugx-" in r.stderr.decode()
    r = shell(e2e, pod, "-n", namespace, "--", "cat", stdin=b"hi")
    assert (r.returncode, r.stdout) == (0, b"hi"), r.stderr.decode()
    # stdout is the command's alone; its stderr is on ours, apart
    r = shell(e2e, pod, "-n", namespace, "--", "sh", "-c",
               'echo "$DEBUGX_TARGET_PID $DEBUGX_TARGET_ROOT $(pwd)"; echo to-stderr >&2; cat etc/hostname >&2')
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b"1 /proc/1/root /proc/1/root\n"
    assert b"to-stderr\n" in r.stderr
    # a script on stdin, read by the default sh; the target's processes are in view (nginx)
    r = shell(e2e, f"pod/{pod}", "-n", namespace, stdin=b"ps -eo args | grep -c '^nginx: master'\n")
    assert (r.returncode, r.stdout) == (0, b"1\n"), r.stderr.decode()
    # a dry run: the container a run would use, as YAML (here the idle one the runs above left, reused)
    r = shell(e2e, pod, "-n", namespace, "--dry-run", "--", "true")
    assert r.returncode == 0 and b"targetContainerName: nginx" in r.stdout, r.stderr.decode()
    assert "would run true as uid 0 in /proc/1/root" in r.stderr.decode()


def test_ctrl_c_stops_the_command_130_and_nothing_runs_on(e2e, nginx_pod):
    namespace, pod = nginx_pod
    proc = subprocess.Popen([executable(), "shell", *connection_args(e2e), pod, "-n", namespace, "--", "sh", "-c",
                             "sleep 301; echo never"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_until(lambda: any("sleep 301" in p for p in _all_debug_processes(e2e, namespace, pod)),
                   "the remote sleep 301", 60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err.decode()
        assert out == b""
        assert "sh stopped in pod nginx (Ctrl-C)" in err.decode()
        assert "Left in the cluster: ephemeral container debugx-" in err.decode()
        assert not any("sleep 301" in p for p in _all_debug_processes(e2e, namespace, pod))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _all_debug_processes(e2e, namespace: str, pod: str) -> list[str]:
    try:
        return debug_processes(e2e, namespace, pod, newest_debug_container(e2e, namespace, pod))
    except ValueError:  # no debug container runs yet
        return []


def test_shell_bad_env_is_refused_before_anything_is_created(e2e, nginx_pod):
    namespace, pod = nginx_pod
    r = shell(e2e, pod, "-n", namespace, "--env", "1X=y", "--", "true")
    assert r.returncode == 2
    assert r.stderr.decode().startswith("error: --env: expected NAME=VALUE")


class Terminal:
    """The built executable on a pseudo-terminal of the test's own, as a user's terminal runs it."""

    def __init__(self, *args: str, rows: int = 24, cols: int = 80) -> None:
        self.master, self.slave = os.openpty()
        self.resize(rows, cols)
        self.mode = termios.tcgetattr(self.slave)
        self.seen = b""

        def controlling_terminal() -> None:  # after setsid (start_new_session): the pty is ours, as a login's
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([executable(), *args], stdin=self.slave, stdout=self.slave,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     preexec_fn=controlling_terminal)

    def resize(self, rows: int, cols: int) -> None:
        # the kernel sends SIGWINCH to the terminal's foreground job: the client
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str, timeout: float = 60) -> str:
        """Read the terminal until `pattern` (a regex) shows up after what earlier expects consumed."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern.encode(), self.seen)
            if match:
                self.seen = self.seen[match.end():]
                return match.group(0).decode(errors="replace")
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"{pattern!r} not on the terminal; got {self.seen[-2000:]!r}; stderr: "
                                     f"{self.stderr_so_far()}")
            if select.select([self.master], [], [], min(left, 0.5))[0]:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # EIO: no process holds the terminal any more
                    time.sleep(0.05)

    def stderr_so_far(self) -> str:
        assert self.proc.stderr is not None
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def debug_processes(e2e, namespace: str, pod: str, ec: str) -> list[str]:
    out = e2e.kubectl("exec", "-n", namespace, pod, "-c", ec, "--", "ps", "-eo", "args", check=False).stdout
    return [line.strip() for line in out.splitlines()[1:]]


def test_shell_interactive_in_a_distroless_non_root_target_under_restricted(e2e, make_namespace, make_pod,
                                                                             tmp_path: Path):
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    make_target(e2e, make_pod, namespace, root_only=False)
    term = Terminal("shell", *connection_args(e2e), "app", "-n", namespace)
    try:
        term.expect(r"app/app \$ ", timeout=120)
        term.type("ps -eo user,args\r")
        term.expect(r"python3 -c")  # the target's process, from the debug container: one PID namespace
        term.type("ls; cat tmp/tree/small.txt\r")  # the working directory is the target's root
        term.expect(r"hello")
        term.type("id -u; echo $DEBUGX_TARGET_ROOT\r")
        term.expect(r"65532\s+/proc/1/root")
        term.type("stty size\r")
        term.expect(r"24 80")
        term.resize(30, 100)

        def size() -> str:
            term.type("stty size\r")
            return term.expect(r"\d+ \d+")

        wait_until(lambda: size() == "30 100", "stty size to say 30 100 after the resize", 20)
        # Ctrl-C stops the remote foreground job; the shell goes on
        term.type("sleep 30\r")
        ec = newest_debug_container(e2e, namespace, "app")
        wait_until(lambda: "sleep 30" in debug_processes(e2e, namespace, "app", ec), "the remote sleep 30", 30)
        started = time.monotonic()
        term.type("\x03")
        term.expect(r"app/app \$ ", timeout=20)
        term.type("echo alive-$((1+1))\r")
        term.expect(r"alive-2")
        assert time.monotonic() - started < 20
        # Ctrl-Z is the remote shell's too: its foreground job stops (job control), the client goes on
        term.type("sleep 31\r")
        wait_until(lambda: "sleep 31" in debug_processes(e2e, namespace, "app", ec), "the remote sleep 31", 30)
        term.type("\x1a")
        term.expect(r"app/app \$ ", timeout=20)
        assert term.proc.poll() is None
        term.type("kill -9 %1; echo z-$((2+2))\r")
        term.expect(r"z-4")
        wait_until(lambda: "sleep 31" not in debug_processes(e2e, namespace, "app", ec), "sleep 31 gone", 20)
        term.type("exit 3\r")
        try:
            term.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # ash: "You have stopped jobs." until it has reported the kill
            term.type("exit 3\r")
        assert term.proc.wait(timeout=30) == 3
        assert termios.tcgetattr(term.slave) == term.mode  # raw mode undone
        stderr = term.stderr_so_far()
        assert "Left in the cluster: ephemeral container debugx-" in stderr, stderr
        assert not [p for p in debug_processes(e2e, namespace, "app", ec) if p in ("sh", "sleep 30")]
    finally:
        term.close()


def test_kill_9_of_the_client_leaves_nothing_running(e2e, nginx_pod):
    namespace, pod = nginx_pod
    term = Terminal("shell", *connection_args(e2e), pod, "-n", namespace)
    try:
        term.expect(rf"{pod}/nginx \$ ", timeout=120)
        term.type("sleep 300\r")
        ec = newest_debug_container(e2e, namespace, pod)
        wait_until(lambda: "sleep 300" in debug_processes(e2e, namespace, pod, ec), "the remote sleep 300", 30)
        os.kill(term.proc.pid, signal.SIGKILL)
        term.proc.wait()
        killed = time.monotonic()
        wait_until(lambda: not [p for p in debug_processes(e2e, namespace, pod, ec) if p in ("sh", "sleep 300")],
                   "the shell and its sleep gone", timeout=5, interval=0.2)
        assert time.monotonic() - killed <= 5.5
    finally:
        term.close()
