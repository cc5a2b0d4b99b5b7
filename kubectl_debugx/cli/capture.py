"""`kubectl debugx capture`: its flags, and which capture runs (one pod's pcap, or the merged pcapng)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_debugx.cli.workflow import Work, app, check_output_file_flag, debug_flags, examples, no_follow, workflow
from kubectl_debugx.errors import UsageError
from kubectl_debugx.flags import BESIDE_PODS, DurationOpt, Flags, FollowOpt, TargetArg, shared_flags

if TYPE_CHECKING:
    from kubectl_debugx.kube.workloads import TargetRef
    from kubectl_debugx.talk import Talk


@app.command(short_help="Capture a pod's or a workload's traffic with tcpdump.", epilog=examples(
    "# 30 s of pod web's HTTP traffic into a pcap file",
    "kubectl debugx capture web -n shop -f 'tcp port 80' --duration 30s -o web.pcap",
    '# every pod of deployment web, live into Wireshark (one interface per pod)',
    'kubectl debugx capture deploy/web -n shop --wireshark',
    '# interface eth0 only, to stdout for tshark',
    'kubectl debugx capture pod/web -i eth0 -o - | tshark -r -',
    '# what would be added, adding nothing',
    'kubectl debugx capture web --dry-run',
))
@shared_flags(*BESIDE_PODS)
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
            **debug_flags(flags),
        )
        cap.validate(opts)
        if viewer is None:
            check_output_file_flag(talk, path, flags, "pcap")
        if ring is not None and not flags.dry_run:
            from kubectl_debugx.options import check_output_file

            for index in range(1, ring):  # an older run's files would pass for this one's
                check_output_file(rings.ring_name(path, index), flags.force, False, "pcap")
        return opts

    def prepare(talk: Talk, ref: TargetRef) -> Work:
        from kubectl_debugx.commands import capture_pods

        if ref.single_pod:
            no_follow(follow, ref.name)
        if follow and (output_file or "").endswith(".pcap"):
            raise UsageError(f"--follow: -o {output_file} is pcap, which has no interfaces to add pods to as "
                             "they join: write .pcapng (or -o - for a pcapng stream)")
        # the default file: pcap for one pod, pcapng for a workload's (it may have several, or gain them)
        opts = options(talk, ref.file_stem, "pcap" if ref.single_pod else "pcapng")
        return lambda kube, talk: capture_pods.run(kube, opts, ref, flags.max_pods, talk)

    workflow(ctx, flags, target, prepare)


def _find_viewer(kind: str) -> Any:
    """--wireshark / --tshark: the program found now, before anything is created in the cluster."""
    import shutil

    from kubectl_debugx.remote.viewers import find_program

    return find_program(kind, os.environ, shutil.which, sys.platform, lambda path: os.access(path, os.X_OK))
