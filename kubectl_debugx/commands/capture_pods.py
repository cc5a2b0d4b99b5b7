"""capture of N >= 1 pods: the pipeline (remote/fanout.py), then one pod's pcap passed through (capture.py), or
one tcpdump per pod, all streams read by one loop (remote/toolrun.py), merged into ONE pcapng.

Layout of the file: a Section Header Block whose comment is the command line, the cluster server and the start
time; a Name Resolution Block (pod IPs -> pod names, the service's IP -> its name for svc/); then, as each
pod's tcpdump sends its pcap header, that pod's Interface Description Block (if_name NAMESPACE/POD,
if_description: node, pod IP, target container, debug container; link type and snap length from its header);
Enhanced Packet Blocks in timestamp order across pods within a reorder window (formats/pcapng.Merger); at the
end an Interface Statistics Block per pod with tcpdump's own counts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubectl_debugx.errors import UsageError
from kubectl_debugx.formats import pcapng
from kubectl_debugx.formats.pcap import PcapFormatError, PcapHeader
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.workloads import Resolution, TargetRef
from kubectl_debugx.remote import containers, fanout, following, ring, toolrun
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.sinks import ByteSink, PipeClosed
from kubectl_debugx.remote.streamrun import StopState
from kubectl_debugx.remote.viewers import Viewer
from kubectl_debugx.summary import stopped_by
from kubectl_debugx.talk import Talk, plural

from . import capture as single
from . import capture_drain
from . import capture_live as live
from . import capture_names as names

# tcpdump hands packets over in batches up to about 1 s late (recordings/27-*, TPACKET_V3 block timeout), a
# block up to two timer periods late at worst (capture_drain.STOP_GRACE): a pod's packets may reach us 2 s after
# another's of the same moment. Within this window the merge writes them in timestamp order.
WINDOW_S = 2.5
# Memory bound of the reorder window: past this many held bytes the earliest packets go out at once.
HELD_BYTES_BASE = 16 * 1024 * 1024
HELD_BYTES_PER_POD = 1024 * 1024
FLUSH_S = 0.02  # the most a released packet waits for its write (flush_due); the tick flushes too


def wants_pcapng(path: str, pods: int) -> bool:
    """pcapng for a .pcapng file, and for several pods (to stdout too); plain pcap for one pod otherwise."""
    return path.endswith(".pcapng") or pods > 1


@dataclass
class PodCapture:
    """One pod's part of the capture."""

    target: Target
    ec: str
    profile: str
    talk: single.TcpdumpTalk
    reader: pcapng.EpbReader = field(default_factory=pcapng.EpbReader)  # on_header (set by _capture): its IDB
    written: int = 0
    error: str = ""
    joined_at: float | None = None  # --follow: when it joined (None: one of the first pods)
    left_at: float | None = None  # --follow: when its capture ended because the pod went away
    point: capture_drain.DrainPoint = field(init=False)  # what a stop waits for

    def __post_init__(self) -> None:
        self.point = capture_drain.DrainPoint(self.target, self.ec, self.reader.scanner)

    @property
    def interface(self) -> int | None:
        """Its pcapng interface id, once its tcpdump's pcap header came (None before)."""
        return self.reader.interface

    @property
    def label(self) -> str:
        return f"{self.target.namespace}/{self.target.pod_name}"

    @property
    def ip(self) -> str:
        return str((self.target.pod.get("status") or {}).get("podIP") or "")


class PcapngOutput:
    """The merged pcapng: blocks collected per batch and written with one writev (the EPBs as the merger
    releases them, each one bytes object: no join, no copy); to a viewer's stdin with
    `viewer` (as the one-pod capture), or with `ring_files` (--ring N) to a RingSink: one EPB per record so a
    packet is never split, the SHB, NRB and IDBs as the header every file starts with (`max_bytes` is then the
    size of each file)."""

    def __init__(self, path: str, max_bytes: int | None, head: bytes, pods: int, *, viewer: Viewer | None = None,
                 ring_files: int | None = None) -> None:
        self.sink: ByteSink | ring.RingSink
        self.ring: ring.RingSink | None = None
        if ring_files and max_bytes:
            self.sink = self.ring = ring.RingSink(path, ring_files, max_bytes)
            max_bytes = None
        else:
            self.sink = ByteSink(path, opener=viewer.open if viewer else None)
        self.max_bytes = max_bytes
        self.merger = pcapng.Merger(int(WINDOW_S * 1e9), HELD_BYTES_BASE + HELD_BYTES_PER_POD * pods)
        self.blocks: list[bytes | memoryview] = []
        self.pending_bytes = 0
        self.limit_reached = False
        self.pipe_closed = False
        self.started = False
        self.packets = 0
        self.flushed_at = 0  # monotonic ns of the last flush
        self.add(head, header=True)

    def add(self, block: bytes, *, header: bool = False) -> None:
        """Queue a block; `header`: one every file of a ring starts with (SHB, NRB, IDB)."""
        if self.ring is not None:
            if header:
                self.ring.header(block)
            else:
                self.ring.record(block, packets=0)  # an ISB: in the last file, which has every interface
            return
        self.blocks.append(block)
        self.pending_bytes += len(block)

    def interface(self, pod: PodCapture, header: PcapHeader, interface_filter: str) -> int:
        self.started = True
        source = self.merger.add_source()
        node = (pod.target.pod.get("spec") or {}).get("nodeName") or "?"
        description = (f"node {node}, pod IP {pod.ip or '?'}, container {pod.target.container}, "
                       f"debug container {pod.ec}")
        self.add(pcapng.interface_description(pod.label, description, header.linktype, header.snaplen,
                                              interface_filter or None), header=True)
        return source

    def flush(self, now_ns: int | None = None) -> None:
        """Write what the window releases (everything when now_ns is None: the end)."""
        self.flushed_at = time.monotonic_ns() if now_ns is None else now_ns
        released = self.merger.drain() if now_ns is None else self.merger.ready(now_ns)
        if not released:
            self.write()
            return
        blocks = [entry[3] for entry in released]
        if self.max_bytes is not None:
            room = self.max_bytes - self.sink.written - self.pending_bytes
            if sum(map(len, blocks)) > room:
                self.limit_reached = True
                fit = 0  # the blocks that fit: some do not (the sum is over the room), so the loop ends
                while len(blocks[fit]) <= room:
                    room -= len(blocks[fit])
                    fit += 1
                for entry in released[fit:]:  # not written after all
                    self.merger.released[entry[2]] -= 1
                blocks = blocks[:fit]
        if self.ring is not None:
            self.ring.records(blocks)
        else:
            self.blocks.extend(blocks)
            self.pending_bytes += sum(map(len, blocks))
        self.packets += len(blocks)
        self.write()

    def flush_due(self, now_ns: int) -> None:
        """flush() at the end of a stream's batch, at most every FLUSH_S: the blocks are copies (not views of
        the frame buffer, unlike the one-pod pcap path), so they can wait; with N pods one round of the read
        loop ends N batches, and each flush asks the merger for its watermark."""
        if now_ns - self.flushed_at >= FLUSH_S * 1e9:
            self.flush(now_ns)

    def write(self) -> None:
        """Write the blocks collected; nothing (no file) until a pod's tcpdump has started."""
        if not self.started:
            return
        if not isinstance(self.sink, ByteSink):
            self.sink.flush()  # a ring: the blocks went to it one by one
            return
        try:
            if self.blocks and not self.pipe_closed:
                self.sink.writev(list(self.blocks))
        except PipeClosed:
            self.pipe_closed = True  # the reader went away (| head, Wireshark closed): stop like tcpdump
        finally:
            self.blocks.clear()
            self.pending_bytes = 0


def run(kube: KubeApi, opts: single.CaptureOptions, ref: TargetRef, max_pods: int, talk: Talk) -> int:
    """capture of N >= 1 pods through the one pipeline (remote/fanout.py). The output is what -o and the pods
    ask for: one pod not into a .pcapng (and no --follow) is its tcpdump's pcap passed through, else the merged
    pcapng; never a matter of how the target was spelled (a one-replica Deployment is captured as its pod)."""
    resolution = fanout.resolve_pods(kube, ref, max_pods, talk.say, opts.follow)
    pcap = not opts.follow and not wants_pcapng(opts.output, len(resolution.pods))
    if opts.output.endswith(".pcap") and len(resolution.pods) > 1:
        raise UsageError(f"-o {opts.output}: {ref.display} has {len(resolution.pods)} pods and pcap has no "
                         "interfaces to tell them apart: write .pcapng (or -o - for a pcapng stream)")
    admission = fanout.Admission(kube, single.COMMAND, lambda t: single.choose_profile(kube, t, opts), opts.image,
                                 opts.custom, opts.ttl, opts.duration, single.ADMISSION_HINT)
    admitted = fanout.admit(resolution, opts.container, admission, talk.say)
    pods, chosen = admitted.pods, admitted.chosen
    if not pcap:
        talk.say(f"Capturing {plural(len(pods), 'pod')} of {ref.display}: " + ", ".join(t.pod_name for t in pods))
    if opts.dry_run:
        return fanout.dry_run_all(talk, pods, chosen)
    ecs = containers.start_all(kube, pods, chosen, opts.duration, talk)
    single.check_interface(kube, pods, ecs, opts.interface)  # an unknown -i named before tcpdump starts
    if pcap:
        return single.capture_pcap(kube, pods[0], ecs[0], opts, chosen[0].profile, talk)
    captures = [PodCapture(t, ec, c.profile, single.TcpdumpTalk(fanout.prefixed(talk.say, t.pod_name)))
                for t, ec, c in zip(pods, ecs, chosen, strict=True)]
    follow = following.Follow(kube, ref, resolution, admission, opts.container, max_pods, talk) if opts.follow else None
    return _capture(kube, opts, resolution, captures, talk, follow)


def _capture(kube: KubeApi, opts: single.CaptureOptions, resolution: Resolution, captures: list[PodCapture],
             talk: Talk, follow: following.Follow | None = None) -> int:
    started = time.time()
    head = pcapng.section_header(names.section_comment(kube, started))
    records = names.name_records(resolution) + names.peer_records(kube, resolution)
    if records:
        head += pcapng.name_resolution(records)
    viewer = Viewer(opts.viewer) if opts.viewer else None
    output = PcapngOutput(opts.output, opts.max_size, head, len(captures), viewer=viewer, ring_files=opts.ring)
    progress = (live.progress(lambda: (output.packets, output.sink.written), pods=lambda: output.merger.live)
                if live.shows_progress(opts.output, opts.viewer, talk.quiet) else None)
    if progress:
        talk.before_line = progress.clear

    def tick() -> None:
        output.flush(time.monotonic_ns())
        if progress:
            progress.tick()

    def on_stdout(capture: PodCapture) -> Any:
        reader = capture.reader
        reader.on_header = lambda header: output.interface(capture, header, opts.filter)
        push = output.merger.push

        def feed(data: memoryview) -> None:
            capture.point.fed()
            if capture.error or output.pipe_closed:
                return
            try:
                stamps, blocks = reader.feed(data)
            except PcapFormatError as e:
                capture.error = f"tcpdump did not write pcap: {e}"
                return
            if stamps:
                assert reader.interface is not None  # its header came first (EpbReader.on_header)
                push(reader.interface, stamps, blocks, time.monotonic_ns())
        return feed

    def on_end(pod: toolrun.PodTool) -> None:
        capture = next(c for c in captures if c.target is pod.target)
        capture.point.ended = True
        if capture.interface is not None:
            output.merger.end_source(capture.interface)
        if follow is not None:
            follow.ended()
        if follow is not None and follow.left(pod, state):
            # A rollout replaces pods: one that goes away ends its interface, and is no failure.
            capture.left_at = time.time()
            talk.say(f"Pod {capture.label} left (deleted): interface "
                     f"{capture.interface if capture.interface is not None else '-'} ended")
            return
        capture.error = capture.error or toolrun.failure(kube, pod, state, single.TOOL,
                                                        capture.talk.error_line(), opts.image)
        if capture.error and not state.reason:
            talk.warn(f"capture in pod {capture.label} ended: {capture.error}; the other pods go on")

    def make_tool(joining: following.Joining) -> toolrun.PodTool:
        """A joined pod (--follow): its part of the capture; its interface comes with its tcpdump's header."""
        capture = PodCapture(joining.target, joining.ec, joining.candidate.profile,
                             single.TcpdumpTalk(fanout.prefixed(talk.say, joining.target.pod_name)),
                             joined_at=time.time())
        captures.append(capture)
        records = names.name_records(Resolution(resolution.ref, resolution.selector, pods=[joining.target.pod]))
        if records:
            output.add(pcapng.name_resolution(records), header=True)  # every ring file names it
        talk.say(f"Pod {capture.label} joined the capture")
        return toolrun.PodTool(joining.target, joining.ec, joining.argv, on_stdout(capture), capture.talk,
                              process=joining.process)

    state = StopState()  # shared with on_end: it tells a stop we asked for from a failure
    tools = [toolrun.PodTool(c.target, c.ec, single.tcpdump_argv(opts), on_stdout(c), c.talk) for c in captures]
    joins = None
    if follow is not None:
        joins = follow.start(single.TOOL, "KILL", opts.duration, lambda _t, _ec: single.tcpdump_argv(opts),
                             make_tool, lambda: sum(1 for t in tools if not t.reported))
    talk.say(f"Capturing on {opts.interface} in {plural(len(captures), 'pod')} into {output.sink.display} "
             f"(pcapng, one interface per pod{'; pods that start running join' if follow else ''}); Ctrl-C to "
             "stop")
    try:
        elapsed = toolrun.run_tools(
            kube, tools, single.TOOL, state, duration=opts.duration, command=single.COMMAND,
            limit_reached=lambda: output.limit_reached or output.pipe_closed or bool(viewer and viewer.exited()),
            talk=talk, on_end=on_end, on_batch_end=lambda: output.flush_due(time.monotonic_ns()), on_tick=tick,
            grace=capture_drain.PacketDrain(kube, lambda: [c.point for c in captures]),
            eof_signal="KILL",  # we are gone: nobody reads its output, and it may be blocked writing it
            joins=joins, gather=single.GATHER_S,
        )
    finally:
        if follow is not None:
            follow.stop()
        if progress:
            progress.finish()  # the summary starts on a clean line
            talk.before_line = None
        output.flush(None)
        for capture in captures:
            if capture.interface is not None and capture.talk.counts:
                counts = capture.talk.counts
                output.add(pcapng.interface_statistics(
                    capture.interface, time.time_ns(), start_ns=int(started * 1e9),
                    received=counts.get("received by filter"), dropped=counts.get("dropped by kernel"),
                    delivered=counts.get("captured")))
        output.write()
        output.sink.close()
    for capture in captures:
        interface = capture.interface
        capture.written = output.merger.released[interface] if interface is not None else 0
    code = _finish(talk, opts, captures, output, state, elapsed, follow.failed if follow else {})
    if viewer:
        viewer_code = viewer.wait(talk.say)
        if viewer_code:
            talk.warn(f"{viewer.name} exited with code {viewer_code}")
    return code


def _finish(talk: Talk, opts: single.CaptureOptions, captures: list[PodCapture], output: PcapngOutput,
            state: StopState, elapsed: float, not_joined: dict[str, str]) -> int:
    records = [pod_record(c) for c in captures]
    for capture in captures:
        counts = capture.talk.counts
        text = (f"{capture.label}: {plural(capture.written, 'packet')} written"
                + (f", tcpdump: {counts.get('captured', 0)} captured, {counts.get('dropped by kernel', 0)} "
                   "dropped by kernel" if counts else "")
                + (f"; FAILED: {capture.error}" if capture.error else ""))
        talk.say(text)
    limit = "--max-size" if output.limit_reached else "reader-gone"
    talk.say(f"{plural(output.packets, 'packet')} ({plural(output.sink.written, 'byte')}) from "
             f"{plural(len(captures), 'pod')} written to {output.sink.display}; {elapsed:.1f}s; "
             f"reorder window {WINDOW_S:g}s, {output.merger.out_of_order} out of order")
    if output.ring is not None:
        talk.say(ring.describe(output.ring))
    dropped = sum(c.talk.counts.get("dropped by kernel", 0) for c in captures)
    if dropped:
        talk.warn(f"the kernel dropped {plural(dropped, 'packet')} that matched the filter: they are missing "
                  "from the capture")
    talk.record(**summary_record(captures, records, output, elapsed, opts, stopped_by(state.reason, limit)))
    return toolrun.exit_code(state, {**{c.label: c.error for c in captures}, **not_joined}, "capture",
                            f"{output.sink.display} holds what the others captured", talk.warn)


def pod_record(capture: PodCapture) -> dict[str, Any]:
    """One pod's entry of the summary's `pods` (kubectl_debugx/summary.py POD)."""
    counts: Mapping[str, int] = capture.talk.counts
    return {
        "namespace": capture.target.namespace, "pod": capture.target.pod_name,
        "node": (capture.target.pod.get("spec") or {}).get("nodeName"), "podIP": capture.ip or None,
        "container": capture.target.container, "debugContainer": capture.ec, "profile": capture.profile,
        "interfaceId": capture.interface, "packetsWritten": capture.written,
        "packetsCaptured": counts.get("captured"), "droppedByKernel": counts.get("dropped by kernel"),
        "error": capture.error or None, **following.times(capture.joined_at, capture.left_at),
    }


def summary_record(captures: list[PodCapture], records: list[dict[str, Any]], output: PcapngOutput,
                   elapsed: float, opts: single.CaptureOptions, stopped: str | None) -> dict[str, Any]:
    def total(key: str) -> int | None:
        values = [c.talk.counts[key] for c in captures if key in c.talk.counts]
        return sum(values) if values else None

    profiles = sorted({c.profile for c in captures})
    return {
        "profile": ",".join(profiles), "output": output.sink.display if opts.output != "-" else "-",
        "durationSeconds": round(elapsed, 3), "stoppedBy": stopped, "interface": opts.interface,
        "packetsWritten": output.packets, "bytesWritten": output.sink.written,
        "packetsCaptured": total("captured"), "packetsReceivedByFilter": total("received by filter"),
        "droppedByKernel": total("dropped by kernel"), "pods": records,
        **(ring.summary(output.ring) if output.ring is not None else {}),
    }
