"""pcap: the one parser of tcpdump's stream (PcapScanner), whole records passed on (PcapFramer), packets read
(PcapReader); either byte order, µs or ns, split anywhere, every record bounded."""

from __future__ import annotations

import random
import struct

import pytest

from kubectl_debugx.formats.pcap import (
    MAX_RECORD,
    Packet,
    PcapFormatError,
    PcapFramer,
    PcapHeader,
    PcapReader,
    PcapScanner,
    PcapStats,
    Units,
)

HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


def record(payload: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "IIII", 1, 2, len(payload), len(payload)) + payload


def feed_all(framer: PcapFramer, chunks) -> bytes:
    return b"".join(bytes(part) for c in chunks for part in framer.feed(c))


# `tcpdump -i lo -U -c 3 -s 80 -w - udp port 50999` (tcpdump 4.99.3) while three UDP datagrams went to 127.0.0.1:
# a real µs little-endian stream, EN10MB, snaplen 80.
REAL_PCAP = bytes.fromhex(
    "d4c3b2a10200040000000000000000005000000001000000"
    "a4730d6bb42607003f0000003f000000"
    "000000000000000000000000080045000031593a40004011e37f7f0000017f0000019e98c737001dfe30"
    "68656c6c6f203068656c6c6f203068656c6c6f2030"
    "a4730d6b926207003f0000003f000000"
    "000000000000000000000000080045000031593c40004011e37d7f0000017f0000019e98c737001dfe30"
    "68656c6c6f203168656c6c6f203168656c6c6f2031"
    "a4730d6b8b8a07003f0000003f000000"
    "000000000000000000000000080045000031593d40004011e37c7f0000017f0000019e98c737001dfe30"
    "68656c6c6f203268656c6c6f203268656c6c6f2032"
)
REAL_HEADER = PcapHeader(linktype=1, snaplen=80, nanos=False)


def _frame(n: int) -> bytes:
    """The n-th packet's bytes: each record is a 16-byte header and 63 bytes of data."""
    start = 24 + n * (16 + 63) + 16
    return REAL_PCAP[start:start + 63]


REAL_PACKETS = [
    Packet(1796043684_468660000, 63, _frame(0)),
    Packet(1796043684_483986000, 63, _frame(1)),
    Packet(1796043684_494219000, 63, _frame(2)),
]


def pcap_stream(order: str, nanos: bool, packets: list[Packet], linktype: int = 276, snaplen: int = 262144) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)
    for p in packets:
        sec, ns = divmod(p.ts_ns, 1_000_000_000)
        out += struct.pack(order + "IIII", sec, ns if nanos else ns // 1000, len(p.data), p.orig_len) + p.data
    return out


def read_all(chunks: list[bytes] | list[memoryview]) -> tuple[PcapReader, list[Packet]]:
    reader = PcapReader()
    packets = [p for chunk in chunks for p in reader.feed(chunk)]
    return reader, packets


def test_real_pcap_split_at_every_byte_boundary():
    for cut in range(len(REAL_PCAP) + 1):
        reader, packets = read_all([REAL_PCAP[:cut], REAL_PCAP[cut:]])
        assert (reader.header, packets, reader.pending(), reader.records) == (REAL_HEADER, REAL_PACKETS, 0, 3)


def test_real_pcap_split_twice_and_from_memoryviews():
    for cut in range(0, len(REAL_PCAP), 7):
        for cut2 in range(cut, len(REAL_PCAP) + 1, 5):
            view = memoryview(REAL_PCAP)
            _, packets = read_all([view[:cut], view[cut:cut2], view[cut2:]])
            assert packets == REAL_PACKETS


def test_real_pcap_byte_by_byte():
    reader, packets = read_all([REAL_PCAP[i:i + 1] for i in range(len(REAL_PCAP))])
    assert (reader.header, packets, reader.pending()) == (REAL_HEADER, REAL_PACKETS, 0)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanos", [False, True])
def test_both_byte_orders_micro_and_nano(order, nanos):
    packets = [
        Packet(1796043684_000001000 if not nanos else 1796043684_123456789, 1500, b"\x01" * 96),
        Packet(1796043685_999999000, 40, b""),
        Packet(1796043686_000000000, 7, b"x" * 7),
    ]
    stream = pcap_stream(order, nanos, packets, linktype=276 | (1 << 28), snaplen=96)
    for cut in range(len(stream) + 1):
        reader, got = read_all([stream[:cut], stream[cut:]])
        assert (reader.header, got) == (PcapHeader(276, 96, nanos), packets)


def test_header_alone_then_packets():
    # Recording 27-tcpdump-stream-header-timing-*: the 24-byte header is its own frame; `-i any` is LINUX_SLL2.
    header = bytes.fromhex("d4c3b2a1020004000000000000000000000004001401000000")[:24]
    reader = PcapReader()
    assert (reader.feed(header), reader.header, reader.pending()) == ([], PcapHeader(276, 262144, False), 0)


def test_cut_stream_keeps_the_incomplete_record():
    reader, packets = read_all([REAL_PCAP[:-10]])
    assert (packets, reader.pending()) == (REAL_PACKETS[:2], 16 + 63 - 10)
    reader, packets = read_all([REAL_PCAP[:10]])
    assert (packets, reader.header, reader.pending()) == ([], None, 10)


def test_not_pcap_is_refused_from_its_first_four_bytes():
    with pytest.raises(PcapFormatError, match=r"not pcap \(starts with 74637064\)"):
        PcapReader().feed(b"tcpd")


def test_a_record_larger_than_any_snaplen_is_refused():
    stream = pcap_stream("<", False, []) + struct.pack("<IIII", 1, 2, 262145, 262145)
    with pytest.raises(PcapFormatError, match="pcap record of 262145 bytes"):
        PcapReader().feed(stream)


# ---------------------------------------------------------------------------------------------- scanner


def test_scanner_finds_the_units_of_one_feed_in_the_callers_buffer():
    stream = HEADER + record(b"a" * 10) + record(b"b")
    scanner = PcapScanner()
    units = scanner.feed(stream + b"\x01\x00")
    assert units == Units(None, memoryview(stream + b"\x01\x00"), 0, [24, 24 + 26, len(stream)], True)
    assert (scanner.header, scanner.order, scanner.pending()) == (PcapHeader(1, 262144, False), "<", 2)


def test_scanner_completes_the_held_unit_then_goes_on_in_the_new_buffer():
    stream = HEADER + record(b"a" * 10) + record(b"b" * 3)
    scanner = PcapScanner()
    assert scanner.feed(stream[:30]) == Units(None, memoryview(stream[:30]), 0, [24], True)
    assert scanner.pending() == 6
    units = scanner.feed(stream[30:])
    assert units == Units(memoryview(record(b"a" * 10)), memoryview(stream[30:]), 20, [len(stream) - 30], False)
    assert scanner.pending() == 0


def test_scanner_holds_a_header_split_in_three():
    scanner = PcapScanner()
    assert scanner.feed(HEADER[:2]) == Units(None, memoryview(HEADER[:2]), 0, [], False)
    assert scanner.feed(HEADER[2:10]) == Units(None, memoryview(HEADER[2:10]), 8, [], False)
    assert scanner.header is None
    assert scanner.feed(HEADER[10:]) == Units(memoryview(HEADER), memoryview(HEADER[10:]), 14, [], True)
    assert (scanner.header, scanner.pending()) == (PcapHeader(1, 262144, False), 0)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("cut", [24, 24 + 8, 24 + 15, 24 + 16])
def test_an_oversized_record_is_refused_from_its_header_before_any_of_it_is_held(order, cut):
    header = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0xFFFFFFFF, 1)  # the snaplen does not raise it
    stream = header + struct.pack(order + "IIII", 1, 2, MAX_RECORD + 1, MAX_RECORD + 1) + b"x" * 100
    scanner = PcapScanner()
    with pytest.raises(PcapFormatError) as caught:
        scanner.feed(stream[:cut])
        scanner.feed(stream[cut:])
    assert str(caught.value) == f"pcap record of {MAX_RECORD + 1} bytes (more than {MAX_RECORD}): stream damaged"
    assert scanner.pending() <= 16  # its header at most: none of its 4 GiB-to-be is held


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_record_of_max_record_bytes_passes(order):
    stream = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 80, 1) + record(b"m" * MAX_RECORD, order)
    reader = PcapReader()
    packets = [p for i in range(0, len(stream), 65536) for p in reader.feed(stream[i:i + 65536])]
    assert packets == [Packet(1_000_002_000, MAX_RECORD, b"m" * MAX_RECORD)]  # longer than the snaplen (80): kept


def test_the_framer_refuses_an_oversized_record_too():
    framer = PcapFramer()
    with pytest.raises(PcapFormatError, match=f"pcap record of {(1 << 32) - 1} bytes"):
        framer.feed(HEADER + struct.pack("<IIII", 1, 2, (1 << 32) - 1, 60))
    assert framer.pending() == 0


# ---------------------------------------------------------------------------------------------- framer


def test_whole_records_pass_through_split_anywhere():
    stream = HEADER + record(b"a" * 100) + record(b"b" * 7) + record(b"")
    for cut in range(1, len(stream)):
        for cut2 in (cut, min(cut + 3, len(stream)), min(cut + 40, len(stream))):
            framer = PcapFramer()
            out = feed_all(framer, [stream[:cut], stream[cut:cut2], stream[cut2:]])
            assert out == stream
            assert framer.stats == PcapStats(records=3, bytes_out=len(stream))
            assert framer.pending() == 0


def test_byte_by_byte():
    stream = HEADER + record(b"a" * 30) + record(b"b" * 3)
    framer = PcapFramer()
    assert feed_all(framer, [stream[i:i + 1] for i in range(len(stream))]) == stream
    assert framer.stats.records == 2


def test_cut_stream_keeps_only_whole_records():
    framer = PcapFramer()
    whole = HEADER + record(b"x" * 50)
    out = feed_all(framer, [whole + record(b"y" * 50)[:30]])
    assert (out, framer.pending(), framer.stats) == (whole, 30, PcapStats(records=1, bytes_out=len(whole)))


def test_max_bytes_stops_before_the_record_that_would_pass_it():
    one = record(b"z" * 100)
    framer = PcapFramer(max_bytes=len(HEADER) + 2 * len(one) + 10)
    out = feed_all(framer, [HEADER, one, one, one, one])
    assert (out, framer.limit_reached, framer.stats.records) == (HEADER + one + one, True, 2)
    assert framer.feed(one) == []


def test_max_bytes_counts_a_held_record_and_the_records_after_it_in_one_feed():
    one = record(b"z" * 100)
    stream = HEADER + one * 4
    for split in (False, True):
        framer = PcapFramer(max_bytes=len(HEADER) + 3 * len(one), split=split)
        out = feed_all(framer, [stream[:50], stream[50:]])
        assert (out, framer.limit_reached, framer.stats) == (
            HEADER + one * 3, True, PcapStats(records=3, bytes_out=len(HEADER) + 3 * len(one)))


def test_max_bytes_below_the_header_writes_nothing():
    framer = PcapFramer(max_bytes=10)
    assert (framer.feed(HEADER + record(b"x")), framer.limit_reached, framer.stats) == ([], True, PcapStats())


def test_split_gives_each_unit_whole_in_a_buffer_of_its_own():
    records = [record(bytes([i]) * i) for i in range(12)]
    stream = HEADER + b"".join(records)
    rng = random.Random(5)
    for _ in range(50):
        framer, units, pos = PcapFramer(split=True), [], 0
        while pos < len(stream):
            step = rng.randint(1, 40)
            units += [bytes(u) for u in framer.feed(stream[pos:pos + step])]
            pos += step
        assert (units, framer.stats) == ([HEADER, *records], PcapStats(records=12, bytes_out=len(stream)))


def test_big_endian_and_nanosecond_magic():
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    stream = header + record(b"q" * 9, ">")
    framer = PcapFramer()
    assert feed_all(framer, [stream[:5], stream[5:]]) == stream
    assert framer.stats.records == 1


def test_not_pcap_is_refused():
    with pytest.raises(PcapFormatError, match="not pcap"):
        PcapFramer().feed(b"tcpdump: syntax error in filter\n")


# ---------------------------------------------------------------------------------------------- reader


@pytest.mark.parametrize("order", ["<", ">"])
def test_the_scanner_knows_the_seconds_of_the_newest_whole_record_wherever_the_stream_is_split(order):
    """What a stopping capture compares with the node's clock (commands/capture_drain.py)."""
    packets = [Packet(sec * 1_000_000_000 + 5000, 10, bytes(10)) for sec in (100, 101, 105, 107)]
    stream = pcap_stream(order, False, packets)
    ends = [24 + 26 * (i + 1) for i in range(4)]  # where each record is whole
    for cut in range(1, len(stream)):
        scanner = PcapScanner()
        scanner.feed(stream[:cut])
        whole = [sec for sec, end in zip((100, 101, 105, 107), ends, strict=True) if end <= cut]
        assert scanner.last_sec == (whole[-1] if whole else -1), cut
        scanner.feed(stream[cut:])
        assert scanner.last_sec == 107, cut
