"""trace of N >= 1 pods: the pipeline (remote/fanout.py), then one pod's trace into a file or stdout (trace.py), or
the chosen process of every pod traced at once, all strace streams read by one loop (remote/toolrun.py). On stdout
each line is prefixed `POD/PID`, padded so the traces align as stern's prefixes do; with `-o DIR` each pod's
trace goes to DIR/POD.trace as strace wrote it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from kubectl_debugx.errors import NotFound, OutputError
from kubectl_debugx.formats.traceprocs import Selection
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.workloads import TargetRef
from kubectl_debugx.options import check_output_file
from kubectl_debugx.remote import containers, fanout, following, session, toolrun
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.sinks import ByteSink, PipeClosed, WholeLines
from kubectl_debugx.remote.streamrun import StopState
from kubectl_debugx.summary import stopped_by
from kubectl_debugx.talk import Talk, plural

from . import trace as single

# strace -f writes each line after the PID of the thread or process that made the call ("1234  12:00:00 ...").
_LEADING_PID = re.compile(rb"^(\d+) +")


def check_output_dir(path: str, force: bool) -> None:
    """-o DIR with several pods: a folder to create (or an empty one); one file per pod goes in it."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{path} exists and is not a directory: with several pods -o names a folder "
                          "(one POD.trace per pod)")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise OutputError(f"{path} is not empty: use --force to write into it, or choose another -o")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot create {path}: directory {parent} does not exist or is not writable")


@dataclass
class PodTrace:
    target: Target
    ec: str
    profile: str
    container: dict[str, Any]
    selection: Selection
    scope: int | None
    talk: single.StraceTalk
    sink: ByteSink
    prefix: str
    lines: int = 0
    partial: bytes = b""
    error: str = ""
    pipe_closed: bool = field(default=False)
    whole: WholeLines | None = None  # -o DIR: the pod's file gets whole lines only, as one pod's -o FILE
    joined_at: float | None = None  # --follow: when it joined (None: one of the first pods)
    left_at: float | None = None  # --follow: when its trace ended because the pod went away


def one_file(opts: single.TraceOptions, pods: int) -> bool:
    """-o names the trace file of the one pod (as for a bare POD): one pod, no --follow, and -o not a folder
    (an existing directory, or a name ending in /)."""
    return (pods == 1 and not opts.follow and not opts.output.endswith("/")
            and (opts.output == "-" or not Path(opts.output).is_dir()))


def run(kube: KubeApi, opts: single.TraceOptions, ref: TargetRef, max_pods: int, talk: Talk,
        check_output: bool = True) -> int:
    """trace of N >= 1 pods through the one pipeline (remote/fanout.py). The output is what -o and the pods ask
    for: one pod (no --follow, -o not a folder) is traced into -o as a file or stdout, as strace wrote it; else
    lines prefixed POD/PID on stdout, or -o DIR with one POD.trace each. `check_output`: -o is still to check
    (a bare POD's was checked before the cluster was asked)."""
    resolution = fanout.resolve_pods(kube, ref, max_pods, talk.say, opts.follow)
    one = one_file(opts, len(resolution.pods))
    if check_output and opts.output != "-":
        if one:
            check_output_file(opts.output, opts.force, False, "trace")
        else:
            check_output_dir(opts.output, opts.force)
    profile = single.profile_of(opts)
    admission = fanout.Admission(
        kube, single.COMMAND, lambda t: session.admitted(kube, t, single.COMMAND, session.candidate(
            kube, t, profile, opts.image, opts.custom, opts.ttl, opts.duration), single.ADMISSION_HINT),
        opts.image, opts.custom, opts.ttl, opts.duration, single.ADMISSION_HINT)
    admitted = fanout.admit(resolution, opts.container, admission, talk.say)
    pods, chosen = admitted.pods, admitted.chosen
    # Before creating anything: each pod's processes as its target container sees them, if it has a shell.
    early = [_where(one, t, partial(single.early_selection, kube, t, opts, talk)) for t in pods]
    if not one:
        talk.say(f"Tracing {plural(len(pods), 'pod')} of {ref.display}: " + ", ".join(t.pod_name for t in pods))
    if opts.dry_run:
        return fanout.dry_run_all(talk, pods, chosen, [single.dry_run_detail(e) for e in early] if one else None)
    notes = [n for t, c in zip(pods, chosen, strict=True) for n in single.ptrace_notes(c.container, t.pod, c.profile)]
    ecs = containers.start_all(kube, pods, chosen, opts.duration, talk, notes)
    if one:
        target, ec, candidate = pods[0], ecs[0], chosen[0]
        selection, probe = single.in_debug_container(kube, target, ec, opts, early[0], talk)
        talk.say(f"Tracing {selection.why}: {', '.join(p.label for p in selection.procs)}")
        return single.trace_one(kube, target, ec, candidate.container, opts, candidate.profile, selection,
                                probe.ptrace_scope, talk)
    # POD/PID with a PID of up to 7 digits; before any pod (--follow), as long as a Deployment's pod names
    width = max((len(t.pod_name) for t in pods), default=len(ref.name) + 17) + 8
    traces = []
    for target, ec, candidate, first in zip(pods, ecs, chosen, early, strict=True):
        traces.append(_pod_trace(kube, opts, target, ec, candidate, first, talk))
    if opts.output != "-":
        Path(opts.output).mkdir(exist_ok=True)
    follow = following.Follow(kube, ref, resolution, admission, opts.container, max_pods, talk) if opts.follow else None
    return _trace(kube, opts, traces, width, talk, follow)


T = TypeVar("T")


def _where(one: bool, target: Target, check: Callable[[], T]) -> T:
    """A pod's check; across pods its NotFound names the pod (one pod's says it as it is)."""
    try:
        return check()
    except NotFound as e:
        if one:
            raise
        raise NotFound(f"pod {target.pod_name}: {e}") from None


def _pod_trace(kube: KubeApi, opts: single.TraceOptions, target: Target, ec: str, candidate: session.Candidate,
               selection: Selection | None, talk: Talk) -> PodTrace:
    """One pod's part: its processes as the debug container sees them (strace must be there), the ones chosen."""
    try:
        selection, probe = single.in_debug_container(kube, target, ec, opts, selection, talk,
                                                     f" of pod {target.pod_name}")
    except NotFound as e:
        raise NotFound(f"pod {target.pod_name}: {e}") from None
    path = opts.output if opts.output == "-" else str(Path(opts.output) / f"{target.pod_name}.trace")
    say = fanout.prefixed(talk.say, target.pod_name)
    count = len(selection.pids)
    strace = single.StraceTalk(say, expect=count, settled=lambda n: say(
        f"attached to {n} of {plural(count, 'process', 'processes')}: traced from here on"))
    trace = PodTrace(target, ec, candidate.profile, candidate.container, selection, probe.ptrace_scope, strace,
                     ByteSink(path), f"{target.pod_name}/")
    talk.say(f"{target.pod_name}: tracing {selection.why}: {', '.join(p.label for p in selection.procs)}")
    return trace


def prefixed_lines(trace: PodTrace, data: bytes, width: int) -> list[bytes | memoryview]:
    """Whole lines of `data` (after what was held back) with the `POD/PID` prefix; keeps the partial tail."""
    lines = (trace.partial + data).split(b"\n")
    trace.partial = lines.pop()
    out: list[bytes | memoryview] = []
    default_pid = str(trace.selection.pids[0]).encode() if trace.selection.pids else b"?"
    for line in lines:
        match = _LEADING_PID.match(line)
        pid, rest = (match.group(1), line[match.end():]) if match else (default_pid, line)
        out.append((trace.prefix.encode() + pid).ljust(width) + b" " + rest + b"\n")
    return out


def _trace(kube: KubeApi, opts: single.TraceOptions, traces: list[PodTrace], width: int, talk: Talk,
           follow: following.Follow | None = None) -> int:
    stdout = opts.output == "-"
    shared = (traces[0].sink if traces else ByteSink("-")) if stdout else None

    def on_stdout(trace: PodTrace) -> Any:
        def write(data: memoryview) -> None:
            if trace.pipe_closed:
                return
            raw = bytes(data)
            try:
                if shared is not None:
                    lines = prefixed_lines(trace, raw, width)
                    if lines:
                        shared.writev(list(lines))
                    trace.lines += len(lines)
                else:
                    # whole lines only, so that a file ends on one even after a kill -9 (bench/reliability)
                    trace.whole = trace.whole or WholeLines(trace.sink)
                    trace.lines += trace.whole.write(raw)
            except PipeClosed:
                for t in traces:
                    t.pipe_closed = True
        return write

    state = StopState()

    def on_end(pod: toolrun.PodTool) -> None:
        trace = next(t for t in traces if t.target is pod.target)
        if follow is not None:
            follow.ended()
        if follow is not None and follow.left(pod, state):
            trace.left_at = time.time()  # replaced (a rollout): no failure
            talk.say(f"Pod {trace.target.namespace}/{trace.target.pod_name} left (deleted)")
            return
        trace.error = trace.error or toolrun.failure(kube, pod, state, single.TOOL, trace.talk.error_line(),
                                                    opts.image)
        if trace.error and not state.reason:
            talk.warn(f"trace in pod {trace.target.pod_name} ended: {trace.error}; the other pods go on")

    ready: dict[str, PodTrace] = {}  # --follow: set up by a join's worker thread, adopted by the loop

    def argv_for(target: Target, ec: str) -> list[str]:
        candidate = session.Candidate(opts.profile, {}, [], None)
        trace = _pod_trace(kube, opts, target, ec, candidate, None, talk)
        ready[target.pod_name] = trace
        return single.strace_argv(opts, trace.selection.pids)

    def make_tool(joining: following.Joining) -> toolrun.PodTool:
        trace = ready.pop(joining.target.pod_name)
        trace.profile, trace.container, trace.joined_at = (joining.candidate.profile, joining.candidate.container,
                                                          time.time())
        if shared is not None:
            trace.sink = shared
        traces.append(trace)
        talk.say(f"Pod {joining.target.namespace}/{joining.target.pod_name} joined")
        return toolrun.PodTool(joining.target, joining.ec, joining.argv, on_stdout(trace), trace.talk,
                              process=joining.process)

    tools = [toolrun.PodTool(t.target, t.ec, single.strace_argv(opts, t.selection.pids), on_stdout(t), t.talk)
             for t in traces]
    joins = None
    if follow is not None:
        joins = follow.start(single.TOOL, "TERM", opts.duration, argv_for, make_tool,
                             lambda: sum(1 for t in tools if not t.reported))
    talk.say(f"Tracing into {'stdout' if stdout else opts.output + '/POD.trace'}; Ctrl-C to stop (the traced "
             "processes go on)")
    try:
        elapsed = toolrun.run_tools(kube, tools, single.TOOL, state, duration=opts.duration, command=single.COMMAND,
                                   limit_reached=lambda: any(t.pipe_closed for t in traces), talk=talk,
                                   on_end=on_end, joins=joins)
    finally:
        if follow is not None:
            follow.stop()
        for trace in traces:
            if trace.partial and shared is not None and not trace.pipe_closed:
                with contextlib.suppress(PipeClosed):
                    shared.writev(prefixed_lines(trace, b"\n", width))
            if trace.whole is not None:
                with contextlib.suppress(PipeClosed):
                    trace.whole.close()  # a last unterminated line, as strace left it, and the file
            trace.sink.close()
    records = []
    for trace in traces:
        if not trace.error and trace.talk.refused and not trace.talk.attached:
            trace.error = single.explain_eperm(trace.container, trace.target.pod, trace.profile, trace.scope,
                                               trace.talk.refused)
        chosen, seen = list(trace.selection.pids), set(trace.talk.attached)
        talk.say(f"{trace.target.pod_name}: {plural(len(set(chosen) & seen), 'process', 'processes')} traced, "
                 f"{plural(trace.lines, 'line')}" + (f"; FAILED: {trace.error}" if trace.error else ""))
        records.append({
            "namespace": trace.target.namespace, "pod": trace.target.pod_name,
            "node": (trace.target.pod.get("spec") or {}).get("nodeName"),
            "podIP": (trace.target.pod.get("status") or {}).get("podIP"), "container": trace.target.container,
            "debugContainer": trace.ec, "profile": trace.profile, "pids": chosen,
            "traced": sorted(set(chosen) & seen), "linesWritten": trace.lines,
            "output": "-" if stdout else trace.sink.path, "error": trace.error or None,
            **following.times(trace.joined_at, trace.left_at),
        })
    lines = sum(t.lines for t in traces)
    talk.say(f"{plural(lines, 'line')} from {plural(len(traces), 'pod')}; {elapsed:.1f}s")
    talk.record(profile=",".join(sorted({t.profile for t in traces})), output=opts.output,
                durationSeconds=round(elapsed, 3), stoppedBy=stopped_by(state.reason), linesWritten=lines,
                bytesWritten=None if stdout else sum(t.sink.written for t in traces), pods=records)
    not_joined = follow.failed if follow is not None else {}
    return toolrun.exit_code(state, {**{t.target.pod_name: t.error for t in traces}, **not_joined}, "trace",
                            "the others were traced", talk.warn)
