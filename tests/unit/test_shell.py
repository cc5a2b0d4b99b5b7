"""shell: every object it sends, compared whole (the debug container, the two execs' argv and flags, the frames
on the exec stream), the remote scripts run by a real sh, and the relay of stdin over a real socket."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_debugx.commands import asuser
from kubectl_debugx.commands.shell import argv as shellargv
from kubectl_debugx.errors import UsageError
from kubectl_debugx.remote import tether
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.process import RemoteProcess

from .fakekube import UnusedKube

NON_ROOT_POD = {"metadata": {"name": "app", "namespace": "shop"},
                "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                         "containers": [{"name": "app", "image": "distroless"}]},
                "status": {"phase": "Running"}}


class _Admit(UnusedKube):
    def __init__(self) -> None:
        self.patches: list[Any] = []

    def add_ephemeral_container(self, namespace: str, pod: str, patch: Any, dry_run: bool = False) -> Any:
        assert dry_run  # choosing sends dry runs only
        self.patches.append((namespace, pod, patch))
        return {}


def test_the_debug_container_of_a_non_root_target_is_its_uid_without_capability():
    kube = _Admit()
    chosen, uid = asuser.choose_profile(kube, Target("shop", NON_ROOT_POD, "app"), "shell", "auto", "img",
                                        None, 600, lambda _line: None)
    name = chosen.container["name"]
    assert name.startswith("debugx-")
    assert (chosen.profile, uid) == ("as uid 65532", 65532)
    assert chosen.container == {
        "name": name, "image": "img", "command": ["sleep", "600"], "targetContainerName": "app",
        "terminationMessagePolicy": "File", "stdin": False, "tty": False,
        "securityContext": {"runAsUser": 65532, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                            "allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    assert kube.patches == [("shop", "app", {"spec": {"ephemeralContainers": [chosen.container]}})]


def test_shared_pid_namespace_is_refused_naming_shell():
    pod = {**NON_ROOT_POD, "spec": {**NON_ROOT_POD["spec"], "shareProcessNamespace": True}}
    with pytest.raises(UsageError, match=r"shareProcessNamespace\): shell cannot tell"):
        asuser.choose_profile(_Admit(), Target("shop", pod, "app"), "shell", "auto", "img", None, 600,
                              lambda _line: None)


def test_the_shell_argv_whole():
    env = shellargv.env_for(["A=1"], "xterm-256color", interactive=True)
    assert shellargv.shell_argv(1, shellargv.prompt("web", "nginx"), env, ["ls", "-l"]) == [
        "sh", "-c", shellargv.SCRIPT, "sh", "1", "web/nginx $ ", "2", "TERM=xterm-256color", "A=1", "ls", "-l"]
    assert shellargv.env_for(["A=1"], "xterm", interactive=False) == ["A=1"]  # TERM only for a terminal
    assert shellargv.tool_name(["/usr/bin/ps", "-ef"]) == "ps"
    assert shellargv.tool_name([]) == "sh"


@pytest.mark.parametrize("bad", ["A", "1A=x", "A-B=x", "=x"])
def test_env_must_be_name_value(bad: str):
    with pytest.raises(UsageError, match="--env: expected NAME=VALUE"):
        shellargv.parse_env([bad])


def test_the_shell_script_enters_the_root_sets_the_environment_and_execs(tmp_path):
    """The script run by a real sh: PID `self` stands for the target's main process (its root is /)."""
    argv = shellargv.shell_argv("self", "p/c $ ", ["X=a b", "PS1=mine"], ["sh", "-c", 'echo "$PWD|$X|$PS1|'
                                '$DEBUGX_TARGET_ROOT|$DEBUGX_TARGET_PID|$HISTFILE"; exit 5'])  # type: ignore[arg-type]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (5, "/proc/self/root|a b|mine|/proc/self/root|self|/dev/null\n")


def _pids_of(marker: str) -> list[str]:
    found = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and marker.encode() in Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" "):
                found.append(d)
        except OSError:
            pass  # gone meanwhile
    return found


def test_the_tether_apart_stops_the_recorded_process_and_everything_below_it():
    run_id = "t" + str(os.getpid())
    marker = f"sleep 31{os.getpid() % 10}"
    tool = subprocess.Popen(tether.recorded_command(run_id, "sh", ["sh", "-c", f"{marker} & {marker}"]),
                            stdin=subprocess.DEVNULL)
    watcher = subprocess.Popen(tether.tether_command(run_id), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while len([p for p in _pids_of(marker) if p != str(tool.pid)]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watcher.stdin is not None and watcher.stdout is not None
    watcher.stdin.close()  # the client's death, as the tether sees it
    assert watcher.stdout.read() == b"stopped\n"
    assert tool.wait(5) < 0 or tool.returncode > 128
    assert _pids_of(marker) == []
    assert not os.path.exists(f"/tmp/debugx-{run_id}.pid")
    stop = subprocess.run(tether.stop_command(run_id), capture_output=True, text=True)
    assert stop.stdout == "gone\n"


def test_the_tether_apart_then_removes_what_the_tool_was_writing_once_the_tool_is_gone(tmp_path: Path):
    """cp's upload: a kill -9 of the client while tar writes into the temporary folder; the tether stops tar,
    then removes the folder (nothing written by the tool may be left, and nothing written after the remove)."""
    run_id = "u" + str(os.getpid())
    temp = tmp_path / ".debugx-upload-x"
    temp.mkdir()
    writer = f"while :; do date > {temp}/f; done"  # writes until it is stopped, as tar from a live stream
    tool = subprocess.Popen(tether.recorded_command(run_id, "sh", ["sh", "-c", writer]), stdin=subprocess.DEVNULL)
    watcher = subprocess.Popen(tether.tether_command(run_id, ["rm", "-rf", "--", str(temp)]),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not (temp / "f").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert watcher.stdin is not None and watcher.stdout is not None
    watcher.stdin.close()
    assert watcher.stdout.read() == b"stopped\n"
    assert watcher.wait(5) == 0
    assert tool.wait(5) != 0
    assert not temp.exists()
    assert tether.tether_command("abc") == tether.tether_command("abc", None)  # the shell's, unchanged


class _Execs(UnusedKube):
    def __init__(self) -> None:
        self.opened: list[tuple[str, list[str], bool, bool]] = []

    def open_exec(self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False,
                  tty: bool = False) -> Any:
        self.opened.append((container, command, stdin, tty))
        return f"conn{len(self.opened)}"


def test_the_tool_whose_stdin_is_the_users_opens_its_tether_first():
    kube = _Execs()
    process = RemoteProcess(kube, Target("shop", NON_ROOT_POD, "app"), "debugx-x", "sh", ["sh", "-i"],
                            run_id="abc", user_stdin=True, tty=True)
    assert process.open() == "conn2"
    assert kube.opened == [("debugx-x", tether.tether_command("abc"), True, False),
                           ("debugx-x", tether.recorded_command("abc", "sh", ["sh", "-i"]), True, True)]
    assert tether.recorded_command("abc", "sh", ["sh", "-i"])[-2:] == ["sh", "-i"]
