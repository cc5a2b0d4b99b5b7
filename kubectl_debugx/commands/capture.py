"""capture: tcpdump in an ephemeral container sharing the pod's network, pcap streamed back byte-exact."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubectl_debugx.commands import capture_drain
from kubectl_debugx.commands import capture_live as live
from kubectl_debugx.errors import Forbidden, NotFound, RemoteFailed, UsageError
from kubectl_debugx.formats.pcap import PcapFormatError, PcapFramer
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.pods import is_pod_security, short_psa
from kubectl_debugx.remote import ephemeral, process, profiles, ring, session, specs, toolrun
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.sinks import ByteSink, PipeClosed
from kubectl_debugx.remote.streamrun import ToolStderr
from kubectl_debugx.remote.viewers import Viewer, ViewerSpec
from kubectl_debugx.summary import stopped_by
from kubectl_debugx.talk import Talk, plural

DEFAULT_IMAGE = specs.DEFAULT_IMAGE
TOOL = "tcpdump"
COMMAND = "capture"


@dataclass(frozen=True, kw_only=True)
class CaptureOptions(session.DebugOptions):
    pod: str
    container: str | None = None
    interface: str = "any"
    filter: str = ""
    output: str = "-"
    duration: float | None = None
    count: int | None = None
    max_size: int | None = None  # with `ring`, the size of each file (remote/ring.py)
    ring: int | None = None  # --ring N: keep the newest N files of at most max_size each
    snaplen: int | None = None
    linktype: str | None = None  # tcpdump's name (capture_live.linktype)
    viewer: ViewerSpec | None = None  # --wireshark/--tshark: the stream goes to its stdin, not to `output`
    follow: bool = False  # --follow: pods of the workload that start running while capturing join


def validate(opts: CaptureOptions) -> None:
    """Checks that need no cluster; each message names its flag."""
    ephemeral.validate_debug_options(opts.profile, opts.ttl, opts.duration)
    if opts.count is not None and opts.count <= 0:
        raise UsageError(f"--count: must be a positive number of packets, got {opts.count}")
    if opts.snaplen is not None and not 0 <= opts.snaplen <= 262144:
        raise UsageError(f"--snaplen: must be between 0 and 262144 bytes, got {opts.snaplen}")
    if not opts.interface or opts.interface.startswith("-"):
        raise UsageError(f"-i/--interface: invalid interface name {opts.interface!r}")


# Why no --immediate-mode (measured with libpcap 1.10.3; bench/capture_loss): immediate mode makes libpcap
# use TPACKET_V2, whose ring has fixed slots of snaplen + headers bytes. With the default snaplen (262144) on
# `any` (LINUX_SLL2: no MTU cap, as Ethernet devices get) the 2 MiB ring held 8 packets (`ss -0 -e`:
# ring_rx(frm_size:262240, frm_nr:8)), so the kernel dropped packets at a few requests per second. Without it
# libpcap uses TPACKET_V3: blocks of 256 KiB filled with packets at their real size (thousands of small
# ones), each handed over when full or when its 1 s timer fires. -U still writes each packet as soon as
# tcpdump has it: packets reached us at most 1.0 s late (bench/capture_loss, "late max"). 0 dropped up to the
# most the test cluster pushed (10,000 packets/s), where the old options dropped 813 of 8,036.
#
# -B 8192 (8 MiB instead of 2): the ring is what absorbs a burst while our reader is stalled (a slow pipe, a
# busy API server). Measured with tcpdump -U -w - | (sleep 2; cat) during 1,500 requests on loopback:
# 2 MiB dropped 12,463 of 36,646 packets, 8 MiB none. The ring is kernel memory of the node, not charged to
# the pod's memory limit.
RING_KIB = 8192
# A stop request (Ctrl-C, SIGTERM, --duration) reads on until tcpdump has handed over what it captured before
# the request: capture_drain.py.
#
# A round of the read loop that brought little (ordinary traffic: a frame of a few KiB per tcpdump write) waits
# this long before the next (kube/execstream.GATHER_BYTES): 5 ms more on a packet that tcpdump hands over up to
# 1 s late, for about 20 times fewer rounds (bench/capture_fanout).
GATHER_S = 0.005


def tcpdump_argv(opts: CaptureOptions) -> list[str]:
    """tcpdump's argv: packet-buffered pcap on stdout, no promiscuous mode. The filter is one argument
    (tcpdump joins the rest of its argv into the expression), so it never meets a shell."""
    argv = [TOOL, "-U", "-p", "-B", str(RING_KIB), "-w", "-", "-i", opts.interface]
    if opts.linktype is not None:
        argv += ["-y", opts.linktype]
    if opts.snaplen is not None:
        argv += ["-s", str(opts.snaplen)]
    if opts.count is not None:
        argv += ["-c", str(opts.count)]
    if opts.filter:
        argv += ["--", opts.filter]
    return argv


_COUNTS = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel)$")


@dataclass
class TcpdumpTalk(ToolStderr):
    """tcpdump's stderr: shown live once it listens; kept back (for the error) until then; counts parsed."""

    show: Callable[[str], None]
    listening: bool = False
    early: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def _line(self, line: str) -> None:
        if not line:
            return
        match = _COUNTS.match(line)
        if match:
            self.counts[match.group(2)] = int(match.group(1))
        elif self.listening:
            self.show(line)
        else:
            self.early.append(line)
            if line.startswith(("tcpdump: listening on", "listening on")):
                self.listening = True
                self.show(line)

    def error_line(self) -> str:
        lines = [x for x in self.early if "listening on" not in x and not x.startswith("tcpdump: verbose")]
        return lines[-1] if lines else ""


class PcapOutput:
    """The pcap stream's way to its file or pipe: whole records only, one writev per batch of frames. With
    `ring` (--ring N) the records go to a RingSink, each whole in one file, every file starting with the
    global header; `max_bytes` is then the size of each file."""

    def __init__(self, path: str, max_bytes: int | None = None, viewer: Viewer | None = None,
                 ring_files: int | None = None) -> None:
        self.sink: ByteSink | ring.RingSink
        self.ring: ring.RingSink | None = None
        if ring_files and max_bytes:
            self.sink = self.ring = ring.RingSink(path, ring_files, max_bytes)
            self.framer = PcapFramer(split=True)
        else:
            self.sink = ByteSink(path, opener=viewer.open if viewer else None)
            self.framer = PcapFramer(max_bytes)
        self.pipe_closed = False
        self._header_seen = False
        self._batch: list[bytes | memoryview] = []

    def feed(self, data: memoryview) -> None:
        if self.ring is not None:
            units = self.framer.feed(data)
            if units and not self._header_seen:
                self.ring.header(bytes(units.pop(0)))  # the first unit: the global header
                self._header_seen = True
            self.ring.records(units)
        elif not self.pipe_closed:
            self._batch.extend(self.framer.feed(data))

    def flush(self) -> None:
        """Write what the batch completed; the views in it stay valid until this returns."""
        if not isinstance(self.sink, ByteSink):
            self.sink.flush()  # a ring: the records went to it one by one
            return
        try:
            if self._batch and not self.pipe_closed:
                self.sink.writev(self._batch)
        except PipeClosed:
            self.pipe_closed = True  # the reader went away (| head, Wireshark closed): stop like tcpdump
        finally:
            self._batch.clear()


ADMISSION_HINT = ("capturing needs NET_RAW; use a namespace whose Pod Security level admits it "
                  "(baseline on containerd/docker, or privileged), or --profile/--custom with what it admits")


def choose_profile(kube: KubeApi, target: Target, opts: CaptureOptions) -> session.Candidate:
    """The least-privilege profile that the namespace admits and that can capture."""

    def candidate(profile: str) -> session.Candidate:
        return session.candidate(kube, target, profile, opts.image, opts.custom, opts.ttl, opts.duration)

    first = candidate("netadmin" if opts.profile == "auto" else opts.profile)
    if first.refusal is None:
        return first
    if opts.profile != "auto" or not is_pod_security(first.refusal):
        raise session.refused(kube, target, COMMAND, first.refusal, first.profile, ADMISSION_HINT)
    # Added capabilities are refused. Only now does the runtime matter: does it grant NET_RAW unasked?
    runtime = _node_runtime(kube, target)
    if not profiles.grants_by_default(runtime, "NET_RAW"):
        raise Forbidden(f"Pod Security refuses added capabilities in namespace {target.namespace} and the "
                        f"node's runtime ({runtime}) does not grant NET_RAW by default; nothing was created. "
                        "Use a namespace whose Pod Security level is privileged")
    second = candidate("baseline")
    if second.refusal is None:
        second.notes.append("Pod Security refuses added capabilities here; relying on the NET_RAW that "
                            f"{runtime or 'the container runtime (assumed containerd)'} grants by default")
        return second
    if not is_pod_security(second.refusal):
        raise session.refused(kube, target, COMMAND, second.refusal, "baseline", ADMISSION_HINT)
    raise Forbidden(f"Pod Security refuses every profile that can capture in namespace {target.namespace} "
                    f"({short_psa(second.refusal.args[0])}); nothing was created. Capturing needs "
                    "NET_RAW: use a namespace whose Pod Security level is baseline or privileged")


def _node_runtime(kube: KubeApi, target: Target) -> str:
    node = (target.pod.get("spec") or {}).get("nodeName")
    if not node:
        return ""
    try:
        info = (kube.get_node(node).get("status") or {}).get("nodeInfo") or {}
    except ApiError:
        return ""  # reading nodes is often not allowed; admission will still tell us the truth
    return profiles.runtime_name(info.get("containerRuntimeVersion", ""))


def check_interface(kube: KubeApi, pods: list[Target], ecs: list[str], interface: str) -> None:
    """-i IFACE against each pod's interfaces, before tcpdump starts: /proc/net/dev read in the debug container,
    which shares the pod's network namespace (one short exec per pod, only for an -i other than any). A pod's
    interfaces are not in the API, hence after the debug container: a reused one means nothing was created."""
    if interface == "any":
        return
    for target, ec in zip(pods, ecs, strict=True):
        try:
            text = process.short_exec(kube, target.namespace, target.pod_name, ec, ["cat", "/proc/net/dev"])
        except RemoteFailed:  # an --image without cat: tcpdump alone will judge the interface
            continue
        problem = live.unknown_interface(interface, f"{target.namespace}/{target.pod_name}", live.net_devices(text))
        if problem:
            raise NotFound(problem)


def capture_pcap(kube: KubeApi, target: Target, ec: str, opts: CaptureOptions, profile: str, talk: Talk) -> int:
    """One pod's tcpdump passed through as pcap (byte-exact records) into its file, pipe, ring or viewer."""
    viewer = Viewer(opts.viewer) if opts.viewer else None
    output = PcapOutput(opts.output, opts.max_size, viewer, opts.ring)  # with a viewer, `output` is its name
    sink, framer = output.sink, output.framer
    tcpdump = TcpdumpTalk(talk.say)
    progress = (live.progress(lambda: (framer.stats.records, sink.written))
                if live.shows_progress(opts.output, opts.viewer, talk.quiet) else None)
    if progress:
        talk.before_line = progress.clear

    def stop_wanted() -> bool:  # polled about every 0.1 s while no stop was asked
        if progress:
            progress.tick()
        return framer.limit_reached or output.pipe_closed or bool(viewer and viewer.exited())

    def close() -> None:
        if progress:
            progress.finish()  # the summary starts on a clean line
            talk.before_line = None
        output.flush()  # nothing is left queued normally (each batch ends with a flush)
        sink.close()  # a viewer reads the end of the stream: tshark exits, Wireshark shows the capture

    point = capture_drain.DrainPoint(target, ec, framer.scanner)

    def feed(data: memoryview) -> None:
        point.fed()
        output.feed(data)

    talk.say(f"Capturing on {opts.interface} in pod {target.namespace}/{target.pod_name} "
             f"(container {target.container}) into {sink.display}; Ctrl-C to stop")
    try:
        ran = toolrun.run_tool(
            kube, target, ec, TOOL, tcpdump_argv(opts), on_stdout=feed, stderr=tcpdump,
            duration=opts.duration, limit_reached=stop_wanted, talk=talk, close=close, on_batch_end=output.flush,
            grace=capture_drain.PacketDrain(kube, lambda: [point]),
            eof_signal="KILL",  # we are gone: nobody reads its output, and it may be blocked writing it
            command=COMMAND, gather=GATHER_S,
        )
    except PcapFormatError as e:
        raise RemoteFailed(f"tcpdump did not write pcap: {e}") from None
    if tcpdump.listening or sink.written:
        limit = "--max-size" if framer.limit_reached else "reader-gone"
        _summary(talk, tcpdump.counts, summary_record(
            tcpdump.counts, framer.stats.records, sink.written, sink.display, ran.elapsed, profile, target.container,
            ec, opts.interface, stopped_by(ran.state.reason, limit)))
        if output.ring is not None:
            talk.say(ring.describe(output.ring))
            talk.record(**ring.summary(output.ring))
    error = (toolrun.cut_error(ran, sink.display, f"{framer.stats.records} whole packets")
             or toolrun.tool_error(ran, TOOL, tcpdump.error_line(), opts.image))
    if error:
        raise error
    if viewer:
        code = viewer.wait(talk.say)
        if code:
            talk.warn(f"{viewer.name} exited with code {code}")
    return ran.state.exit_code


def count_lines(counts: Mapping[str, int], interface: str) -> tuple[str, str | None]:
    """tcpdump's own counts in words, and a warning when the kernel dropped packets (the pcap then misses
    them, though every packet in it is valid)."""
    captured = counts.get("captured", 0)
    received = counts.get("received by filter", 0)
    dropped = counts.get("dropped by kernel", 0)
    text = f"tcpdump: {plural(captured, 'packet')} captured, {received} received by filter, {dropped} dropped by kernel"
    if interface == "any":
        # libpcap sees each loopback packet twice on `any` (sent and received) and keeps one: the kernel's
        # "received" counts both (measured: 10 captured, 20 received for 10 packets on lo).
        text += " (on interface any, received counts loopback packets twice)"
    warning = None
    if dropped:
        warning = (f"the kernel dropped {plural(dropped, 'packet')} that matched the filter: "
                   f"{'it is' if dropped == 1 else 'they are'} missing from the "
                   "capture. Capture less (a narrower -f filter, a smaller --snaplen, -i with one interface) "
                   "or write to a faster place (a local file rather than a slow pipe)")
    return text, warning


def summary_record(counts: Mapping[str, int], packets: int, written: int, output: str, elapsed: float,
                   profile: str, container: str, ec: str, interface: str, stopped: str | None) -> dict[str, Any]:
    """capture's part of the JSON summary (kubectl_debugx/summary.py); tcpdump's counts are null when it did
    not print them (stopped before it listened)."""
    return {
        "container": container, "debugContainer": ec, "profile": profile, "output": output,
        "durationSeconds": round(elapsed, 3), "stoppedBy": stopped, "interface": interface,
        "packetsWritten": packets, "bytesWritten": written, "packetsCaptured": counts.get("captured"),
        "packetsReceivedByFilter": counts.get("received by filter"),
        "droppedByKernel": counts.get("dropped by kernel"),
    }


def summary_text(counts: Mapping[str, int], record: Mapping[str, Any]) -> tuple[str, str | None]:
    """The closing line on stderr, and the warning about packets the kernel dropped."""
    parts = []
    warning = None
    if counts:
        text, warning = count_lines(counts, record["interface"])
        parts.append(text)
    parts.append(f"{plural(record['packetsWritten'], 'packet')} ({plural(record['bytesWritten'], 'byte')}) "
                 f"written to {record['output']}")
    if record["stoppedBy"] == "--max-size":
        parts.append("stopped at --max-size")
    parts.append(f"{record['durationSeconds']:.1f}s")
    parts.append(f"profile {record['profile']}, container {record['debugContainer']}")
    return "; ".join(parts), warning


def _summary(talk: Talk, counts: Mapping[str, int], record: dict[str, Any]) -> None:
    text, warning = summary_text(counts, record)
    talk.say(text)
    if warning:
        talk.warn(warning)
    talk.record(**record)
