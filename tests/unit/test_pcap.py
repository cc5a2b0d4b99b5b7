import struct

import pytest

from kubectl_debugx.formats.pcap import PcapFormatError, PcapFramer, PcapStats

HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


def record(payload: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "IIII", 1, 2, len(payload), len(payload)) + payload


def feed_all(framer: PcapFramer, chunks) -> bytes:
    return b"".join(bytes(part) for c in chunks for part in framer.feed(c))


def test_whole_records_pass_through_split_anywhere():
    stream = HEADER + record(b"a" * 100) + record(b"b" * 7) + record(b"")
    for cut in range(1, len(stream)):
        for cut2 in (cut, min(cut + 3, len(stream)), min(cut + 40, len(stream))):
            framer = PcapFramer()
            out = feed_all(framer, [stream[:cut], stream[cut:cut2], stream[cut2:]])
            assert out == stream
            assert framer.stats == PcapStats(records=3, bytes_out=len(stream))
            assert framer._held_len == 0


def test_byte_by_byte():
    stream = HEADER + record(b"a" * 30) + record(b"b" * 3)
    framer = PcapFramer()
    assert feed_all(framer, [stream[i:i + 1] for i in range(len(stream))]) == stream
    assert framer.stats.records == 2


def test_cut_stream_keeps_only_whole_records():
    framer = PcapFramer()
    whole = HEADER + record(b"x" * 50)
    out = feed_all(framer, [whole + record(b"y" * 50)[:30]])
    assert (out, framer._held_len, framer.stats) == (whole, 30, PcapStats(records=1, bytes_out=len(whole)))


def test_max_bytes_stops_before_the_record_that_would_pass_it():
    one = record(b"z" * 100)
    framer = PcapFramer(max_bytes=len(HEADER) + 2 * len(one) + 10)
    out = feed_all(framer, [HEADER, one, one, one, one])
    assert (out, framer.limit_reached, framer.stats.records) == (HEADER + one + one, True, 2)
    assert framer.feed(one) == []


def test_big_endian_and_nanosecond_magic():
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    stream = header + record(b"q" * 9, ">")
    framer = PcapFramer()
    assert feed_all(framer, [stream[:5], stream[5:]]) == stream
    assert framer.stats.records == 1


def test_not_pcap_is_refused():
    with pytest.raises(PcapFormatError, match="not pcap"):
        PcapFramer().feed(b"tcpdump: syntax error in filter\n")
