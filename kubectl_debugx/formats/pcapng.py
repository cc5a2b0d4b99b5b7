"""pcapng for captures across pods: merge the packets of each pod's tcpdump pcap stream, write one pcapng.

Pure: bytes in, bytes out, no I/O. Blocks follow draft-ietf-opsawg-pcapng, written little-endian (the
byte-order magic 0x1A2B3C4D says so to readers), every option padded to 32 bits and closed by opt_endofopt.
Each pod's stream is cut into records by formats/pcap.py's :class:`~kubectl_debugx.formats.pcap.PcapScanner`
(the one pcap parser); :class:`EpbReader` turns each record into its Enhanced Packet Block at once, and the
blocks are what the :class:`Merger` holds and releases, ready to write.

API (for commands/capture):

- :func:`section_header` (SHB), :func:`interface_description` (IDB, always ``if_tsresol`` = 9: every EPB
  carries nanoseconds whatever the source's resolution), :func:`enhanced_packet` (EPB),
  :func:`name_resolution` (NRB), :func:`interface_statistics` (ISB: tcpdump's own counts at the end);
  :class:`EpbReader` the EPBs of a pcap stream as it arrives.
- :class:`Merger` — a bounded reorder window across N sources, in timestamp order (bound: its docstring).

Block order (checked with tshark 4.0): an IDB may come late (when its pod's pcap header arrives), as long as
it precedes that interface's EPBs; interface ids count IDBs in the order they are written. Write the NRB
before the first EPB: a one-pass reader (tshark from a pipe or a file, without -2) names only later packets.

Additions to the suggested API: ``section_header(comment, userappl=...)`` (userappl defaults to
``kubectl-debugx VERSION``), ``interface_description(..., filter=None)`` (the capture filter as
``if_filter``), :func:`interface_statistics`, :class:`EpbReader`, ``Merger(max_held_bytes=...)``,
``Merger.out_of_order`` and ``Merger.watermark()``.
"""

from __future__ import annotations

import heapq
import ipaddress
import struct
from collections import deque
from collections.abc import Callable

from kubectl_debugx import __version__
from kubectl_debugx.formats.pcap import RECORD_HEADER_LEN, Packet, PcapHeader, ScannedStream

_SHB, _IDB, _NRB, _ISB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000004, 0x00000005, 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_ENDOFOPT, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL, _IF_FILTER = 2, 3, 9, 11
_ISB_STARTTIME, _ISB_ENDTIME, _ISB_IFRECV, _ISB_IFDROP, _ISB_USRDELIV = 2, 3, 4, 5, 8
_NRB_END, _NRB_IPV4, _NRB_IPV6 = 0, 1, 2
_MAX_OPTION = 0xFFFF  # an option's length is a 16-bit field


# ---------------------------------------------------------------------------------------------- writing


def _pad(n: int) -> int:
    return -n % 4


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * _pad(len(value))


def _text(value: str, limit: int = _MAX_OPTION) -> bytes:
    """UTF-8, cut to what an option can hold without splitting a character."""
    raw = value.encode("utf-8")
    if len(raw) > limit:
        raw = raw[:limit].decode("utf-8", errors="ignore").encode("utf-8")
    return raw


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    return b"".join(_option(code, value) for code, value in options) + _option(_OPT_ENDOFOPT, b"")


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def section_header(comment: str | None, userappl: str = f"kubectl-debugx {__version__}") -> bytes:
    """The Section Header Block: byte-order magic, version 1.0, section length unknown (-1).

    ``comment`` (opt_comment) records how the capture was made: the command, the cluster server, the start
    time (one per line); ``userappl`` (shb_userappl) names the writer.
    """
    options = [(_SHB_USERAPPL, _text(userappl))] if userappl else []
    if comment:
        options.append((_OPT_COMMENT, _text(comment)))
    body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + _options(options)
    return _block(_SHB, body)


def interface_description(
    name: str, description: str, linktype: int, snaplen: int, filter: str | None = None
) -> bytes:
    """An Interface Description Block; interfaces are numbered from 0 in the order their IDBs are written.

    ``if_tsresol`` is always 9 (ns), so :func:`enhanced_packet` writes ns whatever the source's resolution.
    ``filter`` is the capture filter expression (if_filter, type 0: libpcap filter string).
    """
    options = [(_IF_NAME, _text(name))]
    if description:
        options.append((_IF_DESCRIPTION, _text(description)))
    options.append((_IF_TSRESOL, b"\x09"))
    if filter:
        options.append((_IF_FILTER, b"\0" + _text(filter, _MAX_OPTION - 1)))
    body = struct.pack("<HHI", linktype, 0, snaplen) + _options(options)
    return _block(_IDB, body)


_EPB_HEAD = struct.Struct("<IIIIIII").pack
# A pcap record's header (seconds, fraction, captured length, length on the wire), by the stream's byte order.
_RECORD_HEADER = {order: struct.Struct(order + "IIII").unpack_from for order in "<>"}
# What follows an EPB's data: its padding to 32 bits, then the block's total length again; by len(data) % 4.
_EPB_TAIL = (struct.Struct("<I").pack, struct.Struct("<3xI").pack, struct.Struct("<2xI").pack,
             struct.Struct("<xI").pack)


def enhanced_packet(interface_id: int, packet: Packet) -> bytes:
    """One Enhanced Packet Block; the timestamp is in ns (the interface's if_tsresol = 9)."""
    ts, orig_len, data = packet
    size = len(data)
    total = 32 + size + (-size & 3)
    return b"".join((_EPB_HEAD(_EPB, total, interface_id, ts >> 32, ts & 0xFFFFFFFF, size, orig_len), data,
                     _EPB_TAIL[size & 3](total)))


class EpbReader(ScannedStream):
    """One pod's pcap stream, fed as it arrives (split anywhere), turned into Enhanced Packet Blocks for the
    :class:`Merger`: per record one header read in place (``unpack_from`` on the frame's memoryview) and one
    block built from a slice of it; no :class:`~kubectl_debugx.formats.pcap.Packet` in between (the last
    profile put ~40 % of capture's CPU in the object-per-packet path this replaces: issue 24).

    The stream's boundaries come from the one pcap parser, :class:`PcapScanner`. ``on_header`` is called once,
    when the pcap global header has come, with its :class:`PcapHeader`, and returns the interface id the
    blocks carry (the pod's IDB is written then, before any of its packets); without one, the id is 0.
    """

    def __init__(self, on_header: Callable[[PcapHeader], int] | None = None) -> None:
        super().__init__()
        self.on_header = on_header
        self.interface: int | None = None

    def feed(self, data: bytes | memoryview) -> tuple[list[int], list[bytes]]:
        """The whole records this feed completed: their timestamps (ns) and their EPBs, in stream order."""
        held, view, pos, ends, header = self.scanner.feed(data)
        stamps: list[int] = []
        blocks: list[bytes] = []
        if self.scanner.header is None or (held is None and not ends):
            return stamps, blocks
        interface = self.interface
        if interface is None:
            interface = self.interface = self.on_header(self.scanner.header) if self.on_header else 0
        unpack = _RECORD_HEADER[self.scanner.order]
        frac_ns = 1 if self.scanner.header.nanos else 1000
        head, tails, join = _EPB_HEAD, _EPB_TAIL, b"".join
        add_stamp, add_block = stamps.append, blocks.append
        # One loop for both buffers (the record begun in earlier feeds, then those of this view), the records'
        # work inline: a call per record would cost about as much as the record's own work.
        for buf, start, stops in ((held if held is not None else view, 0,
                                   [len(held)] if held is not None and not header else []),
                                  (view, ends[0] if header and held is None else pos,
                                   ends[1:] if header and held is None else ends)):
            pos = start
            for end in stops:
                sec, frac, size, orig_len = unpack(buf, pos)
                ts = sec * 1_000_000_000 + frac * frac_ns
                total = 32 + size + (-size & 3)
                add_stamp(ts)
                add_block(join((head(_EPB, total, interface, ts >> 32, ts & 0xFFFFFFFF, size, orig_len),
                                buf[pos + RECORD_HEADER_LEN:end], tails[size & 3](total))))
                pos = end
        self.records += len(blocks)
        return stamps, blocks


def name_resolution(records: list[tuple[str, list[str]]]) -> bytes:
    """A Name Resolution Block: each (IPv4 or IPv6 address, names) pair becomes one record.

    Only packets after it get the names in a one-pass reader. Raises ValueError for an invalid address.
    """
    parts = []
    for address, names in records:
        ip = ipaddress.ip_address(address)
        code = _NRB_IPV4 if ip.version == 4 else _NRB_IPV6
        value = ip.packed + b"".join(_text(name) + b"\0" for name in names)
        parts.append(_option(code, value))
    parts.append(_option(_NRB_END, b""))
    return _block(_NRB, b"".join(parts))


def interface_statistics(
    interface_id: int,
    ts_ns: int,
    *,
    start_ns: int | None = None,
    received: int | None = None,
    dropped: int | None = None,
    delivered: int | None = None,
    comment: str | None = None,
) -> bytes:
    """An Interface Statistics Block with what tcpdump reported at its end.

    tcpdump's "N packets received by filter" is ``received`` (isb_ifrecv), "dropped by kernel" is ``dropped``
    (isb_ifdrop), "captured" is ``delivered`` (isb_usrdeliv); times are ns (the interface's if_tsresol).
    """
    options: list[tuple[int, bytes]] = []
    if start_ns is not None:
        options.append((_ISB_STARTTIME, struct.pack("<II", start_ns >> 32, start_ns & 0xFFFFFFFF)))
    options.append((_ISB_ENDTIME, struct.pack("<II", ts_ns >> 32, ts_ns & 0xFFFFFFFF)))
    for code, count in ((_ISB_IFRECV, received), (_ISB_IFDROP, dropped), (_ISB_USRDELIV, delivered)):
        if count is not None:
            options.append((code, struct.pack("<Q", count)))
    if comment:
        options.append((_OPT_COMMENT, _text(comment)))
    body = struct.pack("<III", interface_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF) + _options(options)
    return _block(_ISB, body)


# ---------------------------------------------------------------------------------------------- merging


Held = tuple[int, int, int, bytes]  # a packet in the Merger: (ts, arrival sequence, source, block)


class Merger:
    """Puts the packets of N sources (one tcpdump stream each) in timestamp order, within a bounded window.

    A held packet is released by :meth:`ready` once

    - its timestamp is at or below the *watermark*: the lowest, over the sources still live, of the highest
      timestamp each has delivered (a live source that has delivered nothing yet holds the watermark back),
    - some packet with an equal or later timestamp has been held for ``window_ns`` of the caller's clock
      (``now_ns``; use a monotonic clock): an idle pod holds the others back by at most the window, or
    - ``held_bytes`` would stay above ``max_held_bytes`` (if set): the earliest packets go first.

    Released packets come out in timestamp order (equal timestamps: in arrival order).

    Bound on disorder. Let the *delay* of a packet be its arrival at the merger (caller's clock) minus its
    timestamp (its node's clock, so the delay includes that clock's skew). A packet P is written after a
    packet Q with a later timestamp only if

    1. P's source was added after Q was written, or
    2. P's own stream delivered a packet with a timestamp >= Q's before P (tcpdump's order is not quite
       timestamp order; the merge then keeps at most that stream's own disorder), or
    3. P arrived more than ``window_ns`` after a packet R with ts(R) >= ts(Q) (the memory cap aside); then
       delay(P) - delay(R) > window_ns + (ts(Q) - ts(P)), so **the inversion ts(Q) - ts(P) is less than how
       much later P's stream delivered than R's, minus the window**. So when all delays lie within a span
       of ``window_ns`` (tcpdump delivers in batches up to about 1 s late, recording 27-*: a window above
       1 s plus the skew between node clocks), the merge writes nothing out of order.

    ``out_of_order`` counts the packets released with a timestamp below one already released.
    """

    def __init__(self, window_ns: int, max_held_bytes: int | None = None) -> None:
        self.window_ns = window_ns
        self.max_held_bytes = max_held_bytes
        self.held = 0
        self.held_bytes = 0
        self.out_of_order = 0
        self._latest: list[int | None] = []  # per source: the highest timestamp it has delivered
        self._live: list[bool] = []
        self._heap: list[Held] = []
        self.released: list[int] = []  # per source: the packets released
        self._seq = 0
        self._arrivals: deque[tuple[int, int]] = deque()  # (now_ns, highest ts) per push, in arrival order
        self._forced = -1  # packets at or below this timestamp go now: the window released them
        self._last_out = -1  # the highest timestamp released

    def add_source(self) -> int:
        """A new source; its id is the index the caller uses as the pcapng interface id."""
        self._latest.append(None)
        self._live.append(True)
        self.released.append(0)
        return len(self._live) - 1

    def push(self, source: int, stamps: list[int], blocks: list[bytes], now_ns: int) -> None:
        """A batch of the source's packets: their timestamps (ns) and their blocks (an :class:`EpbReader`'s
        feed), in the source's order; a block's size is what it counts for ``max_held_bytes``."""
        if not self._live[source]:
            raise ValueError(f"source {source} has ended")
        if not stamps:
            return
        heap, push = self._heap, heapq.heappush
        seq = self._seq
        for ts, block in zip(stamps, blocks, strict=True):
            push(heap, (ts, seq, source, block))
            seq += 1
        self._seq = seq
        self.held += len(stamps)
        self.held_bytes += sum(map(len, blocks))
        highest = max(stamps)
        latest = self._latest[source]
        self._latest[source] = highest if latest is None or highest > latest else latest
        self._arrivals.append((now_ns, highest))

    @property
    def live(self) -> int:
        """How many sources have not ended."""
        return sum(self._live)

    def end_source(self, source: int) -> None:
        """The source's stream ended: it no longer holds the others back."""
        self._live[source] = False

    def watermark(self) -> int | None:
        """Packets at or below this timestamp can go; None: a live source has delivered nothing yet."""
        marks = [latest for latest, live in zip(self._latest, self._live, strict=True) if live]
        if any(mark is None for mark in marks):
            return None
        return min((mark for mark in marks if mark is not None), default=_INFINITY)

    def ready(self, now_ns: int) -> list[Held]:
        """The packets that can be written now, in timestamp order: the (ts, sequence, source, block) entries
        themselves (no new object per packet); ``released`` counts them per source."""
        arrivals, deadline = self._arrivals, now_ns - self.window_ns
        while arrivals and arrivals[0][0] <= deadline:
            self._forced = max(self._forced, arrivals.popleft()[1])
        mark = self.watermark()
        limit = self._forced if mark is None else max(mark, self._forced)
        return self._release(limit)

    def drain(self) -> list[Held]:
        """Everything still held, in timestamp order (at the end)."""
        self._arrivals.clear()
        return self._release(_INFINITY)

    def _release(self, limit: int) -> list[Held]:
        """Pop the packets at or below ``limit``, and more while over the memory cap."""
        heap, pop, cap = self._heap, heapq.heappop, self.max_held_bytes
        held_bytes, last, late, counts = self.held_bytes, self._last_out, 0, self.released
        out: list[Held] = []
        append = out.append
        while heap and (heap[0][0] <= limit or (cap is not None and held_bytes > cap)):
            entry = pop(heap)
            ts = entry[0]
            held_bytes -= len(entry[3])
            if ts < last:
                late += 1
            else:
                last = ts
            counts[entry[2]] += 1
            append(entry)
        self.held -= len(out)
        self.held_bytes, self._last_out = held_bytes, last
        self.out_of_order += late
        return out


_INFINITY = 1 << 128  # above any timestamp: with no live source, everything goes
