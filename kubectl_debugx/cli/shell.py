"""`kubectl debugx shell`: its flags; one pod (a workload's first running pod)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from kubectl_debugx.cli.workflow import Work, app, debug_flags, examples, first_pod, workflow
from kubectl_debugx.errors import UsageError
from kubectl_debugx.flags import CONNECTION, CONTAINER, TALK, Flags, TargetArg, shared_flags

if TYPE_CHECKING:
    from kubectl_debugx.talk import Talk


ShellProfileOpt = Annotated[
    str, typer.Option("--profile", help="auto (default: the target's own uid and gid, no capability; restricted "
                      "admits it), or legacy, general, baseline, netadmin, restricted, sysadmin.")
]


@app.command(short_help="A shell (or command) beside a container, in its root.",
             epilog=examples(
    "# an interactive shell beside nginx: ps shows its processes, the working directory is its root",
    "kubectl debugx shell web -n shop",
    "# one command; its exit status is ours, its stdout and stderr stay apart",
    "kubectl debugx shell web -- ps -ef",
    "kubectl debugx shell web -- sh -c 'ls $DEBUGX_TARGET_ROOT/etc/nginx'",
    "# stdin streamed: a file of the target's into a local tool, or a script into a remote sh",
    "kubectl debugx shell deploy/web -- cat etc/nginx/nginx.conf | grep listen",
    "printf 'ps\\nls\\n' | kubectl debugx shell web",
))
@shared_flags(*CONTAINER, "ttl", "dry_run", *CONNECTION, *TALK, profile=(ShellProfileOpt, "auto"))
def shell(
    ctx: typer.Context,
    target: TargetArg = None,
    command: Annotated[list[str] | None, typer.Argument(metavar="[-- COMMAND [ARG...]]", show_default=False,
                                                        help="What to run instead of sh, after --.")] = None,
    container: Annotated[str | None, typer.Option("-c", "--container", help="Target container.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", metavar="NAME=VALUE", help="A variable for the shell "
                                                  "or COMMAND (repeatable).")] = None,
    *,
    flags: Flags,
) -> None:
    """Run a shell, or COMMAND, in a debug container beside a container: in its PID namespace, starting in its
    root (/proc/PID/root of its main process, also $DEBUGX_TARGET_ROOT; the PID is $DEBUGX_TARGET_PID).

    Interactive (a terminal) when stdin is one and no COMMAND is given; otherwise stdin is streamed to COMMAND
    and its stdout and stderr stay apart. The exit status is the shell's or COMMAND's. Works in distroless and
    non-root containers: the debug container runs as the target's own uid and gid, without any capability.
    """
    from kubectl_debugx.commands import shell as shellm

    if flags.selector is not None:
        raise UsageError("shell works on one pod: name it, or TYPE/NAME for one of a workload's pods")
    words = tuple(command or ())
    interactive = not words and _foreground_terminal()

    def prepare(talk: Talk, name: str) -> Work:
        opts = shellm.ShellOptions(pod=name, container=container, command=words, env=tuple(env or ()),
                                   interactive=interactive, term=os.environ.get("TERM"), **debug_flags(flags))
        shellm.validate(opts)
        if interactive and talk.json_summary:
            raise UsageError("--summary json prints on stdout, which is the terminal of an interactive shell: "
                             "give a COMMAND, or leave it out")
        return lambda kube, talk: shellm.run(kube, opts, talk)

    workflow(ctx, flags, target, first_pod(prepare))


def _foreground_terminal() -> bool:
    """stdin is a terminal whose foreground job we are: only then is a terminal session ours to open (a job in
    the background would be stopped by SIGTTIN/SIGTTOU at its first read or change of the terminal's mode)."""
    try:
        fd = sys.stdin.fileno() if sys.stdin is not None else -1
        return fd >= 0 and os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (OSError, ValueError):
        return False
