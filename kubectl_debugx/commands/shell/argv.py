"""Pure builders of the shell: the command run in the debug container, its environment and its prompt.

Nothing is written into the target's filesystem (cdebug links its toolkit into the target's root; we do not): the
shell runs in the debug container, its tools are the debug image's, and only its working directory is the
target's root, /proc/PID/root of the target's main process. What we write at all is the debug container's own
(the PID record in its /tmp); history goes nowhere (HISTFILE=/dev/null: a shell would write it under $HOME).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from kubectl_debugx.errors import UsageError

SHELL = "sh"  # the default command: every debug image has it (the tethers need it anyway)
# The target's main process as the debug container sees it: it shares the target container's PID namespace
# (targetContainerName), whose PID 1 is that container's main process (shareProcessNamespace is refused:
# commands/asuser.py).
TARGET_PID = 1
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# argv after `sh -c SCRIPT sh`: PID, PROMPT, N, N x NAME=VALUE, then the command. Every value is a positional
# parameter, exported or exec'd as is: no shell ever reads the user's words as code.
SCRIPT = ('p=$1 ps1=$2 n=$3; shift 3; '
          'export DEBUGX_TARGET_PID="$p" DEBUGX_TARGET_ROOT="/proc/$p/root" PS1="$ps1" HISTFILE=/dev/null; '
          'while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n-1)); done; '
          'cd "/proc/$p/root" 2>/dev/null || echo "kubectl-debugx: cannot enter /proc/$p/root, the target'"'"'s '
          'root, as this user (see --profile); starting in $PWD" >&2; '
          '[ $# -gt 0 ] || set -- ' + SHELL + '; exec "$@"')


def parse_env(values: Sequence[str]) -> list[str]:
    """--env NAME=VALUE (repeatable), checked: a NAME a shell can export."""
    out = []
    for value in values:
        name, eq, _ = value.partition("=")
        if not eq or not _ENV_NAME.fullmatch(name):
            raise UsageError(f"--env: expected NAME=VALUE with NAME a variable name, got {value!r}")
        out.append(value)
    return out


def prompt(pod: str, container: str) -> str:
    """PS1: which pod and container the shell is beside (names have no `$` or backquote: DNS labels)."""
    return f"{pod}/{container} $ "


def tool_name(command: Sequence[str]) -> str:
    """The name the command runs as (what the PID record and our messages call it)."""
    return (command[0].rsplit("/", 1)[-1] if command else SHELL) or SHELL


def shell_argv(pid: int, ps1: str, env: Sequence[str], command: Sequence[str]) -> list[str]:
    """The argv run in the debug container (behind the PID record: remote/tether.recorded_command): enter the
    target's root, set DEBUGX_TARGET_ROOT, DEBUGX_TARGET_PID, PS1 and --env (after ours: the user's win), then
    exec the command (default `sh`), so the exec's stdin, stdout, stderr and terminal are the command's own."""
    return ["sh", "-c", SCRIPT, "sh", str(pid), ps1, str(len(env)), *env, *command]


def env_for(env: Sequence[str], term: str | None, interactive: bool) -> list[str]:
    """--env, and in a terminal session the local TERM first (as ssh passes it), which --env may override."""
    return ([f"TERM={term}"] if interactive and term else []) + list(env)


def describe(command: Sequence[str]) -> str:
    return shlex.join(command) if command else SHELL
