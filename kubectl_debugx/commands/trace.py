"""trace: strace a process of the target container from an ephemeral container in its PID namespace.

The processes are looked up before anything is created, by a short read-only exec in the target container
when it has a shell, so a wrong --pid/--process costs nothing; otherwise, and always for the checks that
need the debug image (strace present, kernel.yama.ptrace_scope), in the debug container.
strace writes its trace through `-o '|cat'`: the trace reaches the exec stdout (data) while strace's own
messages stay on stderr (talk). Reopening /proc/self/fd/1 instead would fail for a non-root debug container
(the pipe belongs to root) and for a socket.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubectl_debugx.errors import DebugxError, NotFound, RemoteFailed, UsageError
from kubectl_debugx.formats.traceprocs import (
    PROBE_COMMAND,
    Probe,
    Selection,
    container_ids,
    container_processes,
    parse_probe,
    process_table,
    select_processes,
)
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.execstream import run_to_end
from kubectl_debugx.remote import ephemeral, profiles, session, specs, toolrun
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.sinks import ByteSink, PipeClosed, WholeLines
from kubectl_debugx.remote.streamrun import ToolStderr
from kubectl_debugx.summary import stopped_by
from kubectl_debugx.talk import Talk, plural

DEFAULT_IMAGE = specs.DEFAULT_IMAGE
TOOL = "strace"
COMMAND = "trace"
DEFAULT_PROFILE = "general"  # CAP_SYS_PTRACE and nothing more: the least privilege that can attach
TRACE_TO_STDOUT = "|cat"  # strace's -o: pipe the trace to cat, whose stdout is the exec stdout


@dataclass(frozen=True, kw_only=True)
class TraceOptions(session.DebugOptions):
    pod: str
    container: str | None = None
    pid: int | None = None
    process: str | None = None
    follow_forks: bool = True
    expr: str = ""
    string_size: int | None = None
    summary: bool = False
    duration: float | None = None
    output: str = "-"
    profile: str = DEFAULT_PROFILE
    follow: bool = False  # --follow: pods of the workload that start running while tracing join


def validate(opts: TraceOptions) -> None:
    """Checks that need no cluster; each message names its flag."""
    ephemeral.validate_debug_options(opts.profile, opts.ttl, opts.duration)
    if opts.pid is not None and opts.process is not None:
        raise UsageError("--pid and --process cannot be used together: choose one process or a name")
    if opts.pid is not None and opts.pid <= 0:
        raise UsageError(f"--pid: must be a positive process ID, got {opts.pid}")
    if opts.process is not None and (not opts.process.strip() or "\n" in opts.process):
        raise UsageError(f"--process: invalid process name {opts.process!r}")
    if opts.string_size is not None and opts.string_size < 0:
        raise UsageError(f"-s/--string-size: must be 0 or more bytes, got {opts.string_size}")
    if "\0" in opts.expr:
        raise UsageError("-e/--expr: the expression cannot hold a NUL character")


def profile_of(opts: TraceOptions) -> str:
    return DEFAULT_PROFILE if opts.profile == "auto" else opts.profile


def strace_argv(opts: TraceOptions, pids: Iterable[int]) -> list[str]:
    """strace's argv: the trace to stdout through cat, messages on stderr. The expression is one argument
    and the whole argv follows `sh -c` as positional parameters, so no shell ever reads user input."""
    argv = [TOOL, "-o", TRACE_TO_STDOUT]
    if opts.follow_forks:
        argv.append("-f")
    if opts.summary:
        argv.append("-c")  # timestamps, durations and decoded fds have no effect on the count table
    else:
        argv += ["-tt", "-T", "-yy"]
    if opts.string_size is not None:
        argv += ["-s", str(opts.string_size)]
    if opts.expr:
        argv += ["-e", opts.expr]
    for pid in pids:
        argv += ["-p", str(pid)]
    return argv


def _probe(kube: KubeApi, target: Target, container: str, ours: bool = False) -> Probe | None:
    """Run the probe in `container`; None when it cannot run there (no shell, not allowed...). In our own
    debug container (`ours`) a failed exec is that failure, not a missing tool: it runs, and the image's lack
    shows in the probe's outcome (CI: a debug container ended under the test cluster's kill, and the error
    blamed the image)."""
    try:
        with kube.exec_connection(target.namespace, target.pod_name, container, PROBE_COMMAND) as conn:
            out, _, outcome = run_to_end(conn)
    except DebugxError:
        if ours:
            raise
        return None
    if outcome.exit_code != 0 or not out.startswith(b"Y "):
        return None
    probe = parse_probe(out.decode("utf-8", "replace"))
    if not any(p.pid == probe.self_pid for p in probe.procs):
        return None  # it could not read /proc (no tr or readlink there): not a listing to trust
    return probe


# --- checks and explanations (pure) -------------------------------------------------------------------


def scope_error(scope: int | None, target: Target) -> RemoteFailed | None:
    if scope == 3:
        node = (target.pod.get("spec") or {}).get("nodeName") or "the node"
        return RemoteFailed(f"kernel.yama.ptrace_scope is 3 on {node}: the kernel refuses every ptrace attach "
                            "there until the node reboots, so no process can be traced; nothing was traced")
    return None


def has_ptrace(container: Mapping[str, Any]) -> bool:
    caps = profiles.added_capabilities(container)
    return profiles.is_privileged(container) or "SYS_PTRACE" in caps or "ALL" in caps


def _effective_user(container: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[Any, bool]:
    """(runAsUser, runAsNonRoot) the debug container runs with: its own settings over the pod's."""
    sc = container.get("securityContext") or {}
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    user = sc["runAsUser"] if "runAsUser" in sc else psc.get("runAsUser")
    non_root = sc["runAsNonRoot"] if "runAsNonRoot" in sc else psc.get("runAsNonRoot", False)
    return user, bool(non_root)


def _attach_limits(container: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[bool, str | None]:
    """What keeps strace from attaching to another user's process: no CAP_SYS_PTRACE, and a non-root user
    (`runAsUser N` or `runAsNonRoot`: its capabilities are not effective), None when it runs as root."""
    user, non_root = _effective_user(container, pod)
    non_root_user = (user is not None and user != 0) or (user is None and non_root)
    return not has_ptrace(container), (f"runAsUser {user}" if user else "runAsNonRoot") if non_root_user else None


def explain_eperm(container: Mapping[str, Any], pod: Mapping[str, Any], profile: str, scope: int | None,
                  pids: Iterable[int]) -> str:
    """Why the kernel refused to attach, from what we know of the debug container and the node."""
    causes = []
    no_ptrace, who = _attach_limits(container, pod)
    if no_ptrace:
        causes.append(f"the debug container has no CAP_SYS_PTRACE (profile {profile}), which tracing another "
                      "user's process needs: use --profile general (the default) or sysadmin")
    if who:
        causes.append(f"the debug container runs as a non-root user ({who}), "
                      "so its capabilities are not effective: let it run as root (runAsUser: 0, "
                      "runAsNonRoot: false) in --custom")
    if scope == 2 and has_ptrace(container) and not causes:
        causes.append("kernel.yama.ptrace_scope is 2 on the node: only CAP_SYS_PTRACE may attach, and it is not "
                      "effective here")
    elif scope in (1, 2) and not has_ptrace(container):
        causes.append(f"kernel.yama.ptrace_scope is {scope} on the node, which also requires CAP_SYS_PTRACE")
    if not causes:
        causes.append("the debug container has CAP_SYS_PTRACE and runs as root, so the node's seccomp, AppArmor "
                      "or SELinux policy (or a user namespace of the pod) forbids ptrace: try --profile sysadmin")
    listed = ", ".join(str(p) for p in pids)
    return f"strace cannot attach to PID {listed}: Operation not permitted: " + "; ".join(causes)


ADMISSION_HINT = ("tracing needs CAP_SYS_PTRACE, which Pod Security admits only at level privileged: trace in "
                  "a namespace labelled pod-security.kubernetes.io/enforce=privileged (or without enforce label)")


# --- strace's stderr ------------------------------------------------------------------------------------


@dataclass
class StraceTalk(ToolStderr):
    """strace's stderr: held back until it attaches (so a failure is told once, as the error), then shown
    live. Attach refusals and vanished processes are collected."""

    show: Callable[[str], None]
    attached: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)
    early: list[str] = field(default_factory=list)
    # Across pods: strace attaches to its PIDs one by one, a "Process N attached" line each, so a pod's first
    # line does not mean all are traced (nginx runs 2 workers: recordings 30-nginx-workers); `settled` is told
    # once every one of the `expect` PIDs is attached, refused or gone, with how many are attached.
    expect: int = 0
    settled: Callable[[int], None] | None = None

    def _line(self, line: str) -> None:
        self._read(line)
        if self.settled is not None and len(self.attached) + len(self.refused) + len(self.vanished) >= self.expect:
            settled, self.settled = self.settled, None
            settled(len(self.attached))

    def _read(self, line: str) -> None:
        if not line:
            return
        if line.startswith("strace: attach: ptrace("):
            pid = _pid_in(line)
            if line.endswith("Operation not permitted"):
                self.refused.append(pid)
                return
            if line.endswith("No such process"):
                self.vanished.append(pid)
                return
        if line.startswith("strace: Process ") and line.endswith(" attached"):
            pid = _pid_in(line)
            if not self.attached:
                for held in self.early:
                    self.show(held)
                self.early = []
            self.attached.append(pid)
        if self.attached:
            self.show(line)
        else:
            self.early.append(line)

    def error_line(self) -> str:
        lines = [x for x in self.early if x.startswith("strace:") and "Try 'strace -h'" not in x]
        return lines[-1] if lines else (self.early[-1] if self.early else "")


def _pid_in(line: str) -> int:
    digits = "".join(c if c.isdigit() else " " for c in line).split()
    return int(digits[-1]) if digits else 0


# --- the workflow ------------------------------------------------------------------------------------


def ptrace_notes(container: Mapping[str, Any], pod: Mapping[str, Any], profile: str) -> list[str]:
    """What the debug container cannot attach to, said before it is added."""
    notes = []
    no_ptrace, who = _attach_limits(container, pod)
    if no_ptrace:
        notes.append(f"profile {profile} adds no CAP_SYS_PTRACE: strace can attach only to processes of its "
                     "own user, and only where kernel.yama.ptrace_scope is 0")
    if who:
        notes.append("the debug container runs as a non-root user, so its capabilities are not effective: "
                     "strace can attach only to processes of that same user")
    return notes


def early_selection(kube: KubeApi, target: Target, opts: TraceOptions, talk: Talk) -> Selection | None:
    """Before creating anything: the processes as the target container itself sees them, if it has a shell (its
    ptrace_scope checked); None when it has none (they are chosen once the debug container runs)."""
    early = _probe(kube, target, target.container)
    if early is None:
        return None
    error = scope_error(early.ptrace_scope, target)
    if error:
        raise error
    ids = container_ids(target.pod)
    others = [cid for n, cid in ids.items() if n != target.container]
    return _select(early, True, ids.get(target.container, ""), others, opts, target, talk)


def dry_run_detail(selection: Selection | None) -> str:
    return (f"would trace {', '.join(p.label for p in selection.procs)}" if selection
            else "the process is looked up once the debug container runs")


def in_debug_container(kube: KubeApi, target: Target, ec: str, opts: TraceOptions, early: Selection | None,
                       talk: Talk, where: str = "") -> tuple[Selection, Probe]:
    """The checks once the debug container `ec` runs, for one pod and each of many (`where` names the pod in
    its errors; a NotFound is the caller's to place): it can list processes and has strace, its ptrace_scope
    lets strace attach, and the processes chosen before it ran (`early`, from the target itself) are still
    there; else they are chosen now."""
    probe = _probe(kube, target, ec, ours=True)
    if probe is None:
        raise RemoteFailed(f"cannot list processes in the debug container {ec}{where}: image {opts.image} needs "
                           "sh, cat, tr and readlink (choose another with --image)")
    error = scope_error(probe.ptrace_scope, target)
    if error:
        raise error
    if not probe.strace:
        raise RemoteFailed(f"strace is not in image {opts.image}: choose an image that has it with --image")
    if early is None:
        ids = container_ids(target.pod)
        others = [cid for n, cid in ids.items() if n != target.container]
        return _select(probe, False, ids.get(target.container, ""), others, opts, target, talk), probe
    visible = {p.pid for p in probe.procs}
    gone = [p for p in early.pids if p not in visible]
    if gone and len(gone) == len(early.pids):
        raise NotFound(f"PID {', '.join(map(str, gone))} exited before it could be traced")
    if gone:
        early = Selection(tuple(p for p in early.procs if p.pid not in gone), early.why)
    return early, probe


def _select(probe: Probe, inside_target: bool, target_id: str, others: list[str], opts: TraceOptions,
            target: Target, talk: Talk) -> Selection:
    procs = container_processes(probe, inside_target, target_id, others)
    try:
        return select_processes(procs, opts.pid, opts.process, target.container)
    except NotFound:
        for line in process_table(procs):
            talk.say(line)
        raise


def trace_one(kube: KubeApi, target: Target, ec: str, container: Mapping[str, Any], opts: TraceOptions,
              profile: str, selection: Selection, scope: int | None, talk: Talk) -> int:
    """One pod's strace into -o as a file or stdout, its lines as strace wrote them (whole lines only)."""
    sink = ByteSink(opts.output)
    strace = StraceTalk(talk.say)
    lines = 0
    pipe_closed = False
    lines_out = WholeLines(sink)

    def on_stdout(data: memoryview) -> None:
        nonlocal pipe_closed, lines
        if pipe_closed:
            return
        try:
            lines += lines_out.write(data)
        except PipeClosed:
            pipe_closed = True

    def close() -> None:
        with contextlib.suppress(PipeClosed):
            lines_out.close(flush=not pipe_closed)

    talk.say(f"Tracing in pod {target.namespace}/{target.pod_name} (container {target.container}) into "
             f"{sink.display}; Ctrl-C to stop (the traced processes go on)")
    ran = toolrun.run_tool(kube, target, ec, TOOL, strace_argv(opts, selection.pids), on_stdout=on_stdout,
                           stderr=strace, duration=opts.duration, limit_reached=lambda: pipe_closed, talk=talk,
                           close=close, command=COMMAND)
    state, outcome = ran.state, ran.outcome
    ended = _STOPPED_BY.get(state.reason, state.reason) or (
        "the traced processes exiting" if outcome.exit_code == 0 and strace.attached else "")
    talk.say(summary_text(selection, strace.attached, lines, sink.written, sink.display, ran.elapsed, ended, profile,
                          ec))
    talk.record(**summary_record(selection.pids, strace.attached, lines, sink.written, sink.display, ran.elapsed,
                                 profile, target.container, ec, stopped_by(state.reason)))
    cut = toolrun.cut_error(ran, sink.display, f"{lines} lines")
    if cut:
        raise cut
    if strace.refused and not strace.attached:
        raise RemoteFailed(explain_eperm(container, target.pod, profile, scope, strace.refused))
    if strace.refused:
        talk.warn(explain_eperm(container, target.pod, profile, scope, strace.refused))
    if strace.vanished and not strace.attached:
        raise NotFound(f"PID {', '.join(map(str, strace.vanished))} exited before strace could attach")
    failed = toolrun.tool_error(ran, TOOL, strace.error_line(), opts.image)
    if failed:
        raise failed
    return state.exit_code


_STOPPED_BY = {"duration": "--duration", "SIGINT": "Ctrl-C (SIGINT)", "SIGTERM": "SIGTERM",
               "limit": "the reader of stdout going away"}


def summary_text(selection: Selection, attached: Iterable[int], lines: int, written: int, output: str,
                 elapsed: float, ended: str, profile: str, ec: str) -> str:
    """One line: processes traced (the chosen ones strace attached to), and the threads and children it
    followed; lines written; duration; why it stopped; profile used."""
    chosen = set(selection.pids)
    seen = set(attached)
    traced = sorted(chosen & seen)
    followed = len(seen - chosen)
    parts = [f"{plural(len(traced), 'process', 'processes')} traced"
             + (f" (PID {', '.join(map(str, traced))})" if traced else "")
             + (f" and {followed} of {'their' if len(traced) > 1 else 'its'} threads or children followed"
                if followed else ""),
             f"{plural(lines, 'line')} ({plural(written, 'byte')}) written to {output}",
             f"{elapsed:.1f}s"]
    if ended:
        parts.append(f"stopped by {ended}")
    parts.append(f"profile {profile}, container {ec}")
    return "; ".join(parts)


def summary_record(pids: Iterable[int], attached: Iterable[int], lines: int, written: int, output: str,
                   elapsed: float, profile: str, container: str, ec: str, stopped: str | None) -> dict[str, Any]:
    """trace's part of the JSON summary (kubectl_debugx/summary.py)."""
    chosen, seen = list(pids), set(attached)
    return {
        "container": container, "debugContainer": ec, "profile": profile, "output": output,
        "durationSeconds": round(elapsed, 3), "stoppedBy": stopped, "pids": chosen,
        "traced": sorted(set(chosen) & seen), "followed": len(seen - set(chosen)), "linesWritten": lines,
        "bytesWritten": written,
    }
