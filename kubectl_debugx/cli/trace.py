"""`kubectl debugx trace`: its flags, one pod or every pod of a workload."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_debugx.cli.workflow import (
    Work,
    app,
    check_data_and_summary,
    check_output_file_flag,
    debug_flags,
    examples,
    no_follow,
    workflow,
)
from kubectl_debugx.flags import BESIDE_PODS, DurationOpt, Flags, FollowOpt, ServerLongOpt, TargetArg, shared_flags

if TYPE_CHECKING:
    from kubectl_debugx.kube.client import KubeApi
    from kubectl_debugx.kube.workloads import TargetRef
    from kubectl_debugx.talk import Talk


TraceProfileOpt = Annotated[
    str, typer.Option("--profile", help="general (default: SYS_PTRACE), sysadmin, or legacy, baseline, "
                      "netadmin, restricted (these cannot attach to another user's process).")
]


@app.command(short_help="strace a process of a pod, or of a workload's pods.", epilog=examples(
    "# nginx's workers, network syscalls only; Ctrl-C detaches, nginx goes on",
    "kubectl debugx trace web -n shop --process 'nginx: worker' -e trace=network",
    '# 30 s of PID 42 (as the container sees it) into a file',
    'kubectl debugx trace web --pid 42 --duration 30s -o web.trace',
    '# the main process of every pod of a statefulset, one file per pod',
    'kubectl debugx trace sts/db -o db-traces/',
))
@shared_flags(*BESIDE_PODS, profile=(TraceProfileOpt, "general"), server=(ServerLongOpt, None))
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
            follow=follow, **debug_flags(flags),
        )
        tr.validate(opts)
        return opts

    def prepare(talk: Talk, ref: TargetRef) -> Work:
        from kubectl_debugx.commands import trace_pods
        from kubectl_debugx.options import check_not_format

        opts = options(ref.file_stem)
        if ref.single_pod:
            no_follow(follow, ref.name)
            check_output_file_flag(talk, opts.output, flags, "trace")  # one pod: -o is a file, checked now
        else:
            talk.record(output=opts.output)
            check_data_and_summary(talk, opts.output)
            if opts.output != "-":
                check_not_format(opts.output, "directory")

        def work(kube: KubeApi, talk: Talk) -> int:
            # -o: a file for one pod, a folder of POD.trace for several or --follow (checked once they are known)
            return trace_pods.run(kube, opts, ref, flags.max_pods, talk,
                                  check_output=not flags.dry_run and not ref.single_pod)

        return work

    workflow(ctx, flags, target, prepare)
