"""shell: a shell (or `-- COMMAND`) in a debug container beside the target container: its processes in view (the
target's PID namespace), its files at hand (the working directory is the target's root, /proc/PID/root of its
main process), the debug image's tools on PATH.

The one pipeline of every command: the target resolved (a workload's first running pod, said), the debug
container the least privilege that reads the target's root (the target's own uid and gid, no capability:
commands/asuser.py, as cp) admitted by a dry run, added or an idle one reused, what stays said on every way
out. The command runs as one RemoteProcess, tethered apart (remote/tether.py: its stdin is the user's).

Two ways to run, decided before anything is created:
- interactive (stdin is a terminal and no COMMAND): a TTY exec; the local terminal in raw mode (every key a byte
  for the remote terminal, Ctrl-C and Ctrl-Z included), its size sent at the start and on every SIGWINCH;
- otherwise stdin is streamed to the command and its end closes the command's stdin (v5), stdout and stderr
  stay apart (a TTY would merge them).
Either way the command's exit status is ours; Ctrl-C or SIGTERM given to us stop it: 130/143.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from kubectl_debugx.commands import asuser
from kubectl_debugx.commands.shell import argv as shellargv
from kubectl_debugx.commands.shell import terminal
from kubectl_debugx.errors import RemoteFailed
from kubectl_debugx.kube import execinput
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.execstream import ExecOutcome, ExecReader
from kubectl_debugx.remote import containers, ephemeral, fanout, session
from kubectl_debugx.remote.process import RemoteProcess
from kubectl_debugx.remote.streamrun import stop_ends_it
from kubectl_debugx.summary import stopped_by
from kubectl_debugx.talk import Talk

COMMAND = "shell"


@dataclass(frozen=True, kw_only=True)
class ShellOptions(session.DebugOptions):
    pod: str
    container: str | None = None
    command: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    interactive: bool = False  # stdin is a terminal and no COMMAND: a TTY session
    term: str | None = None  # the local $TERM, given to a TTY session


def validate(opts: ShellOptions) -> None:
    ephemeral.validate_debug_options(opts.profile, opts.ttl, None)
    shellargv.parse_env(opts.env)


def run(kube: KubeApi, opts: ShellOptions, talk: Talk) -> int:
    target = fanout.one_target(kube, kube.namespace, opts.pod, opts.container, talk.say)
    chosen, uid = asuser.choose_profile(kube, target, COMMAND, opts.profile, opts.image,
                                        opts.custom, opts.ttl, talk.say)
    session.check_access(kube, target, COMMAND, chosen)
    command = list(opts.command)
    talk.record(container=target.container, profile=chosen.profile, runAsUser=uid, interactive=opts.interactive,
                remoteCommand=command or [shellargv.SHELL])
    pid = shellargv.TARGET_PID
    argv = shellargv.shell_argv(pid, shellargv.prompt(target.pod_name, target.container),
                                shellargv.env_for(opts.env, opts.term, opts.interactive), command)
    if opts.dry_run:
        return session.dry_run(talk, chosen, target, f"would run {shellargv.describe(command)} as uid {uid} in "
                               f"/proc/{pid}/root{' with a terminal' if opts.interactive else ''}")
    ec = containers.start(kube, target, chosen, None, talk)
    if opts.profile == "auto" and not opts.custom:
        ec = asuser.match_gid(kube, target, ec, chosen, pid, opts.image, opts.ttl, COMMAND, talk)
    talk.record(debugContainer=ec)
    process = RemoteProcess(kube, target, ec, shellargv.tool_name(command), argv, user_stdin=True,
                            tty=opts.interactive)
    talk.say(f"Running {shellargv.describe(command)} in debug container {ec} of pod {target.pod_name} (uid {uid}), "
             f"beside container {target.container}: its root is /proc/{pid}/root ($DEBUGX_TARGET_ROOT)")
    return _session(process, opts.interactive, talk, opts.image)


def _stdin_fd() -> int | None:
    """Our stdin for the command, None when there is none to read: closed, or a terminal whose foreground job
    we are not (`shell POD -- ps &`: a read would stop us with SIGTTIN); the command then reads EOF at once."""
    try:
        fd = sys.stdin.fileno() if sys.stdin is not None else None
        if fd is not None:
            os.fstat(fd)
            if os.isatty(fd) and os.tcgetpgrp(fd) != os.getpgrp():
                return None
        return fd
    except (OSError, ValueError):
        return None


def _session(process: RemoteProcess, interactive: bool, talk: Talk, image: str) -> int:
    """Run the command to its end, relaying stdin and the terminal's size; its exit status is ours."""
    stdin_fd = _stdin_fd()
    out, err = sys.stdout.buffer, sys.stderr.buffer

    def on_stdout(data: memoryview) -> None:
        out.write(data)
        out.flush()  # a terminal (and a pipe's reader) wants each byte as it comes

    def on_stderr(data: bytes) -> None:
        err.write(data)
        err.flush()

    def on_stdin_end(closed: bool) -> None:
        if not closed:
            talk.warn("this API server speaks exec protocol v4, which cannot end a command's stdin: the command "
                      "reads no EOF (Ctrl-C stops it)")

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    outcome: ExecOutcome | None = None
    try:
        with stop_ends_it() as stop, terminal.on_resize(wake_w):
            conn = process.open()
            reader = ExecReader(conn, on_stdout, on_stderr)
            if interactive and stdin_fd is not None:
                sent = [terminal.size(stdin_fd)]

                def resized() -> None:
                    now = terminal.size(stdin_fd)
                    if now != sent[0] and now != (0, 0):
                        sent[0] = now
                        execinput.send_resize(conn, *now)

                if sent[0] != (0, 0):
                    execinput.send_resize(conn, *sent[0])
                with terminal.raw(stdin_fd):
                    execinput.relay(reader, conn, stdin_fd, end_stdin=False, wake_fd=wake_r, on_wake=resized)
            else:
                if stdin_fd is None:
                    on_stdin_end(execinput.close_stdin(conn))
                execinput.relay(reader, conn, stdin_fd, end_stdin=True, on_stdin_end=on_stdin_end)
            outcome = reader.outcome
    finally:
        os.close(wake_r)
        os.close(wake_w)
        process.make_sure_stopped(talk.warn)  # the terminal is restored by now: a warning reads normally
        process.close()
    if stop.signum is not None:
        talk.record(stoppedBy=stopped_by(stop.reason))
        talk.say(f"{process.tool} stopped in pod {process.target.pod_name} ({stop.said})")
        return int(stop.code)
    assert outcome is not None
    talk.record(commandExitCode=outcome.exit_code)
    if outcome.exit_code is not None:
        return outcome.exit_code
    if outcome.cut:
        raise RemoteFailed(f"{outcome.message}: the session with pod {process.target.pod_name} ended")
    raise RemoteFailed(ephemeral.tool_failure(process.tool, None, outcome.message, "", image))
