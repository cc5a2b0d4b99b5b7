"""Classic pcap (what ``tcpdump -w -`` writes), parsed in this one place, every record bounded.

The stream arrives in WebSocket frames that may split a unit (the 24-byte global header or a record) anywhere.
:class:`PcapScanner` is the only parser of it: it reads the global header (either byte order, µs or ns magic),
finds where each record ends, holds back the incomplete tail (at most one unit) and refuses a record longer than
:data:`MAX_RECORD` as soon as its 16-byte header is there, before holding a byte of its data. On top of it:

- :class:`PcapFramer` passes the stream on in whole records only, so whatever we have written is always a
  valid pcap, even when the stream is cut or a size limit stops it (a file, a pipe, or a ring of files);
- :class:`PcapReader` returns the packets (capture across pods merges them into one pcapng: formats/pcapng.py).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import NamedTuple

GLOBAL_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
# libpcap refuses a record longer than the largest snaplen of its link type (sf-pcap.c: "invalid packet capture
# length"), 262144 for every type tcpdump captures on here (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD is the
# same), and tcpdump's -s goes no higher. The header's snaplen neither raises this bound (a header saying 4 GiB
# would have us hold 4 GiB for one record) nor lowers it: libpcap reads a record longer than the file's snaplen
# (it cuts it), so refusing one would fail a capture that the usual tools open.
MAX_RECORD = 262144
# Magic numbers as read little-endian -> (struct byte order, nanosecond timestamps).
_MAGICS = {
    0xA1B2C3D4: ("<", False),
    0xA1B23C4D: ("<", True),
    0xD4C3B2A1: (">", False),
    0x4D3CB2A1: (">", True),
}
_U32 = {order: struct.Struct(order + "I").unpack_from for order in "<>"}
_RECORD_HEADER = {order: struct.Struct(order + "IIII").unpack_from for order in "<>"}


class PcapFormatError(ValueError):
    pass


@dataclass(frozen=True)
class PcapHeader:
    """What a pcap global header says about its stream."""

    linktype: int  # LINKTYPE_*: 276 (LINUX_SLL2) for `-i any`, 1 (EN10MB) for eth0/lo (recording 27-*)
    snaplen: int
    nanos: bool  # the stream's timestamps are in ns (else µs); Packet.ts_ns is ns either way


class Packet(NamedTuple):
    """One captured packet. A NamedTuple rather than a frozen dataclass: one is built per packet, and a tuple
    is built about three times faster."""

    ts_ns: int  # capture time, ns since the epoch (the capturing node's clock)
    orig_len: int  # length on the wire; len(data) is what was captured (at most the snaplen)
    data: bytes


class Units(NamedTuple):
    """The whole units one feed completed, in stream order: ``held`` (the unit begun in earlier feeds, now
    whole: a view of a buffer no longer ours), then the units of ``view`` from ``start`` to each of ``ends``.
    ``header``: the first of them is the global header (every later unit is a record)."""

    held: memoryview | None
    view: memoryview
    start: int
    ends: list[int]
    header: bool


class PcapScanner:
    """Feed the bytes of one pcap stream as they arrive, split anywhere; get back where its whole units are.

    Only the incomplete unit at the end of a feed is copied and held (at most 16 + MAX_RECORD bytes); all else
    is found in the caller's buffer, without copying.
    """

    def __init__(self) -> None:
        self.header: PcapHeader | None = None
        self.order = "<"  # struct byte order, once the global header is read
        self._held = bytearray()  # the incomplete unit (global header or record) from earlier feeds
        self._size = 0  # the held unit's size once its own header is whole; 0 before
        # The seconds of the newest whole record (-1: none yet): what tells a stopping capture that tcpdump
        # handed over everything it captured before a moment (commands/capture_drain.py).
        self.last_sec = -1

    def pending(self) -> int:
        """Bytes held of an incomplete unit: non-zero at the end means the stream was cut."""
        return len(self._held)

    def feed(self, data: bytes | memoryview) -> Units:
        view = memoryview(data)
        end, pos = len(view), 0
        header = self.header is None
        held = None
        if self._held:
            pos = self._fill(view)
            if not self._size or len(self._held) < self._size:
                return Units(None, view, end, [], False)
            held = memoryview(self._held)
            self._held, self._size = bytearray(), 0
            if not header:  # a record (the global header when this feed began without one)
                self.last_sec = _U32[self.order](held, 0)[0]
        start = pos
        ends: list[int] = []
        if self.header is None:
            size = self._unit_size(view, pos, end - pos)
            if size is not None:
                pos += size
                ends.append(pos)
        if self.header is not None:
            unpack = _U32[self.order]
            last = -1
            while end - pos >= RECORD_HEADER_LEN:
                incl_len = unpack(view, pos + 8)[0]
                if incl_len > MAX_RECORD:
                    _checked(incl_len)
                nxt = pos + RECORD_HEADER_LEN + incl_len
                if nxt > end:
                    break
                ends.append(nxt)
                last, pos = pos, nxt
            if last >= 0:
                self.last_sec = unpack(view, last)[0]
        if pos < end:
            self._held += view[pos:]
            self._size = self._unit_size(self._held, 0, len(self._held)) or 0
        return Units(held, view, start, ends, header and (held is not None or bool(ends)))

    def _fill(self, view: memoryview) -> int:
        """Move into the held unit what it still needs of ``view``; returns how many bytes that took."""
        taken = 0
        if not self._size:
            want = (GLOBAL_HEADER_LEN if self.header is None else RECORD_HEADER_LEN) - len(self._held)
            taken = min(want, len(view))
            self._held += view[:taken]
            self._size = self._unit_size(self._held, 0, len(self._held)) or 0
            if not self._size:
                return taken
        more = min(self._size - len(self._held), len(view) - taken)
        self._held += view[taken:taken + more]
        return taken + more

    def _unit_size(self, buf: bytes | bytearray | memoryview, pos: int, avail: int) -> int | None:
        """The size of the unit at ``buf[pos]``, of which ``avail`` bytes are there; None until its own header
        is whole. Reads the global header when it is whole; refuses a stream that is not pcap from its first
        four bytes, and a record over MAX_RECORD from its header."""
        if self.header is None:
            if avail < 4:
                return None
            magic = _U32["<"](buf, pos)[0]
            if magic not in _MAGICS:
                raise PcapFormatError(f"the stream is not pcap (starts with {bytes(buf[pos:pos + 8]).hex()})")
            if avail < GLOBAL_HEADER_LEN:
                return None
            order, nanos = _MAGICS[magic]
            snaplen, network = struct.unpack_from(order + "II", buf, pos + 16)
            # The link type is the low 16 bits; the high bits may carry FCS information (pcap spec, LinkType).
            self.header = PcapHeader(network & 0xFFFF, snaplen, nanos)
            self.order = order
            return GLOBAL_HEADER_LEN
        if avail < RECORD_HEADER_LEN:
            return None
        return RECORD_HEADER_LEN + _checked(_U32[self.order](buf, pos + 8)[0])


def _checked(incl_len: int) -> int:
    if incl_len > MAX_RECORD:
        raise PcapFormatError(f"pcap record of {incl_len} bytes (more than {MAX_RECORD}): stream damaged")
    return incl_len


# ---------------------------------------------------------------------------------------------- framing


@dataclass
class PcapStats:
    records: int = 0
    bytes_out: int = 0


class PcapFramer:
    """Feed raw bytes; get back the buffers that complete whole records (global header included).

    Everything but the held unit (see :class:`PcapScanner`) is handed back as views of the input, valid until
    the caller's buffer is reused.
    """

    def __init__(self, max_bytes: int | None = None, *, split: bool = False) -> None:
        """`split`: every unit (the global header, then each record) comes back as a buffer of its own, for a
        writer that puts each record whole in one of several files (remote/ring.py). `max_bytes`: nothing
        from the record that would pass it on (`limit_reached`)."""
        self.scanner = PcapScanner()
        self._split = split
        self._max_bytes = max_bytes
        self.stats = PcapStats()
        self.limit_reached = False

    def pending(self) -> int:
        return self.scanner.pending()

    def feed(self, data: bytes | memoryview) -> list[bytes | memoryview]:
        if self.limit_reached:
            return []
        held, view, start, ends, header = self.scanner.feed(data)
        budget = None if self._max_bytes is None else self._max_bytes - self.stats.bytes_out
        out: list[bytes | memoryview] = []
        if held is not None:
            if budget is not None and len(held) > budget:
                self.limit_reached = True
                return out
            out.append(held)
            budget = None if budget is None else budget - len(held)
        if budget is not None and ends and ends[-1] - start > budget:
            self.limit_reached = True
            ends = ends[:bisect.bisect_right(ends, start + budget)]
        if ends:
            if self._split:
                out.extend(view[a:b] for a, b in zip([start, *ends[:-1]], ends, strict=True))
            else:
                out.append(view[start:ends[-1]])
        units = len(ends) + (held is not None)
        self.stats.records += units - (header and units > 0)  # every unit but the global header is a record
        self.stats.bytes_out += sum(len(part) for part in out)
        return out


# ---------------------------------------------------------------------------------------------- packets


class ScannedStream:
    """A reader over one pcap stream through :class:`PcapScanner` (the one parser of its boundaries): the
    global header once it came, the bytes held of an incomplete record, the records returned so far."""

    def __init__(self) -> None:
        self.scanner = PcapScanner()
        self.records = 0

    @property
    def header(self) -> PcapHeader | None:
        return self.scanner.header

    def pending(self) -> int:
        return self.scanner.pending()


class PcapReader(ScannedStream):
    """Feed the bytes of one pcap stream as they arrive, split anywhere; get back the whole packets so far.

    ``header`` is the :class:`PcapHeader` once the 24-byte global header arrived; ``records`` counts the
    packets returned so far; ``pending()`` the bytes held of an incomplete record (see :class:`PcapScanner`).
    """

    def feed(self, data: bytes | memoryview) -> list[Packet]:
        held, view, pos, ends, header = self.scanner.feed(data)
        if self.scanner.header is None or (held is None and not ends):
            return []
        unpack = _RECORD_HEADER[self.scanner.order]
        frac_ns = 1 if self.scanner.header.nanos else 1000
        packets = []
        if held is not None and not header:
            sec, frac, _, orig_len = unpack(held, 0)
            packets.append(Packet(sec * 1_000_000_000 + frac * frac_ns, orig_len, bytes(held[RECORD_HEADER_LEN:])))
        if header and held is None:  # the global header, in this view
            pos, ends = ends[0], ends[1:]
        append = packets.append
        for end in ends:
            sec, frac, _, orig_len = unpack(view, pos)
            append(Packet(sec * 1_000_000_000 + frac * frac_ns, orig_len, bytes(view[pos + RECORD_HEADER_LEN:end])))
            pos = end
        self.records += len(packets)
        return packets
