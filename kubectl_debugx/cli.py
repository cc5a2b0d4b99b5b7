"""The command line: kubectl's flags once, one thin function per command, one place mapping errors to exit
codes. Work is done by the command modules, imported only when their command runs (fast --help)."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_debugx import __version__
from kubectl_debugx.errors import DebugxError, ExitCode, UsageError
from kubectl_debugx.flags import (
    CONNECTION,
    CONTAINER,
    LIFETIME,
    TALK,
    TARGETS,
    DurationOpt,
    Flags,
    FollowOpt,
    PodArg,
    SummaryFormat,
    TargetArg,
    shared_flags,
)

if TYPE_CHECKING:
    from kubectl_debugx.kube.client import KubeApi
    from kubectl_debugx.kube.workloads import TargetRef
    from kubectl_debugx.talk import Talk

PROG = "kubectl debugx"
app = typer.Typer(
    name=PROG,
    help="Capture packets, strace processes and pull node log files of a pod, leaving nothing behind.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # never render locals: they may hold kubeconfig tokens
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)

@dataclass
class Run:
    """What one run of main() knows across the command and the error handler (click's context object)."""

    debug: bool = False  # tracebacks of unexpected errors: -v (any level) or $KUBECTL_DEBUGX_DEBUG
    talk: Talk | None = None  # once set, an error still ends the JSON summary a runbook waits for


def _run(ctx: typer.Context) -> Run:
    return ctx.ensure_object(Run)


def _connection(flags: Flags) -> Any:
    from kubectl_debugx.kube.config import KubeFlags
    from kubectl_debugx.options import parse_duration

    timeout = flags.request_timeout
    # kubectl reads a bare number here as seconds (and only here)
    seconds = None if timeout in (None, "0", "") else parse_duration(timeout, "--request-timeout", bare_seconds=True)
    return KubeFlags(kubeconfig=flags.kubeconfig, context=flags.context, namespace=flags.namespace,
                     request_timeout=seconds, verbosity=flags.verbosity)


def _kube(flags: Flags) -> KubeApi:
    from kubectl_debugx.kube.client import Kube

    return Kube(_connection(flags))


def _talk(run: Run, flags: Flags, command: str) -> Talk:
    from kubectl_debugx.talk import Talk

    run.debug = run.debug or flags.verbosity >= 1
    run.talk = Talk(quiet=flags.quiet, json_summary=flags.summary is SummaryFormat.json, command=command)
    return run.talk


def _check_data_and_summary(talk: Talk, path: str) -> None:
    if talk.json_summary and path == "-":
        raise UsageError("--summary json needs -o FILE: with -o - stdout carries the data")


def _profile_flags(flags: Flags) -> dict[str, Any]:
    """--image, --profile and --custom, resolved the same way for every command that creates a container."""
    from kubectl_debugx.remote.profiles import load_custom
    from kubectl_debugx.remote.specs import DEFAULT_IMAGE

    return {
        "image": flags.image or os.environ.get("KUBECTL_DEBUGX_IMAGE") or DEFAULT_IMAGE,
        "profile": flags.profile,
        "custom": load_custom(flags.custom) if flags.custom else None,
    }


def _debug_flags(flags: Flags) -> dict[str, Any]:
    """Every field of remote.session.DebugOptions, from the flags that set the debug container."""
    from kubectl_debugx.options import parse_duration

    return {"ttl": int(parse_duration(flags.ttl, "--ttl")), "force": flags.force, "dry_run": flags.dry_run,
            **_profile_flags(flags)}


Work = Callable[["KubeApi", "Talk"], int]


def _no_follow(follow: bool, pod: str) -> None:
    """--follow follows the pods of a workload: one pod has no successor to follow (a pod is never replaced by
    the same pod), so it is refused rather than silently ignored."""
    if follow:
        raise UsageError(f"--follow needs a workload or -l: {pod} is one pod, which nothing replaces; follow its "
                         "workload (deploy/NAME, sts/NAME, ...) or -l SELECTOR")


def _workflow(ctx: typer.Context, flags: Flags, target: str | None, prepare: Callable[[Talk, str], Work],
              prepare_many: Callable[[Talk, TargetRef], Work]) -> None:
    """The one body of every command: talk flags, the target (one pod: `prepare`, exactly as before workloads;
    a workload or -l: `prepare_many`), the command's own checks (which return the work), then the cluster and
    the work; its code ends the summary and is the exit code."""
    from kubectl_debugx.kube.workloads import parse_target

    talk = _talk(_run(ctx), flags, ctx.command.name or "")
    if not target and flags.selector is None:
        raise UsageError(f"missing argument 'TARGET': POD, TYPE/NAME or -l SELECTOR (see '{ctx.command_path} "
                         "--help')")
    ref = parse_target(target, flags.selector, flags.all_namespaces)
    if flags.max_pods < 1:
        raise UsageError(f"--max-pods: must be at least 1, got {flags.max_pods}")
    if ref.single_pod:
        talk.record(pod=ref.name)
        work = prepare(talk, ref.name)
    else:
        talk.record(target=ref.display)
        work = prepare_many(talk, ref)
    kube = _kube(flags)
    talk.record(namespace=kube.namespace)
    try:
        code = int(work(kube, talk))
    finally:
        talk.said_left()  # on every way out, before the error line if there is one
    talk.emit_summary(code)
    raise typer.Exit(code)


def _first_pod(prepare: Callable[[Talk, str], Work]) -> Callable[[Talk, TargetRef], Work]:
    """cp and doctor work on one pod: a workload target means its first running pod (by name), as
    `kubectl exec deploy/web` takes one, and we say which."""

    def prepare_many(talk: Talk, ref: TargetRef) -> Work:
        if ref.kind is None:
            raise UsageError(f"{talk.command} works on one pod: name it, or TYPE/NAME for one of a workload's pods")

        def work(kube: KubeApi, talk: Talk) -> int:
            from kubectl_debugx.kube.workloads import resolve
            from kubectl_debugx.talk import plural

            resolution = resolve(kube, kube.namespace, ref)
            pods = [p["metadata"]["name"] for p in resolution.pods]
            talk.say(f"Using pod {pods[0]} of {ref.display} ({plural(len(pods), 'running pod')})")
            talk.record(pod=pods[0])
            return prepare(talk, pods[0])(kube, talk)

        return work

    return prepare_many


def _pod_ref(name: str) -> TargetRef:
    from kubectl_debugx.kube.workloads import TargetRef

    return TargetRef("pod", name)


def _output_file(talk: Talk, path: str, flags: Flags, what: str) -> None:
    """Where -o names a file: refuse kubectl's -o json (a format, not a file), what would mix data and summary,
    or clobber or cannot be written."""
    from kubectl_debugx.options import check_not_format, check_output_file

    check_not_format(path, "file")
    talk.record(output=path)
    _check_data_and_summary(talk, path)
    if not flags.dry_run:
        check_output_file(path, flags.force, sys.stdout.isatty(), what)


@app.command()
@shared_flags(*CONTAINER, *LIFETIME, *CONNECTION, *TALK, *TARGETS)
def capture(
    ctx: typer.Context,
    target: TargetArg = None,
    container: Annotated[str | None, typer.Option("-c", "--container", help="Target container.")] = None,
    interface: Annotated[str, typer.Option("-i", "--interface", help="Interface to capture on.")] = "any",
    filter: Annotated[str, typer.Option("-f", "--filter", help="tcpdump filter expression.")] = "",
    output_file: Annotated[
        str | None, typer.Option("-o", "--output", metavar="FILE|-",
                                 help="pcap file (.pcapng: pcapng), or - for stdout (default POD-TIME.pcap; "
                                 "several pods: one pcapng, one interface per pod).")
    ] = None,
    duration: DurationOpt = None,
    count: Annotated[int | None, typer.Option("--count", help="Stop after this many packets.")] = None,
    max_size: Annotated[
        str | None, typer.Option("--max-size", help="Stop before the file passes this size: 10M, 500K (powers "
                                 "of 1000) or 10Mi, 500Ki (powers of 1024); case and a final B do not matter. "
                                 "With --ring: the size of each file.")
    ] = None,
    ring: Annotated[
        int | None, typer.Option("--ring", metavar="N", help="Keep the newest N files of at most --max-size each, "
                                 "as logrotate names them: -o web.pcapng is the newest, web.1.pcapng the one "
                                 "before, … web.N-1.pcapng the oldest. Each file is a valid capture of its own.")
    ] = None,
    snaplen: Annotated[
        int | None, typer.Option("--snaplen", help="Bytes kept of each packet (default 262144).")
    ] = None,
    linktype: Annotated[
        str | None, typer.Option("--linktype", help="Link-layer header type (tcpdump -y): sll (LINUX_SLL, which "
                                 "older Wireshark reads; only with -i any), sll2, or a name from tcpdump -L.")
    ] = None,
    wireshark: Annotated[
        bool, typer.Option("--wireshark", help="Start Wireshark on the live capture (PATH, the macOS app, or "
                           "$KUBECTL_DEBUGX_WIRESHARK); closing it stops the capture. Instead of -o.")
    ] = False,
    tshark: Annotated[
        bool, typer.Option("--tshark", help="The same with tshark in this terminal ($KUBECTL_DEBUGX_TSHARK).")
    ] = False,
    follow: FollowOpt = False,
    *,
    flags: Flags,
) -> None:
    """Capture the traffic of a pod (or of every pod of a workload, into one pcapng) with tcpdump into a file
    (or stdout for Wireshark/tshark)."""
    import time

    def options(talk: Talk, name: str, extension: str) -> Any:
        from kubectl_debugx.commands import capture as cap
        from kubectl_debugx.commands import capture_live as live
        from kubectl_debugx.options import parse_duration, parse_size
        from kubectl_debugx.remote import ring as rings

        kind = live.viewer_kind(wireshark, tshark, output_file)
        size = parse_size(max_size, "--max-size") if max_size else None
        if ring is not None:  # before looking for a viewer: --ring with --wireshark is the mistake to name
            rings.validate(ring, size, output_file or "", kind)
        viewer = _find_viewer(kind) if kind else None
        path = output_file or (viewer.kind if viewer else f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.{extension}")
        opts = cap.CaptureOptions(
            pod=name, container=container, interface=interface, filter=filter, output=path,
            duration=parse_duration(duration, "--duration") if duration else None, count=count,
            max_size=size, snaplen=snaplen,
            linktype=live.linktype(linktype, interface) if linktype else None, viewer=viewer, ring=ring,
            follow=follow,
            **_debug_flags(flags),
        )
        cap.validate(opts)
        if viewer is None:
            _output_file(talk, path, flags, "pcap")
        if ring is not None and not flags.dry_run:
            from kubectl_debugx.options import check_output_file

            for index in range(1, ring):  # an older run's files would pass for this one's
                check_output_file(rings.ring_name(path, index), flags.force, False, "pcap")
        return opts

    def prepare_many(talk: Talk, ref: TargetRef) -> Work:
        from kubectl_debugx.commands import capture_pods

        if follow and (output_file or "").endswith(".pcap"):
            raise UsageError(f"--follow: -o {output_file} is pcap, which has no interfaces to add pods to as "
                             "they join: write .pcapng (or -o - for a pcapng stream)")
        opts = options(talk, ref.file_stem, "pcapng")
        return lambda kube, talk: capture_pods.run(kube, opts, ref, flags.max_pods, talk)

    def prepare(talk: Talk, name: str) -> Work:
        from kubectl_debugx.commands import capture as cap

        _no_follow(follow, name)
        if (output_file or "").endswith(".pcapng"):
            return prepare_many(talk, _pod_ref(name))
        opts = options(talk, name, "pcap")
        return lambda kube, talk: cap.run(kube, opts, talk)

    _workflow(ctx, flags, target, prepare, prepare_many)


def _find_viewer(kind: str) -> Any:
    """--wireshark / --tshark: the program found now, before anything is created in the cluster."""
    import shutil

    from kubectl_debugx.remote.viewers import find_program

    return find_program(kind, os.environ, shutil.which, sys.platform, lambda path: os.access(path, os.X_OK))


TraceProfileOpt = Annotated[
    str, typer.Option("--profile", help="general (default: SYS_PTRACE), sysadmin, or legacy, baseline, "
                      "netadmin, restricted (these cannot attach to another user's process).")
]


@app.command()
@shared_flags(*CONTAINER, *LIFETIME, *CONNECTION, *TALK, *TARGETS, profile=(TraceProfileOpt, "general"))
def trace(
    ctx: typer.Context,
    target: TargetArg = None,
    container: Annotated[str | None, typer.Option("-c", "--container", help="Target container.")] = None,
    pid: Annotated[
        int | None, typer.Option("--pid", help="PID to trace, as seen in the target container.")
    ] = None,
    process: Annotated[
        str | None, typer.Option("--process", help="Trace the processes whose command name or arguments match.")
    ] = None,
    no_follow_forks: Annotated[
        bool, typer.Option("--no-follow-forks", help="Do not follow new threads and child processes (strace -f).")
    ] = False,
    expr: Annotated[str, typer.Option("-e", "--expr", help="strace -e expression (e.g. trace=network).")] = "",
    string_size: Annotated[
        int | None, typer.Option("-s", "--string-size", help="Bytes shown of each string (strace -s, default 32).")
    ] = None,
    summary_only: Annotated[
        bool, typer.Option("--summary-only", help="Only count syscalls: strace's -c table at the end (strace "
                           "--summary-only; -c stays the container, as in kubectl).")
    ] = False,
    output_file: Annotated[
        str | None, typer.Option("-o", "--output", metavar="FILE|-", help="Trace file, or - for stdout (default -); "
                                 "several pods: a folder, one POD.trace per pod.")
    ] = None,
    duration: DurationOpt = None,
    follow: FollowOpt = False,
    *,
    flags: Flags,
) -> None:
    """strace a process of the pod's container (its main process by default), or of every pod of a workload
    (lines prefixed POD/PID); Ctrl-C detaches, they go on."""

    def options(name: str) -> Any:
        from kubectl_debugx.commands import trace as tr
        from kubectl_debugx.options import parse_duration

        opts = tr.TraceOptions(
            pod=name, container=container, pid=pid, process=process, follow_forks=not no_follow_forks,
            expr=expr, string_size=string_size, summary=summary_only,
            duration=parse_duration(duration, "--duration") if duration else None, output=output_file or "-",
            follow=follow, **_debug_flags(flags),
        )
        tr.validate(opts)
        return opts

    def prepare(talk: Talk, name: str) -> Work:
        from kubectl_debugx.commands import trace as tr

        _no_follow(follow, name)
        opts = options(name)
        _output_file(talk, opts.output, flags, "trace")
        return lambda kube, talk: tr.run(kube, opts, talk)

    def prepare_many(talk: Talk, ref: TargetRef) -> Work:
        from kubectl_debugx.commands import trace_pods
        from kubectl_debugx.options import check_not_format

        opts = options(ref.file_stem)
        talk.record(output=opts.output)
        _check_data_and_summary(talk, opts.output)
        if opts.output != "-":
            check_not_format(opts.output, "directory")
            if not flags.dry_run:
                trace_pods.check_output_dir(opts.output, flags.force)
        return lambda kube, talk: trace_pods.run(kube, opts, ref, flags.max_pods, talk)

    _workflow(ctx, flags, target, prepare, prepare_many)


CpProfileOpt = Annotated[
    str, typer.Option("--profile", help="auto (default: the target's own uid, no capability; restricted admits "
                      "it), or legacy, general, baseline, netadmin, restricted, sysadmin (reads everything).")
]


@app.command()
@shared_flags(*CONTAINER, *LIFETIME, *CONNECTION, *TALK, profile=(CpProfileOpt, "auto"))
def cp(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="POD:PATH", help="POD:/path as the container sees it.")],
    local: Annotated[str, typer.Argument(metavar="LOCAL", help="File or directory to write, or - for a tar "
                                         "stream on stdout; an existing directory receives PATH's name.")],
    container: Annotated[str | None, typer.Option("-c", "--container", help="Target container.")] = None,
    *,
    flags: Flags,
) -> None:
    """Copy a file or a directory (recursively) out of a container, as it sees its filesystem, byte-exact.

    Reads through /proc/PID/root of the container's main process from an ephemeral container running as the
    container's own user: works without shell or tar in the image; every file's sha256 is checked.
    """
    from kubectl_debugx.commands import cp as cpm

    pod, path = cpm.procroot.parse_source(source)

    def prepare(talk: Talk, name: str) -> Work:
        opts = cpm.CpOptions(pod=name, path=path, local=local, container=container, **_debug_flags(flags))
        cpm.validate(opts)
        talk.record(output=local)
        _check_data_and_summary(talk, local)
        if local == "-" and sys.stdout.isatty() and not flags.dry_run:
            raise UsageError("LOCAL - writes a tar stream: redirect stdout to a file or a pipe")
        return lambda kube, talk: cpm.run(kube, opts, talk)

    _workflow(ctx, flags, pod, prepare, _first_pod(prepare))


@app.command()
@shared_flags(*CONTAINER, *CONNECTION, *TALK, *TARGETS)
def nodelogs(
    ctx: typer.Context,
    target: TargetArg = None,
    container: Annotated[str | None, typer.Option("-c", "--container", help="Only this container.")] = None,
    all_containers: Annotated[
        bool, typer.Option("--all-containers", help="Every container (init and ephemeral too).")
    ] = False,
    since: Annotated[str | None, typer.Option("--since", help="Only lines newer than this: 30s, 5m, 1h.")] = None,
    since_time: Annotated[
        str | None, typer.Option("--since-time", help="Only lines at or after this RFC3339 time.")
    ] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Copy the files only; do not decode them.")] = False,
    output_dir: Annotated[
        str | None, typer.Option("-o", "--output", metavar="DIR", help="Folder to create (default nodelogs-POD-TIME).")
    ] = None,
    via: Annotated[str, typer.Option("--via", help="auto, proxy (node proxy) or pod (a node pod).")] = "auto",
    pod_namespace: Annotated[
        str | None, typer.Option("--pod-namespace", help="Namespace of the node pod (default: the pod's).")
    ] = None,
    node: Annotated[str | None, typer.Option("--node", help="Node holding the files of a gone pod.")] = None,
    uid: Annotated[str | None, typer.Option("--uid", help="UID of the pod whose files to read.")] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Also write merged.log: every pod's and container's lines in time "
                           "order, prefixed POD/CONTAINER#RESTART.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Print new lines live on stdout, prefixed POD/CONTAINER, "
                           "through rotations, restarts and reconnects (node proxy only).")
    ] = False,
    tail: Annotated[
        int, typer.Option("--tail", help="With --follow: lines of each live file printed first (-1: all).")
    ] = 10,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", help="With --follow: each line's CRI timestamp and [stderr] mark.")
    ] = False,
    duration: DurationOpt = None,
    *,
    flags: Flags,
) -> None:
    """Copy the pod's log files as its node keeps them (every restart and rotation) and decode them.

    Reads /var/log/pods on the node through the node proxy (needs get on nodes/proxy; creates nothing) or
    a short-lived node pod (read-only mounts of the log directories only; always deleted). With --follow,
    prints the new lines live on stdout instead, through the node proxy.
    """

    def options(talk: Talk, name: str, folder: str = "") -> Any:
        import time

        from kubectl_debugx.commands import nodelogs as nl
        from kubectl_debugx.options import check_not_format, parse_duration

        if output_dir:
            check_not_format(output_dir, "directory")
        folder = folder or output_dir or f"nodelogs-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        talk.record(output=folder)
        opts = nl.NodeLogsOptions(
            pod=name, container=container, all_containers=all_containers,
            since_seconds=parse_duration(since, "--since") if since else None,
            since_time=nl.parse_since_time(since_time) if since_time else None,
            raw=raw, output_dir=folder, via=via, pod_namespace=pod_namespace,
            node=node, uid=uid, **_profile_flags(flags),
        )
        nl.validate(opts)
        if folder != "-":
            nl.check_output_dir(Path(folder))
        return opts

    def nl_since(opts: Any) -> Any:
        from datetime import datetime, timezone

        from kubectl_debugx.commands import nodelogs as nl

        return nl.since_limit(opts, datetime.now(timezone.utc))

    def following(talk: Talk, name: str) -> tuple[Any, Any] | None:
        """--follow's options (None without it): no folder, lines on stdout."""
        from kubectl_debugx.commands.nodelogs import follow as nlf

        if not follow:
            for given, flag in ((tail != 10, "--tail"), (timestamps, "--timestamps"), (duration, "--duration")):
                if given:
                    raise UsageError(f"{flag} only applies with --follow")
            return None
        from kubectl_debugx.options import parse_duration

        nlf.check(via, output_dir, raw, merge, tail, talk.json_summary)
        opts = options(talk, name, folder="-")
        return opts, nlf.FollowOptions(tail, timestamps, parse_duration(duration, "--duration") if duration else None,
                                       nl_since(opts))

    def prepare(talk: Talk, name: str) -> Work:
        from kubectl_debugx.commands import nodelogs as nl
        from kubectl_debugx.commands.nodelogs import follow as nlf

        live = following(talk, name)
        if live:
            return lambda kube, talk: nlf.run_one(kube, live[0], live[1], talk)
        opts = options(talk, name)
        if merge:
            return prepare_many(talk, _pod_ref(name))
        return lambda kube, talk: nl.run(kube, opts, talk)

    def prepare_many(talk: Talk, ref: TargetRef) -> Work:
        from kubectl_debugx.commands.nodelogs import follow as nlf
        from kubectl_debugx.commands.nodelogs import pods as nlp

        if node or uid:
            raise UsageError("--node and --uid name one gone pod's files: they cannot be used with a workload "
                             "or -l target")
        live = following(talk, ref.file_stem)
        if live:
            return lambda kube, talk: nlf.run_many(kube, live[0], ref, flags.max_pods, live[1], talk)
        opts = options(talk, ref.file_stem)
        if merge and raw:
            raise UsageError("--merge reads the lines of the log files: it cannot be used with --raw")
        return lambda kube, talk: nlp.run(kube, opts, ref, flags.max_pods, merge, talk)

    _workflow(ctx, flags, target, prepare, prepare_many)


@app.command()
@shared_flags(*CONTAINER, *CONNECTION, *TALK)
def doctor(
    ctx: typer.Context,
    pod: PodArg,
    container: Annotated[str | None, typer.Option("-c", "--container", help="Target container.")] = None,
    for_: Annotated[
        list[str] | None, typer.Option("--for", metavar="COMMAND", help="capture, trace, nodelogs or cp "
                                       "(repeat or separate with commas; default: all four).")
    ] = None,
    pod_namespace: Annotated[
        str | None, typer.Option("--pod-namespace", help="Namespace of nodelogs' node pod (default: the pod's).")
    ] = None,
    *,
    flags: Flags,
) -> None:
    """Check, creating nothing, whether capture, trace, nodelogs and cp would work on the pod, and why not.

    Every permission they need (one batch of access reviews; the missing ones as a Role), the namespace's Pod
    Security level and a server-side dry run of the debug container each would add, the node's runtime and
    images, the target's user. Exit 0 when every command checked would work, else the code of the first refusal.
    """

    def prepare(talk: Talk, name: str) -> Work:
        from kubectl_debugx.commands import doctor as dr

        opts = dr.DoctorOptions(pod=name, container=container, commands=dr.parse_for(for_),
                                pod_namespace=pod_namespace, **_profile_flags(flags))
        dr.validate(opts)
        return lambda kube, talk: dr.run(kube, opts, talk)

    _workflow(ctx, flags, pod, prepare, _first_pod(prepare))


@app.command()
@shared_flags("dry_run", *CONNECTION, *TALK, dry_run=(
    Annotated[bool, typer.Option("--dry-run", help="List what would be stopped or deleted; change nothing.")], False))
def gc(
    ctx: typer.Context,
    all_namespaces: Annotated[
        bool, typer.Option("-A", "--all-namespaces", help="Look in every namespace.")
    ] = False,
    *,
    flags: Flags,
) -> None:
    """Find what earlier runs left: stop our tools still running, delete our node pods, and list our debug
    containers with the TTL they have left (ephemeral containers cannot be removed). Touches nothing else."""
    from kubectl_debugx.commands import gc as gc_command

    talk = _talk(_run(ctx), flags, "gc")
    if all_namespaces and flags.namespace:
        raise UsageError("-A and -n exclude each other")
    kube = _kube(flags)
    talk.record(namespace=None if all_namespaces else kube.namespace)
    code = gc_command.run(kube, gc_command.GcOptions(all_namespaces, flags.dry_run), talk)
    talk.emit_summary(code)
    raise typer.Exit(code)


@app.command()
@shared_flags("context", "kubeconfig", "request_timeout", "verbosity")
def version(ctx: typer.Context, *, flags: Flags) -> None:
    """Print the client version, and the server version when the cluster is reachable."""
    _run(ctx).debug = _run(ctx).debug or flags.verbosity >= 1
    print(f"Client Version: v{__version__}")
    try:
        print(f"Server Version: {_kube(flags).version().get('gitVersion', 'unknown')}")
    except DebugxError as e:
        print(f"Server Version: unavailable ({e})", file=sys.stderr)


@app.command()
def completion(
    shell: Annotated[
        str, typer.Argument(metavar="SHELL", help="bash, zsh, fish, or kubectl (the kubectl_complete-debugx script).")
    ],
) -> None:
    """Print a shell completion script.

    For `kubectl debugx <TAB>` (kubectl 1.26 or newer), put the kubectl script on PATH next to the plugin:

    \b
      kubectl debugx completion kubectl > "$(dirname "$(command -v kubectl-debugx)")/kubectl_complete-debugx"
      chmod +x "$(dirname "$(command -v kubectl-debugx)")/kubectl_complete-debugx"

    For `kubectl-debugx <TAB>`: source <(kubectl-debugx completion bash), or zsh (after compinit), or
    kubectl-debugx completion fish | source.
    """
    from kubectl_debugx.shell.completion import script

    sys.stdout.write(script(shell))


def _error_summary(run: Run, message: str, code: int) -> None:
    if run.talk is not None and run.talk.json_summary:
        run.talk.record(error=message)
        run.talk.emit_summary(code)


def kubectl_verbosity(argv: list[str]) -> list[str]:
    """kubectl's log level in every spelling kubectl users type -- `-v=6`, `--v=6`, `-v 6`, `--v 6` -- and ours,
    `-v` and `--debug` alone (level 1), as the one form click parses: `--v=N`. Words after `--` are left alone."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        name, eq, value = word.partition("=")
        if word == "--":
            out += argv[i - 1:]
            break
        if name in ("-v", "--v"):
            if eq:
                level = value
            elif i < len(argv) and argv[i].isdigit():
                level, i = argv[i], i + 1
            else:
                level = "1"
            if not level.isdigit():
                raise UsageError(f"{name}: the log level is a number (as kubectl's -v=6), got {level!r}")
            out.append(f"--v={int(level)}")
        elif word == "--debug":
            out.append("--v=1")
        else:
            out.append(word)
    return out


def _usage_line(e: Any) -> str:
    """click's usage errors as our one line: lowercase, no final period, the command's --help named."""
    lines = [line.strip() for line in e.format_message().splitlines() if line.strip()]
    message = "; ".join(lines).rstrip(".") or "invalid command line"
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    ctx = getattr(e, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None and ctx.command_path else ""
    return f"error: {message}{where}"


def main(argv: list[str]) -> int:
    """Run the CLI; every error becomes one line on stderr and its exit code."""
    # typer 0.28 vendors click (typer._click) and has its own Exit/Abort; the `click` package is not installed.
    from typer._click.exceptions import ClickException

    run = Run(debug=bool(os.environ.get("KUBECTL_DEBUGX_DEBUG")))
    try:
        # From here a Ctrl-C is a KeyboardInterrupt again (the zipapp's start exits 130 at once), so that the
        # commands' cleanups run.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        command = typer.main.get_command(app)
        argv = kubectl_verbosity(argv)
        run.debug = run.debug or any(w.startswith("--v=") and w != "--v=0" for w in argv)
        # Without standalone mode click returns the code of typer.Exit instead of raising it.
        result = command.main(args=argv, prog_name=PROG, standalone_mode=False, obj=run)
        if isinstance(result, int):
            return result
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        return ExitCode.INTERRUPTED
    except ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()  # `kubectl debugx` alone: the help
        else:
            print(_usage_line(e), file=sys.stderr)
        return ExitCode.USAGE
    except DebugxError as e:
        if run.debug and e.code == ExitCode.ERROR:  # an expected error's line says it all, even with -v=6
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        _error_summary(run, str(e), int(e.code))
        return int(e.code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the last resort: one line unless -v
        if run.debug:
            traceback.print_exc()
        print(f"error: unexpected {type(e).__name__}: {e} (run with -v for details)", file=sys.stderr)
        _error_summary(run, f"unexpected {type(e).__name__}: {e}", ExitCode.ERROR)
        return ExitCode.ERROR
    return ExitCode.OK
