"""remote/ring.py: --ring N --max-size SIZE, checked file by file on tmp_path; and the pcap writer side that
feeds it (PcapFramer(split=True), capture.PcapOutput with a ring)."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest

from kubectl_debugx.commands.capture import PcapOutput
from kubectl_debugx.errors import UsageError
from kubectl_debugx.formats.pcap import Packet, PcapFramer, PcapHeader
from kubectl_debugx.remote import ring
from kubectl_debugx.remote.ring import RingFile, RingSink, ring_name


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_names_as_logrotate():
    assert [ring_name("/d/web.pcapng", i) for i in range(3)] == ["/d/web.pcapng", "/d/web.1.pcapng", "/d/web.2.pcapng"]
    assert ring_name("web", 2) == "web.2"
    assert ring_name("a.b.pcap", 1) == "a.b.1.pcap"
    assert ring_name(".pcap", 1) == ".pcap.1"


def test_keeps_the_newest_n_files_each_starting_with_the_header(tmp_path: Path):
    path = str(tmp_path / "web.pcap")
    sink = RingSink(path, 3, 10)
    sink.header(b"HH")
    for i in range(10):  # records of 3 bytes: HH + 2 records = 8, a third would make 11 > 10
        sink.record(b"r%d-" % i)
        if i % 3 == 0:
            sink.flush()
    sink.flush()
    sink.close()
    assert files(tmp_path) == {
        "web.pcap": b"HHr8-r9-",
        "web.1.pcap": b"HHr6-r7-",
        "web.2.pcap": b"HHr4-r5-",
    }
    assert list(sink.kept) == [RingFile(2, 2, 8), RingFile(2, 2, 8), RingFile(2, 2, 8)]
    counts = (sink.files_written, sink.files_dropped, sink.packets_dropped, sink.written, sink.oversize)
    assert counts == (5, 2, 4, 40, 0)
    assert sum(f.packets for f in sink.kept) + sink.packets_dropped == 10
    assert ring.summary(sink) == {
        "ringFiles": [{"file": path, "packets": 2, "bytes": 8}, {"file": ring_name(path, 1), "packets": 2, "bytes": 8},
                      {"file": ring_name(path, 2), "packets": 2, "bytes": 8}],
        "filesWritten": 5, "filesDropped": 2, "packetsDropped": 4,
    }
    assert ring.describe(sink) == (f"ring of 3 files of at most 10 B: 5 written, 2 dropped (4 packets); kept {path} "
                                   f"(2 packets), {ring_name(path, 1)} (2 packets), {ring_name(path, 2)} (2 packets)")


def test_a_header_unit_that_comes_later_starts_every_later_file_and_keeps_its_place(tmp_path: Path):
    sink = RingSink(str(tmp_path / "x.pcapng"), 2, 12)
    sink.header(b"S")  # the SHB
    sink.header(b"I0")  # the first pod's IDB
    sink.record(b"p0a")
    sink.record(b"p0b")  # S I0 p0a p0b = 9
    sink.header(b"I1")  # 11: fits
    sink.record(b"p1a")  # 14 > 12: a new file S I0 I1 p1a
    sink.record(b"isb", packets=0)  # 11
    sink.flush()
    sink.close()
    assert files(tmp_path) == {"x.pcapng": b"SI0I1p1aisb", "x.1.pcapng": b"SI0p0ap0bI1"}
    assert [(f.packets, f.records) for f in sink.kept] == [(1, 2), (2, 2)]


def test_a_header_unit_that_does_not_fit_rotates_and_opens_the_next_file(tmp_path: Path):
    sink = RingSink(str(tmp_path / "x"), 2, 6)
    sink.header(b"S")
    sink.record(b"aaaa")  # 5
    sink.header(b"I1")  # 7 > 6: goes to the next file's header only
    sink.record(b"b")
    sink.flush()
    sink.close()
    assert files(tmp_path) == {"x": b"SI1b", "x.1": b"Saaaa"}


def test_a_record_larger_than_the_size_is_written_alone_not_lost(tmp_path: Path):
    sink = RingSink(str(tmp_path / "x"), 3, 6)
    sink.header(b"H")
    sink.record(b"ab")
    sink.record(b"0123456789")  # alone in a file of its own
    sink.record(b"cd")
    sink.flush()
    sink.close()
    assert files(tmp_path) == {"x": b"Hcd", "x.1": b"H0123456789", "x.2": b"Hab"}
    assert sink.oversize == 1
    assert ring.describe(sink).endswith("; 1 packet larger than --max-size was written alone in a file")


def test_nothing_is_created_before_the_first_flush_and_an_older_runs_files_go_then(tmp_path: Path):
    (tmp_path / "x.1").write_bytes(b"old")
    (tmp_path / "x.2").write_bytes(b"old")
    sink = RingSink(str(tmp_path / "x"), 3, 100)
    sink.header(b"H")
    assert files(tmp_path) == {"x.1": b"old", "x.2": b"old"}  # a run that fails now changes nothing
    sink.record(b"a")
    sink.flush()
    assert files(tmp_path) == {"x": b"Ha"}
    sink.close()
    empty = RingSink(str(tmp_path / "never"), 2, 100)
    empty.header(b"H")  # queued, never flushed (a pcapng head whose tcpdump never started): no file
    empty.close()
    assert not (tmp_path / "never").exists()


def test_a_crash_during_rotation_never_leaves_fewer_than_n_minus_1_older_files(tmp_path: Path, monkeypatch):
    """Renames go newest-last: after each one, count the files on disk (a crash could stop at any of them)."""
    real_replace = os.replace
    seen: list[int] = []

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        seen.append(len(list(tmp_path.iterdir())))

    monkeypatch.setattr(os, "replace", replace)
    sink = RingSink(str(tmp_path / "x"), 4, 3)
    sink.header(b"H")
    for _ in range(12):
        sink.record(b"ab")
    sink.flush()
    sink.close()
    assert seen and min(seen[6:]) >= 3  # once the ring is full (the first 1+2+3 renames fill it)
    assert len(list(tmp_path.iterdir())) == 4


@pytest.mark.parametrize(
    ("files_", "size", "output", "viewer", "message"),
    [
        (1, 10, "x.pcap", None, "--ring: must be at least 2 files (the one written and an older one), got 1"),
        (3, None, "x.pcap", None, "--ring needs --max-size: the size of each file (e.g. --ring 3 --max-size 100M)"),
        (3, 10, "", "wireshark", "--ring and --wireshark cannot be combined: the capture goes to wireshark, not to "
                                 "files"),
        (3, 10, "-", None, "--ring and -o - cannot be combined: a ring is files (name the newest with -o FILE)"),
    ],
)
def test_refusals(files_, size, output, viewer, message):
    with pytest.raises(UsageError) as e:
        ring.validate(files_, size, output, viewer)
    assert str(e.value) == message


def pcap_stream(records: list[bytes]) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    return head + b"".join(struct.pack("<IIII", i, 0, len(r), len(r)) + r for i, r in enumerate(records))


def test_split_framer_gives_each_record_whole_wherever_the_stream_is_cut():
    records = [bytes([i]) * (i * 7 % 50 + 1) for i in range(40)]
    stream = pcap_stream(records)
    rng = random.Random(4)
    framer = PcapFramer(split=True)
    units: list[bytes] = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 60)
        units += [bytes(u) for u in framer.feed(memoryview(stream[pos:pos + step]))]
        pos += step
    assert units == [stream[:24]] + [struct.pack("<IIII", i, 0, len(r), len(r)) + r for i, r in enumerate(records)]
    assert framer.stats.records == 40


def test_one_pod_pcap_ring_every_file_is_a_pcap_and_no_packet_is_lost(tmp_path: Path):
    records = [bytes([i % 256]) * 100 for i in range(50)]  # 116-byte records
    stream = pcap_stream(records)
    output = PcapOutput(str(tmp_path / "w.pcap"), 1000, None, 3)
    for pos in range(0, len(stream), 333):
        output.feed(memoryview(stream[pos:pos + 333]))
        output.flush()
    output.sink.close()
    assert output.ring is not None
    kept = files(tmp_path)
    assert sorted(kept) == ["w.1.pcap", "w.2.pcap", "w.pcap"]
    whole = [struct.pack("<IIII", i, 0, 100, 100) + r for i, r in enumerate(records)]
    # 24 + 8 x 116 = 952 <= 1000: 8 records a file; 50 = 6 x 8 + 2: the newest has 2, the two before 8 each
    assert kept == {"w.pcap": stream[:24] + b"".join(whole[48:]), "w.1.pcap": stream[:24] + b"".join(whole[40:48]),
                    "w.2.pcap": stream[:24] + b"".join(whole[32:40])}
    assert (output.ring.files_written, output.ring.packets_dropped, output.framer.stats.records) == (7, 32, 50)


def test_merged_pcapng_ring_every_file_has_the_section_and_every_interface_known(tmp_path: Path):
    """The SHB+NRB head and each pod's IDB start every later file, in the order of their ids; EPBs go one per
    record; the ISB at the end is in the last file, which knows every interface."""
    from kubectl_debugx.commands.capture import TcpdumpTalk
    from kubectl_debugx.commands.capture_pods import PcapngOutput, PodCapture
    from kubectl_debugx.formats import pcapng
    from kubectl_debugx.remote.ephemeral import Target

    head = pcapng.section_header("test")
    output = PcapngOutput(str(tmp_path / "w.pcapng"), 700, head, 2, ring_files=2)

    def pod(name: str) -> PodCapture:
        target = Target("ns", {"metadata": {"name": name}, "spec": {"nodeName": "n"}, "status": {"podIP": "10.0.0.1"}},
                        "nginx")
        return PodCapture(target, "debugx-1", "netadmin", TcpdumpTalk(print))

    header = PcapHeader(1, 262144, False)
    a = output.interface(pod("a"), header, "")
    packets = [Packet(i * 1000, 100, bytes([i]) * 100) for i in range(8)]
    def push(source: int, batch: list[Packet]) -> None:
        output.merger.push(source, [p.ts_ns for p in batch], [pcapng.enhanced_packet(source, p) for p in batch], 0)

    push(a, packets[:3])
    output.flush(None)  # a file holds the head (64 bytes), an IDB (112) and 3 EPBs (132 each); b's IDB fits
    b = output.interface(pod("b"), header, "")
    push(a, packets[3:5])
    push(b, packets[5:])
    output.flush(None)
    isb = pcapng.interface_statistics(b, 7)
    output.add(isb)
    output.write()
    output.sink.close()
    idb = [pcapng.interface_description(f"ns/{n}", "node n, pod IP 10.0.0.1, container nginx, debug container "
                                        "debugx-1", 1, 262144) for n in "ab"]
    epb = [pcapng.enhanced_packet(a if i < 5 else b, p) for i, p in enumerate(packets)]
    assert len(head) + len(idb[0]) + 3 * len(epb[0]) <= 700 < len(head) + len(idb[0]) + 4 * len(epb[0])
    assert files(tmp_path) == {
        "w.1.pcapng": head + idb[0] + idb[1] + epb[3] + epb[4] + epb[5],
        "w.pcapng": head + idb[0] + idb[1] + epb[6] + epb[7] + isb,
    }
    assert output.ring is not None and output.packets == 8
    assert [(f.packets, f.records) for f in output.ring.kept] == [(2, 3), (3, 3)]
    assert (output.ring.files_written, output.ring.packets_dropped) == (3, 3)


def test_short_writes_go_on_where_they_stopped(tmp_path: Path, monkeypatch):
    real_writev = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, parts: real_writev(fd, [b"".join(bytes(p) for p in parts)[:5]]))
    sink = RingSink(str(tmp_path / "x"), 2, 100)
    sink.header(b"HEAD")
    for unit in (b"abc", memoryview(b"defghij"), b"k"):
        sink.record(unit)
    sink.records([b"lmnop", b"q"])
    sink.flush()
    sink.close()
    assert files(tmp_path) == {"x": b"HEADabcdefghijklmnopq"}
    assert (sink.written, sink.kept[0].packets) == (21, 5)


def test_pcapng_max_size_writes_the_blocks_that_fit_and_counts_only_those(tmp_path: Path):
    """Without --ring, --max-size stops before the first EPB that would pass it; a pod's packetsWritten
    (Merger.released) counts only what was written."""
    from kubectl_debugx.commands.capture import TcpdumpTalk
    from kubectl_debugx.commands.capture_pods import PcapngOutput, PodCapture
    from kubectl_debugx.formats import pcapng
    from kubectl_debugx.remote.ephemeral import Target

    head = pcapng.section_header("test")
    path = tmp_path / "w.pcapng"
    target = Target("ns", {"metadata": {"name": "a"}, "spec": {"nodeName": "n"}, "status": {"podIP": "10.0.0.1"}},
                    "nginx")
    idb = pcapng.interface_description("ns/a", "node n, pod IP 10.0.0.1, container nginx, debug container "
                                       "debugx-1", 1, 262144)
    packets = [Packet(i * 1000, 100, bytes([i]) * 100) for i in range(6)]
    epb = [pcapng.enhanced_packet(0, p) for p in packets]
    size = len(head) + len(idb) + 3 * len(epb[0]) + len(epb[0]) - 1  # 3 fit, the 4th misses by one byte
    output = PcapngOutput(str(path), size, head, 1)
    a = output.interface(PodCapture(target, "debugx-1", "netadmin", TcpdumpTalk(print)), PcapHeader(1, 262144, False),
                         "")
    output.merger.push(a, [p.ts_ns for p in packets[:2]], epb[:2], 0)
    output.flush(None)
    output.merger.push(a, [p.ts_ns for p in packets[2:]], epb[2:], 0)
    output.flush(None)
    output.sink.close()
    assert path.read_bytes() == head + idb + epb[0] + epb[1] + epb[2]
    assert (output.limit_reached, output.packets, output.merger.released, output.sink.written) == (
        True, 3, [3], size - len(epb[0]) + 1)
