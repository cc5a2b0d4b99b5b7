"""pcapng: writing blocks (byte for byte), merging sources in time order (reading pcap: test_pcap.py)."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kubectl_debugx import __version__
from kubectl_debugx.formats.pcap import MAX_RECORD, Packet, PcapFormatError, PcapHeader
from kubectl_debugx.formats.pcapng import (
    EpbReader,
    Held,
    Merger,
    enhanced_packet,
    interface_description,
    interface_statistics,
    name_resolution,
    section_header,
)

from .test_pcap import REAL_HEADER, REAL_PACKETS, REAL_PCAP, pcap_stream

# ---------------------------------------------------------------------------------------------- blocks


def test_section_header_bytes():
    expected = bytes.fromhex(
        "0a0d0d0a 30000000"  # SHB, total length 48
        "4d3c2b1a 0100 0000 ffffffffffffffff"  # byte-order magic, version 1.0, section length unknown
        "0400 0400 61707031"  # shb_userappl "app1"
        "0100 0300 636d6400"  # opt_comment "cmd", padded
        "0000 0000"  # opt_endofopt
        "30000000"
    )
    assert section_header("cmd", userappl="app1") == expected


def test_section_header_defaults_to_our_name_and_version():
    app = f"kubectl-debugx {__version__}".encode()
    option = struct.pack("<HH", 4, len(app)) + app + b"\0" * (-len(app) % 4)
    total = 28 + len(option) + 4
    expected = (
        struct.pack("<IIIHHq", 0x0A0D0D0A, total, 0x1A2B3C4D, 1, 0, -1) + option + b"\0" * 4 + struct.pack("<I", total)
    )
    assert section_header(None) == expected


def test_section_header_without_options_has_no_endofopt():
    expected = bytes.fromhex("0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffffffffffff 1c000000")
    assert section_header(None, userappl="") == expected


def test_a_too_long_comment_is_cut_at_a_character_boundary():
    block = section_header("é" * 40000, userappl="")
    # 65535 bytes would split a 2-byte character: 65534 bytes are kept, then padded to 65536.
    assert struct.unpack_from("<HH", block, 24) == (1, 65534)
    assert block[28:28 + 65534] == ("é" * 32767).encode()
    assert len(block) == 24 + 4 + 65536 + 4 + 4 == struct.unpack_from("<I", block, 4)[0]


def test_interface_description_bytes():
    expected = bytes.fromhex(
        "01000000 40000000"  # IDB, total length 64
        "1401 0000 00000400"  # LINUX_SLL2 (276), reserved, snaplen 262144
        "0200 0d00" + b"default/web-1".hex() + "000000"  # if_name
        "0300 0500" + b"node1".hex() + "000000"  # if_description
        "0900 0100 09000000"  # if_tsresol 9: nanoseconds
        "0000 0000"
        "40000000"
    )
    assert interface_description("default/web-1", "node1", 276, 262144) == expected


def test_interface_description_with_a_filter_and_no_description():
    expected = bytes.fromhex(
        "01000000 30000000"  # IDB, total length 48
        "0100 0000 50000000"  # EN10MB, snaplen 80
        "0200 0100 61000000"  # if_name "a"
        "0900 0100 09000000"
        "0b00 0400 00 746370"  # if_filter: type 0 (libpcap string) "tcp"
        "0000 0000"
        "30000000"
    )
    assert interface_description("a", "", 1, 80, filter="tcp") == expected


def test_enhanced_packet_bytes():
    expected = bytes.fromhex(
        "06000000 28000000"  # EPB, total length 40
        "02000000"  # interface 2
        "05000000 07000000"  # timestamp high, low (ns)
        "05000000 3c000000"  # captured 5, on the wire 60
        "6162636465 000000"  # data, padded
        "28000000"
    )
    assert enhanced_packet(2, Packet((5 << 32) + 7, 60, b"abcde")) == expected


def test_enhanced_packet_with_aligned_and_empty_data():
    assert enhanced_packet(0, Packet(1, 0, b"")) == bytes.fromhex(
        "06000000 20000000 00000000 00000000 01000000 00000000 00000000 20000000"
    )
    assert enhanced_packet(0, Packet(1, 4, b"wxyz"))[28:36] == b"wxyz\x24\0\0\0"


# ---------------------------------------------------------------------------------------------- EpbReader


def epbs(chunks: list[bytes] | list[memoryview], interface: int = 3) -> tuple[EpbReader, list[PcapHeader], bytes]:
    """Feed the chunks; the reader, the headers its on_header saw, and the whole output: each block after its
    timestamp (8 bytes), so one comparison checks both."""
    seen: list[PcapHeader] = []

    def on_header(header: PcapHeader) -> int:
        seen.append(header)
        return interface

    reader = EpbReader(on_header)
    out = []
    for chunk in chunks:
        stamps, blocks = reader.feed(chunk)
        assert len(stamps) == len(blocks)
        out += [struct.pack("<Q", ts) + block for ts, block in zip(stamps, blocks, strict=True)]
    return reader, seen, b"".join(out)


def expected(packets: list[Packet], interface: int = 3) -> bytes:
    return b"".join(struct.pack("<Q", p.ts_ns) + enhanced_packet(interface, p) for p in packets)


def test_epb_reader_turns_a_real_pcap_split_at_every_byte_boundary_into_the_blocks():
    want = expected(REAL_PACKETS)
    assert want[8:8 + 40] == bytes.fromhex(  # the first block, as a reader of pcapng sees it
        "06000000 60000000 03000000") + struct.pack("<II", REAL_PACKETS[0].ts_ns >> 32,
                                                    REAL_PACKETS[0].ts_ns & 0xFFFFFFFF) + bytes.fromhex(
        "3f000000 3f000000") + REAL_PACKETS[0].data[:12]
    for cut in range(len(REAL_PCAP) + 1):
        reader, seen, out = epbs([REAL_PCAP[:cut], REAL_PCAP[cut:]])
        assert (seen, out, reader.pending(), reader.records, reader.interface) == ([REAL_HEADER], want, 0, 3, 3)


def test_epb_reader_split_twice_from_memoryviews_and_byte_by_byte():
    want = expected(REAL_PACKETS)
    for cut in range(0, len(REAL_PCAP), 7):
        for cut2 in range(cut, len(REAL_PCAP) + 1, 5):
            view = memoryview(REAL_PCAP)
            assert epbs([view[:cut], view[cut:cut2], view[cut2:]])[2] == want
    assert epbs([REAL_PCAP[i:i + 1] for i in range(len(REAL_PCAP))])[1:] == ([REAL_HEADER], want)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanos", [False, True])
def test_epb_reader_both_byte_orders_micro_and_nano_every_padding(order, nanos):
    packets = [
        Packet(1796043684_000001000 if not nanos else 1796043684_123456789, 1500, b"\x01" * 96),
        Packet(1796043685_999999000, 40, b""),
        Packet(1796043686_000000000, 7, b"x" * 7),
        Packet(1796043686_000002000, 9, b"y" * 9),
        Packet(1796043686_000003000, 10, b"z" * 10),
    ]
    stream = pcap_stream(order, nanos, packets, linktype=276, snaplen=96)
    for cut in range(len(stream) + 1):
        _, seen, out = epbs([stream[:cut], stream[cut:]], interface=0)
        assert (seen, out) == ([PcapHeader(276, 96, nanos)], expected(packets, 0))


def test_epb_reader_records_larger_than_a_chunk_and_the_largest_record_kept():
    packets = [Packet(1_000_000_000 * i, MAX_RECORD + 5, bytes([i]) * size)
               for i, size in enumerate((70000, 1, MAX_RECORD, 3))]
    stream = pcap_stream("<", False, packets)
    for chunk in (1000, 65536, 70017):
        chunks = [stream[i:i + chunk] for i in range(0, len(stream), chunk)]
        reader, _, out = epbs(chunks)
        assert (out, reader.pending()) == (expected(packets), 0)


def test_epb_reader_refuses_a_record_over_the_bound_and_what_is_not_pcap():
    with pytest.raises(PcapFormatError, match="pcap record of 262145 bytes"):
        EpbReader().feed(pcap_stream("<", False, []) + struct.pack("<IIII", 1, 2, 262145, 262145))
    with pytest.raises(PcapFormatError, match="not pcap"):
        EpbReader().feed(b"tcpd")


def test_epb_reader_a_header_alone_names_the_interface_before_any_packet_and_a_cut_record_is_held():
    reader = EpbReader()
    assert (reader.feed(REAL_PCAP[:24]), reader.interface, reader.header) == (([], []), 0, REAL_HEADER)
    assert reader.feed(REAL_PCAP[24:-10]) == ([p.ts_ns for p in REAL_PACKETS[:2]],
                                              [enhanced_packet(0, p) for p in REAL_PACKETS[:2]])
    assert (reader.pending(), reader.records) == (16 + 63 - 10, 2)


def test_name_resolution_bytes():
    expected = bytes.fromhex(
        "04000000 40000000"  # NRB, total length 64
        "0100 0a00 0a000007" + b"web-1\0".hex() + "0000"  # IPv4 10.0.0.7 -> web-1
        "0200 1b00 fd000000000000000000000000000001" + b"svc\0svc.ns\0".hex() + "00"  # IPv6, two names
        "0000 0000"  # nrb_record_end
        "40000000"
    )
    assert name_resolution([("10.0.0.7", ["web-1"]), ("fd00::1", ["svc", "svc.ns"])]) == expected


def test_name_resolution_refuses_what_is_not_an_address():
    with pytest.raises(ValueError, match="web-1"):
        name_resolution([("web-1", ["x"])])


def test_interface_statistics_bytes():
    expected = bytes.fromhex(
        "05000000 58000000"  # ISB, total length 88
        "01000000 02000000 03000000"  # interface 1, timestamp (2 << 32) + 3
        "0200 0800 00000000 09000000"  # isb_starttime 9
        "0300 0800 02000000 03000000"  # isb_endtime
        "0400 0800 0600000000000000"  # isb_ifrecv 6
        "0500 0800 0000000000000000"  # isb_ifdrop 0
        "0800 0800 0300000000000000"  # isb_usrdeliv 3
        "0000 0000"
        "58000000"
    )
    assert interface_statistics(1, (2 << 32) + 3, start_ns=9, received=6, dropped=0, delivered=3) == expected


# ---------------------------------------------------------------------------------------------- tshark


def _pcapng_of_two_pods() -> bytes:
    out = section_header("kubectl debugx capture deploy/web\nserver: https://127.0.0.1:6443")
    out += interface_description("ns/web-1", "node a, 10.0.0.1", 1, 80, filter="udp")
    out += interface_description("ns/web-2", "node b", 1, 80)
    out += name_resolution([("127.0.0.1", ["web-1"])])
    for i, packet in enumerate(REAL_PACKETS):
        out += enhanced_packet(i % 2, packet)
    return out + interface_statistics(0, REAL_PACKETS[-1].ts_ns, received=6, dropped=0, delivered=2)


TSHARK_FIELDS = ["-T", "fields", "-e", "frame.interface_name", "-e", "frame.time_epoch", "-e", "ip.src_host"]
TSHARK_EXPECTED = (
    "ns/web-1\t1796043684.468660000\tweb-1\n"
    "ns/web-2\t1796043684.483986000\tweb-1\n"
    "ns/web-1\t1796043684.494219000\tweb-1\n"
)


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark is not installed (tests/system-deps.sh installs it)")
def test_tshark_reads_the_file(tmp_path: Path):
    path = tmp_path / "out.pcapng"
    path.write_bytes(_pcapng_of_two_pods())
    result = subprocess.run(["tshark", "-r", str(path), "-N", "n", *TSHARK_FIELDS], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout == TSHARK_EXPECTED


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark is not installed (tests/system-deps.sh installs it)")
def test_tshark_reads_it_from_a_pipe():
    with subprocess.Popen(["tshark", "-r", "-", "-N", "n", *TSHARK_FIELDS], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdin is not None
        data = _pcapng_of_two_pods()
        for i in range(0, len(data), 50):  # written in pieces, as a stream would be
            proc.stdin.write(data[i:i + 50])
            proc.stdin.flush()
        stdout, _ = proc.communicate(timeout=60)
    assert (proc.returncode, stdout.decode()) == (0, TSHARK_EXPECTED)


# ---------------------------------------------------------------------------------------------- merger

S = 1_000_000_000


def pk(ts: int, size: int = 1) -> tuple[int, bytes]:
    """A packet as the Merger holds it: its timestamp and its block (any bytes: their size is what counts)."""
    return ts, b"\0" * size


def push(m: Merger, source: int, packets: list[tuple[int, bytes]], now_ns: int) -> None:
    m.push(source, [ts for ts, _ in packets], [block for _, block in packets], now_ns)


def stamps(released: list[Held]) -> list[tuple[int, int]]:
    return [(source, ts) for ts, _, source, _ in released]


def test_two_sources_interleave_by_the_watermark():
    m = Merger(window_ns=2 * S)
    a, b = m.add_source(), m.add_source()
    push(m, a, [pk(1), pk(3), pk(5)], 0)
    assert (m.ready(0), m.held, m.watermark()) == ([], 3, None)  # b might still send something earlier
    push(m, b, [pk(2), pk(4)], 10)
    assert m.watermark() == 4
    assert stamps(m.ready(10)) == [(a, 1), (b, 2), (a, 3), (b, 4)]  # up to b's latest, 4
    push(m, b, [pk(6)], 20)
    assert stamps(m.ready(20)) == [(a, 5)]
    push(m, a, [pk(7)], 30)
    assert stamps(m.ready(30)) == [(b, 6)]
    assert (m.held, m.held_bytes, m.out_of_order) == (1, 1, 0)
    assert stamps(m.drain()) == [(a, 7)]
    assert (m.held, m.held_bytes) == (0, 0)


def test_a_late_batch_within_the_window_is_put_in_order():
    # tcpdump delivers in batches up to about 1 s late (recording 27-*): b's batch covering 0.1-0.9 s arrives
    # after a's packets of up to 1.5 s, and is still written first.
    m = Merger(window_ns=2 * S)
    a, b = m.add_source(), m.add_source()
    push(m, b, [pk(S // 20)], 0)
    push(m, a, [pk(S // 10), pk(S), pk(3 * S // 2)], S)
    assert stamps(m.ready(S)) == [(b, S // 20)]  # b has shown nothing later yet
    push(m, b, [pk(S // 10 + 1), pk(9 * S // 10)], S + S // 2)
    assert stamps(m.ready(S + S // 2)) == [(a, S // 10), (b, S // 10 + 1), (b, 9 * S // 10)]
    assert (m.held, m.out_of_order) == (2, 0)


def test_an_idle_source_holds_the_others_back_only_for_the_window():
    m = Merger(window_ns=2 * S)
    a, _idle = m.add_source(), m.add_source()
    push(m, a, [pk(10), pk(20)], 5 * S)
    push(m, a, [pk(30)], 6 * S)
    assert m.ready(7 * S - 1) == []
    assert stamps(m.ready(7 * S)) == [(a, 10), (a, 20)]  # the first batch has waited 2 s
    assert stamps(m.ready(8 * S)) == [(a, 30)]


def test_a_window_release_takes_every_earlier_packet_with_it():
    m = Merger(window_ns=S)
    a, b, _idle = m.add_source(), m.add_source(), m.add_source()
    push(m, a, [pk(50)], 0)
    push(m, b, [pk(10), pk(40)], S // 2)
    # a's batch (50) is due at 1 s; b's earlier packets must not come after it.
    assert stamps(m.ready(S)) == [(b, 10), (b, 40), (a, 50)]


def test_an_ended_source_no_longer_holds_the_others_back():
    m = Merger(window_ns=10 * S)
    a, b, c = m.add_source(), m.add_source(), m.add_source()
    push(m, a, [pk(1), pk(9)], 0)
    push(m, b, [pk(5)], 0)
    assert stamps(m.ready(0)) == []  # c has said nothing
    m.end_source(c)
    assert stamps(m.ready(0)) == [(a, 1), (b, 5)]
    m.end_source(b)
    assert stamps(m.ready(0)) == [(a, 9)]
    with pytest.raises(ValueError, match="source 1 has ended"):
        push(m, b, [pk(6)], 0)
    assert m.released == [2, 1, 0]


def test_a_packet_later_than_the_window_is_written_out_of_order_and_counted():
    m = Merger(window_ns=S)
    a, b = m.add_source(), m.add_source()
    push(m, a, [pk(2 * S)], 0)
    assert stamps(m.ready(S)) == [(a, 2 * S)]
    push(m, b, [pk(S)], 3 * S)  # 2 s later than a's packet: more than the 1 s window
    assert (stamps(m.ready(3 * S)), m.out_of_order) == ([(b, S)], 1)


def test_equal_timestamps_keep_arrival_order():
    m = Merger(window_ns=S)
    a, b = m.add_source(), m.add_source()
    push(m, b, [pk(7, 1)], 0)
    push(m, a, [pk(7, 2), pk(7, 3)], 0)
    push(m, b, [pk(7, 4)], 0)
    assert [(source, len(block)) for _, _, source, block in m.ready(0)] == [(b, 1), (a, 2), (a, 3), (b, 4)]


def test_max_held_bytes_releases_the_earliest_packets():
    m = Merger(window_ns=10 * S, max_held_bytes=250)
    a, _idle = m.add_source(), m.add_source()
    push(m, a, [pk(3, 100), pk(1, 100), pk(2, 100)], 0)
    assert (stamps(m.ready(0)), m.held, m.held_bytes) == ([(a, 1)], 2, 200)


def test_a_source_added_later_holds_back_from_then_on():
    m = Merger(window_ns=S)
    a = m.add_source()
    push(m, a, [pk(1)], 0)
    assert stamps(m.ready(0)) == [(a, 1)]
    b = m.add_source()
    push(m, a, [pk(2)], 0)
    assert stamps(m.ready(0)) == []
    push(m, b, [pk(3)], 0)
    assert stamps(m.ready(0)) == [(a, 2)]


def simulate(window_ns: int, seed: int, max_lateness: int) -> tuple[Merger, list[tuple[Packet, int]]]:
    """Five tcpdump-like sources (idle, slow or busy): packets in time order, delivered in batches, each packet
    at most max_lateness after its timestamp; the caller polls ready() every 100 ms and on every delivery.
    Returns the merger and the (packet, delay) pairs in written order."""
    rng = random.Random(seed)
    deliveries: list[tuple[int, int, list[Packet]]] = []
    for source in range(5):
        ts, due, rate = 0, 0, rng.choice([0, 5, 200])  # packets per second
        while rate and ts < 5 * S:
            # Like TPACKET_V3: a block is handed over when it is full (here: 1 to 20 packets) or when its
            # timeout runs out, at most max_lateness after its first packet.
            ts += rng.randint(1, 2 * S // rate)
            due = max(due, ts + rng.randint(0, max_lateness))  # one stream: in order
            batch = [Packet(ts, source, b"")]
            while len(batch) < rng.randint(1, 20) and ts + 2 * S // rate <= due:
                ts += rng.randint(1, 2 * S // rate)
                batch.append(Packet(ts, source, b""))
            deliveries.append((due, source, batch))
    deliveries.sort(key=lambda d: d[0])
    m = Merger(window_ns)
    for _ in range(5):
        m.add_source()
    arrival: dict[tuple[int, int], int] = {}  # (source, ts): each source's timestamps rise
    out: list[Held] = []
    tick = 0
    for now, source, batch in deliveries:
        while tick < now:
            out += m.ready(tick)
            tick += S // 10
        m.push(source, [p.ts_ns for p in batch], [p.data for p in batch], now)
        arrival.update(((source, packet.ts_ns), now) for packet in batch)
        out += m.ready(now)
    out += m.drain()
    assert len(out) == sum(len(batch) for _, _, batch in deliveries)
    return m, [(Packet(ts, source, b""), arrival[source, ts] - ts) for ts, _, source, _ in out]


@pytest.mark.parametrize("seed", range(20))
def test_lateness_within_the_window_never_reorders(seed):
    merger, written = simulate(window_ns=S + S // 10, seed=seed, max_lateness=S)
    assert [p.ts_ns for p, _ in written] == sorted(p.ts_ns for p, _ in written)
    assert merger.out_of_order == 0


def test_disorder_is_bounded_by_lateness_beyond_the_window():
    window, inversions = S // 4, 0
    for seed in range(20):
        merger, written = simulate(window_ns=window, seed=seed, max_lateness=S)
        delays = [delay for _, delay in written]
        bound = max(delays) - min(delays) - window  # the docstring's bound, over all pairs
        highest, late = -1, 0
        for packet, _ in written:
            if packet.ts_ns < highest:
                assert highest - packet.ts_ns < bound
                late += 1
            highest = max(highest, packet.ts_ns)
        assert merger.out_of_order == late
        inversions += late
    assert inversions > 0  # the window was small enough for late batches to come out of order
