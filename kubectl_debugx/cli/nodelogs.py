"""`kubectl debugx nodelogs`: its flags; a copy of the files, or --follow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_debugx.cli.workflow import Work, app, examples, pod_ref, profile_flags, workflow
from kubectl_debugx.errors import UsageError
from kubectl_debugx.flags import CONNECTION, CONTAINER, TALK, TARGETS, DurationOpt, Flags, TargetArg, shared_flags

if TYPE_CHECKING:
    from kubectl_debugx.kube.workloads import TargetRef
    from kubectl_debugx.talk import Talk


@app.command(short_help="Copy a pod's log files as its node keeps them.", epilog=examples(
    '# every log file the node keeps for pod web, raw and decoded',
    'kubectl debugx nodelogs web -n shop --all-containers -o web-logs',
    "# the last hour, through the API server's node proxy (no pod created)",
    'kubectl debugx nodelogs web --since 1h --via proxy',
    '# every pod of deployment web, live, like stern',
    'kubectl debugx nodelogs deploy/web -f',
))
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
        str | None, typer.Option("-o", "--output", metavar="DIR|-", help="Folder to create (default "
                                 "nodelogs-POD-TIME), or - for the decoded lines of every instance in time order on "
                                 "stdout.")
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
    previous: Annotated[
        bool, typer.Option("-p", "--previous", help="Accepted as kubectl logs takes it: every instance is copied "
                           "anyway, the previous ones too.")
    ] = False,
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
            node=node, uid=uid, **profile_flags(flags),
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
            return prepare_many(talk, pod_ref(name))
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

    def to_stdout(talk: Talk, ref: TargetRef) -> Work:
        """-o -: the decoded lines of every instance (restarts, rotations) in time order on stdout: the files
        are copied into a temporary folder, merged (as --merge does), printed, and the folder removed."""
        import shutil
        import sys
        import tempfile

        from kubectl_debugx.cli.workflow import check_data_and_summary
        from kubectl_debugx.commands.nodelogs import pods as nlp

        check_data_and_summary(talk, "-")
        if raw or node or uid:
            raise UsageError("-o - prints the decoded lines of a running pod's files: for --raw, --node or --uid "
                             "give -o DIR (a folder to copy the files into)")
        if flags.max_pods < 1:
            raise UsageError(f"--max-pods: must be at least 1, got {flags.max_pods}")
        folder = tempfile.mkdtemp(prefix="debugx-nodelogs-")
        try:
            opts = options(talk, ref.file_stem, folder=str(Path(folder) / "copy"))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

        def work(kube: Any, talk: Talk) -> int:
            try:
                code = nlp.run(kube, opts, ref, flags.max_pods, True, talk)
                merged = Path(opts.output_dir) / nlp.MERGED
                with merged.open("rb") as f:
                    shutil.copyfileobj(f, sys.stdout.buffer)
                sys.stdout.flush()
                talk.say("Printed the merged lines on stdout; the copied files were in a temporary folder, "
                         "removed (-o DIR keeps them)")
                return code
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        return work

    def prepare_ref(talk: Talk, ref: TargetRef) -> Work:
        if previous:
            talk.say("Note: -p/--previous changes nothing here: nodelogs copies every instance of each container "
                     "(restarts and rotated files), the previous ones too")
        if output_dir == "-" and not follow:
            return to_stdout(talk, ref)
        # one pod's files (by path, or live) are read on its node; --merge and workloads: every pod's, interleaved
        return prepare(talk, ref.name) if ref.single_pod else prepare_many(talk, ref)

    workflow(ctx, flags, target, prepare_ref)
