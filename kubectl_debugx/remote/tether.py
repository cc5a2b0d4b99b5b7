"""Pure builders for a tool whose exec's stdin is the user's (the shell): the tether then runs apart.

specs.tethered_command reads the tool's own exec stdin as the tether, never written: its EOF is the client's death.
A shell's stdin carries what the user types or pipes, and its EOF is the user's (`printf hi | shell POD -- cat`:
cat must see EOF, and a command must go on after it: `... -- sh -c 'cat; sleep 1; echo done'`), so it cannot
tell the client's death. The tether is then a second exec beside the tool's, stdin open and never written, as
every tether: at its EOF (we closed it at the end, or died: recordings 23-tether-*, 2-17 ms after a kill -9) it
stops what the tool's record names. With a TTY the terminal cannot carry it either: what a runtime does to a
terminal whose client is gone is its own business (nothing, or a hangup), and the user's Ctrl-D is not our end.

What is stopped is the recorded process and every process below it (the shell's jobs, a `sleep 30` in its
foreground): the processes below it first, by SIGKILL, each only while it has the start time it had when the
tree was read (a PID reused meanwhile by the target's application has another: never signalled), while the shell
still lives to reap them (what outlives its parent goes to the PID namespace's PID 1, the target's main process,
which may never reap: a zombie; issue 22); then the shell gets SIGHUP (a terminal's hangup), and SIGKILL if it
still runs 1 s later.
Only sh builtins, `cat` and `sleep`, as the other tethers.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from kubectl_debugx.remote.specs import START_TIME_FN, pid_file, writable_check

RECORD_WAIT = 50  # tenths of a second the tether waits for the record (a client may die before it is written)
# `tree PID`: PID and every process below it, from the PPID field of each /proc/N/stat (after the last ") ",
# as START_TIME_FN reads it: comm may hold spaces); repeated until no new child is found.
_TREE = ('tree() { t=" $1 "; all=; for d in /proc/[0-9]*; do s=; read -r s 2>/dev/null < "$d/stat" || continue; '
         'set -- ${s##*") "}; all="$all ${d#/proc/}:$2"; done; n=1; while [ $n = 1 ]; do n=0; for e in $all; do '
         'case "$t" in *" ${e%%:*} "*) continue;; esac; case "$t" in *" ${e#*:} "*) t="$t${e%%:*} "; n=1;; '
         'esac; done; done; echo $t; }; ')


def recorded_command(run_id: str, tool: str, argv: Iterable[str]) -> list[str]:
    """argv run in place of a `sh` that first writes the record (PID, start time, tool: specs.PID_GLOB): the
    exec's stdin, stdout, stderr and terminal are argv's own, byte for byte."""
    record = pid_file(run_id)
    script = (f'{START_TIME_FN}{writable_check(record, 2)}echo "$$ $(st $$)" {shlex.quote(tool)} > {record} || exit; '
              'exec "$@"')
    return ["sh", "-c", script, "sh", *argv]


def _stop_script(run_id: str) -> str:
    record = pid_file(run_id)
    return (f'{START_TIME_FN}{_TREE}p=; s=; read -r p s _ 2>/dev/null < {record}; '
            'if [ -n "$p" ] && [ -n "$s" ] && [ "$(st "$p")" = "$s" ]; then ids=; '
            'for q in $(tree "$p"); do [ "$q" = "$p" ] || ids="$ids $q:$(st "$q")"; done; '
            'for e in $ids; do [ "$(st "${e%%:*}")" = "${e#*:}" ] && kill -KILL "${e%%:*}" 2>/dev/null; done; '
            '[ -n "$ids" ] && sleep 0.2; kill -HUP "$p" 2>/dev/null; i=0; '
            'while [ $i -lt 10 ] && [ "$(st "$p")" = "$s" ]; do sleep 0.1; i=$((i+1)); done; '
            '[ "$(st "$p")" = "$s" ] && kill -KILL "$p" 2>/dev/null; '
            f'echo stopped; else echo gone; fi; rm -f {record}')


def stop_command(run_id: str) -> list[str]:
    """Stop the recorded process and everything below it (see above), remove the record; prints `stopped` or
    `gone`. Run by a second exec at the end of every run (make sure), and by the tether."""
    return ["sh", "-c", _stop_script(run_id)]


def tether_command(run_id: str, then: list[str] | None = None) -> list[str]:
    """The tether apart: wait for EOF on this exec's stdin (a foreground `cat` reads the exec's own stdin:
    23-tether-pitfall-bg-stdin-is-devnull), then for the record (up to 5 s), then stop what it names; then run
    `then` (cp's upload: remove its temporary folder, once nothing writes there any more)."""
    record = pid_file(run_id)
    after = f"; {shlex.join(then)}" if then else ""
    return ["sh", "-c", f'cat >/dev/null; i=0; while [ ! -s {record} ] && [ $i -lt {RECORD_WAIT} ]; do sleep 0.1; '
                        f'i=$((i+1)); done; {_stop_script(run_id)}{after}']
