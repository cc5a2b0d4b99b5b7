"""The target container's processes, for trace: a read-only /proc probe, its parsing, and the choice of
the processes to trace. Pure, apart from the probe's text which trace runs by exec."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import NotFound

# Fixed text (no user input): facts about the node and one record per process of the PID namespace, from
# /proc rather than ps, whose options differ between procps and BusyBox. One `KEY value` per line.
PROBE_SCRIPT = r"""
echo "Y $(cat /proc/sys/kernel/yama/ptrace_scope 2>/dev/null)"
echo "T $(command -v strace 2>/dev/null)"
echo "I $$"
echo "M $(readlink /proc/$$/ns/mnt 2>/dev/null)"
for d in /proc/[0-9]*; do
  s="$(tr '\n' ' ' < "$d/stat" 2>/dev/null)"
  [ -n "$s" ] || continue
  echo "P ${d#/proc/}"
  echo "S $s"
  echo "N $(readlink "$d/ns/mnt" 2>/dev/null)"
  echo "G $(tr '\n' ' ' < "$d/cgroup" 2>/dev/null)"
  echo "A $(tr '\0\n' '  ' < "$d/cmdline" 2>/dev/null)"
done
"""
PROBE_COMMAND = ["sh", "-c", PROBE_SCRIPT]


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    args: str
    mntns: str = ""
    cgroup: str = ""

    @property
    def label(self) -> str:
        return f"{self.pid} ({self.args or self.comm})"


@dataclass(frozen=True)
class Probe:
    self_pid: int
    self_mntns: str = ""
    ptrace_scope: int | None = None
    strace: str = ""
    procs: tuple[Proc, ...] = ()


def parse_probe(text: str) -> Probe:
    """PROBE_SCRIPT's output as a Probe; processes that vanished while being read are skipped."""
    facts: dict[str, str] = {}
    procs: list[Proc] = []
    current: dict[str, str] = {}

    def flush() -> None:
        proc = _proc(current)
        if proc is not None:
            procs.append(proc)
        current.clear()

    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "P":
            flush()
            current["P"] = value.strip()
        elif key in ("S", "N", "G", "A") and current:
            current[key] = value.strip()
        elif key in ("Y", "T", "I", "M"):
            facts[key] = value.strip()
    flush()
    scope = facts.get("Y", "")
    self_pid = facts.get("I", "")
    return Probe(
        self_pid=int(self_pid) if self_pid.isdigit() else 0,
        self_mntns=facts.get("M", ""),
        ptrace_scope=int(scope) if scope.isdigit() else None,
        strace=facts.get("T", ""),
        procs=tuple(sorted(procs, key=lambda p: p.pid)),
    )


def _proc(record: Mapping[str, str]) -> Proc | None:
    stat = record.get("S", "")
    pid = record.get("P", "")
    # /proc/PID/stat: `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    open_, close = stat.find("("), stat.rfind(")")
    if not pid.isdigit() or open_ < 0 or close < open_:
        return None
    rest = stat[close + 1:].split()
    if len(rest) < 2 or not rest[1].isdigit():
        return None
    return Proc(int(pid), int(rest[1]), stat[open_ + 1:close], record.get("A", ""), record.get("N", ""),
                record.get("G", ""))


def container_ids(pod: Mapping[str, Any]) -> dict[str, str]:
    """Container name -> runtime ID (the hex after `containerd://`, `cri-o://`, `docker://`)."""
    ids = {}
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for s in status.get(key) or []:
            cid = str(s.get("containerID") or "").split("://", 1)[-1]
            if cid:
                ids[s["name"]] = cid
    return ids


def _with_descendants(procs: Iterable[Proc], roots: set[int], only_unknown_mntns: bool = False) -> set[int]:
    """`roots` and every process below them (those whose mount namespace we could read only when
    only_unknown_mntns is set)."""
    members = set(roots)
    procs = list(procs)
    grew = True
    while grew:
        grew = False
        for p in procs:
            if p.ppid in members and p.pid not in members and not (only_unknown_mntns and p.mntns):
                members.add(p.pid)
                grew = True
    return members


def container_processes(probe: Probe, inside_target: bool, target_id: str = "",
                        other_ids: Iterable[str] = ()) -> list[Proc]:
    """The processes of the target container among all those of its PID namespace.

    Never ours (the probe and its children; seen from the debug container, everything in its mount
    namespace, such as its sleep), never the pod's pause process, never a process whose cgroup names another
    container. When cgroup paths name the target container (real runtimes do), exactly its processes.
    Otherwise those in the target's mount namespace (ours when the probe runs in the target; seen from the
    debug container, that of the lowest PID: the target's main process, PID 1 of its PID namespace) and,
    where a mount namespace cannot be read without CAP_SYS_PTRACE, their children: processes never move
    between containers, only `exec` adds processes to one, and those have no parent in the namespace.
    """
    ours = {probe.self_pid}
    if not inside_target and probe.self_mntns:
        ours |= {p.pid for p in probe.procs if p.mntns == probe.self_mntns}
    ours = _with_descendants(probe.procs, ours)
    others = [i for i in other_ids if i]
    visible = [
        p for p in probe.procs
        if p.pid not in ours and not (p.comm == "pause" and p.ppid == 0) and not any(i in p.cgroup for i in others)
    ]
    if target_id:
        mine = [p for p in visible if target_id in p.cgroup]
        if mine:
            return mine
    # Seen from the debug container, the lowest PID is the target's main process.
    anchor = probe.self_mntns if inside_target else (visible[0].mntns if visible else "")
    if not anchor:
        return visible
    members = _with_descendants(visible, {p.pid for p in visible if p.mntns == anchor}, only_unknown_mntns=True)
    return [p for p in visible if p.pid in members]


@dataclass(frozen=True)
class Selection:
    procs: tuple[Proc, ...]
    why: str  # what the user is told about the choice

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def select_processes(procs: list[Proc], pid: int | None, name: str | None, container: str) -> Selection:
    """The process(es) to trace: --pid, --process NAME (command name, program or arguments), or the
    container's main process (the lowest PID). NotFound lists the container's processes."""
    if pid is not None:
        chosen = [p for p in procs if p.pid == pid]
        why = f"PID {pid}"
    elif name is not None:
        chosen = [p for p in procs if _matches(p, name)]
        why = (f"--process {name!r} matches {len(chosen)} processes; tracing all of them"
               if len(chosen) > 1 else f"--process {name!r}")
    else:
        chosen = procs[:1]
        why = f"the main process of container {container}"
        if len(procs) > 1:
            why += " (choose another with --pid or --process)"
    if not chosen:
        asked = f"PID {pid}" if pid is not None else f"--process {name!r}" if name is not None else "a process"
        if not procs:
            raise NotFound(f"no process of container {container} is visible from the debug container, "
                           f"so {asked} cannot be traced")
        listing = ", ".join(f"{p.pid} {p.comm}" for p in procs)
        raise NotFound(f"no process of container {container} matches {asked}; its processes (PID COMMAND): "
                       f"{listing}")
    return Selection(tuple(chosen), why)


def _matches(proc: Proc, name: str) -> bool:
    program = proc.args.split(" ", 1)[0] if proc.args else ""
    return proc.comm == name or os.path.basename(program) == name or name in proc.args


def process_table(procs: Iterable[Proc]) -> list[str]:
    lines = [f"{'PID':>7} {'PPID':>7} COMMAND"]
    lines += [f"{p.pid:>7} {p.ppid:>7} {p.args or '[' + p.comm + ']'}" for p in procs]
    return lines


