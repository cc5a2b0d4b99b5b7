"""Following one container's log files as the kubelet writes, rotates and restarts them, with nothing but
directory listings and reads from a byte offset: what the node proxy's ``/logs/`` offers (Go's
http.FileServer: ``accept-ranges: bytes``, recordings logs/42-*; a ``Range: bytes=N-`` gets the rest).

Pure: the files come through a :class:`Reader` (one container directory), the lines go to ``emit``. Facts
used (recordings logs/, README "Kubelet log layout"):

* the live file of instance N is ``N.log``; a restart starts ``M.log`` (M > N), created before the new
  container runs, so instance N has ended once ``M.log`` is listed;
* rotation renames ``N.log`` to ``N.log.YYYYMMDD-HHMMSS`` (names sort in time order), then the runtime reopens
  a new ``N.log``; the renamed file is gzipped (``.gz``) at the next rotation, never before;
* every physical line ends with ``\\n`` (the runtime holds text without a newline back), long lines are
  P records plus an F record (joined by :class:`crilog.PartialJoiner`).

One poll (:meth:`ContainerFollower.poll`):

1. read the live file from the offset just after the last whole line delivered;
2. list the directory;
3. a rotated name of this instance that the previous listing did not have means the live file was renamed,
   possibly before step 1 read it: the bytes of step 1 are dropped (they may be the new file's), and the
   renamed file is read on from the same offset until the runtime has reopened ``N.log`` (it is listed again)
   and one more poll found nothing new in it; then any newer rotated files whole (an outage long enough for
   several rotations), then the new ``N.log`` from 0;
4. a higher ``M.log`` means instance N ended: ``N.log`` is read to its end, a line still waiting for its last
   piece is delivered as unterminated, and ``M.log`` is followed from 0.

Lines are delivered once: the offset only moves past whole physical lines that were delivered (or held by the
joiner), a read that ends inside a line leaves it for the next read, and nothing read is delivered before the
listing that follows the read showed no rotation. A connection lost anywhere in a poll raises from the reader;
the next poll starts again from the same state, so nothing is repeated and nothing is skipped.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol

from kubectl_debugx.formats.crilog import TIMESTAMP_RE, LogLine, Malformed, PartialJoiner, parse_line, parse_timestamp

_LIVE = re.compile(r"(\d+)\.log")
_ROTATED = re.compile(r"(\d+)\.log\.(\d{8}-\d{6})(\.gz)?")
RENAMED_READS = 2  # reads of a renamed file after the runtime reopened N.log: the second catches a late write
HEAD = 64  # bytes that tell a file from another: its first record's nanosecond timestamp and more

_STREAMS = (b"stdout", b"stderr")


class Whole(NamedTuple):
    """A line that is one F record (nearly every line), checked as crilog.parse_cri does but parsed no further:
    building the Timestamp and the LogLine is most of the cost of a line, and printing needs neither."""

    timestamp: bytes  # RFC3339Nano, as in the file
    stream: bytes  # b"stdout" or b"stderr"
    content: bytes

    def line(self, source: str = "", lineno: int = 0) -> LogLine:
        stamp = parse_timestamp(self.timestamp)
        assert stamp is not None  # checked when it was read
        return LogLine(source, lineno, stamp, "stderr" if self.stream == b"stderr" else "stdout", self.content)


Item = LogLine | Malformed | Whole
Emit = Callable[[int, Item], None]  # (restart, line)


class Reader(Protocol):
    """One container directory on the node (``/var/log/pods/NS_POD_UID/CONTAINER/``)."""

    def listing(self) -> list[str] | None:
        """The names of its files; None when the directory is gone."""

    def read(self, name: str, offset: int, length: int | None = None) -> bytes | None:
        """The file's bytes from ``offset`` on, at most ``length`` of them (b"" when it has no more); None when
        the file is gone."""


class Layout:
    """One listing, as far as one instance is concerned."""

    def __init__(self, names: list[str]) -> None:
        self.live: set[int] = set()
        self.rotated: dict[int, dict[str, str]] = {}  # restart -> stamp -> current name (plain or .gz)
        for name in names:
            if m := _LIVE.fullmatch(name):
                self.live.add(int(m.group(1)))
            elif m := _ROTATED.fullmatch(name):
                stamps = self.rotated.setdefault(int(m.group(1)), {})
                # Between gzip and unlink both exist for a moment: the plain one is the same bytes.
                if m.group(3) is None or m.group(2) not in stamps:
                    stamps[m.group(2)] = name

    def stamps(self, restart: int) -> set[str]:
        return set(self.rotated.get(restart, {}))


class ContainerFollower:
    """One container's lines, instance after instance, each delivered once (see the module docstring)."""

    def __init__(self, reader: Reader, emit: Emit, note: Callable[[str], None]) -> None:
        self.reader = reader
        self.emit = emit
        self.note = note
        self.restart = -1
        self.current = ""  # "": the live N.log; else the stamp of a renamed file being read to its end
        self.queue: list[str] = []  # stamps of rotated files to read whole after it, before the live file
        self.offset = 0
        self.renamed_reads = 0
        self.seen: set[str] = set()  # rotated stamps of this instance at the previous listing
        self.joiner = PartialJoiner()
        self.lineno = 0
        self.head = b""  # the first bytes of the file being read (known once its start was read)
        self.ended = ""  # why following ended ("" while it goes on)
        # Takes a run of whole physical lines at once when it can (returns False when not): the printer's
        # fast way for runs of whole F records (commands/nodelogs/printer.py); None: line by line.
        self.emit_block: Callable[[int, bytes], bool] | None = None

    # ---------------------------------------------------------------------------------------- start

    def start(self, tail: int) -> bool:
        """Find the live instance, deliver the last ``tail`` lines of its live file (-1: all of them, 0: none)
        and stand at its end. False when the directory has no live file."""
        while True:
            before = self.reader.listing()
            layout = Layout(before or [])
            if before is None or not layout.live:
                return False
            restart = max(layout.live)
            data = self.reader.read(self._live(restart), 0)
            after = Layout(self.reader.listing() or [])
            if after.stamps(restart) == layout.stamps(restart) and restart in after.live and data is not None:
                break  # no rotation between the two listings: the bytes are the live file's
        self._begin(restart, after.stamps(restart))
        kept: deque[tuple[int, Item]] = deque(maxlen=None if tail < 0 else tail)
        emit, self.emit = self.emit, lambda restart, item: kept.append((restart, item))
        try:
            self._consume(data)
        finally:
            self.emit = emit
        for restart, item in kept:
            self.emit(restart, item)
        return True

    def _begin(self, restart: int, seen: set[str]) -> None:
        self.restart, self.current, self.queue, self.offset = restart, "", [], 0
        self.seen, self.joiner, self.lineno, self.renamed_reads = seen, PartialJoiner(), 0, 0
        self.head = b""

    @staticmethod
    def _live(restart: int) -> str:
        return f"{restart}.log"

    # ---------------------------------------------------------------------------------------- polls

    def poll(self) -> None:
        if self.ended:
            return
        data = None if self.current else self.reader.read(self._live(self.restart), self.offset)
        names = self.reader.listing()
        if names is None:
            self._finish("its log directory is gone (the pod was deleted)")
            return
        layout = Layout(names)
        stamps = layout.stamps(self.restart)
        new = sorted(stamps - self.seen)
        self.seen = stamps
        if new and not self.current:
            # The live file was renamed: read the renamed one from the same offset (data may be the new file's).
            self.current, self.queue, self.renamed_reads = new[0], new[1:], 0
            data = None
            self._check_renamed(layout)
        elif new:
            self.queue += [stamp for stamp in new if stamp not in self.queue]
        if data:
            self._consume(data)
        if self.current:
            self._read_renamed(layout)
            return
        later = sorted(n for n in layout.live if n > self.restart)
        if later:
            # Instance N ended before M.log was created: what it wrote after step 1 is in N.log.
            self._consume(self.reader.read(self._live(self.restart), self.offset) or b"")
            self._flush()
            self._begin(later[0], layout.stamps(later[0]))

    def _read_renamed(self, layout: Layout) -> None:
        while self.current:
            data = self._read_rotated(self._rotated_name(layout), self.offset)
            if data is None:
                self.note(f"{self.restart}.log.{self.current} was removed before it was read to its end "
                          "(rotated away during an outage): lines may be missing")
                self._next_file()
                continue
            self._consume(data)
            if self.queue:  # newer rotated files exist: this one is complete
                self._next_file()
                continue
            if self.restart in layout.live or any(n > self.restart for n in layout.live):
                self.renamed_reads += 1  # reopened: nothing more goes to the renamed file, but a late write
                if self.renamed_reads >= RENAMED_READS:
                    self._next_file()
            return

    def _check_renamed(self, layout: Layout) -> None:
        """The oldest new rotated file is the live one renamed, unless retention removed that one during an
        outage: its first bytes say. When it is another, ours is gone: the rest are read whole."""
        if not self.head or not self.offset:
            return
        name = self._rotated_name(layout)
        head = self._read_rotated(name, 0, len(self.head))
        if head is not None and head != self.head:
            self.note(f"{self.restart}.log was rotated away during an outage before it was read to its end: "
                      "lines may be missing")
            self.queue.insert(0, self.current)
            self._next_file()

    def _rotated_name(self, layout: Layout) -> str:
        return (layout.rotated.get(self.restart) or {}).get(self.current, f"{self.restart}.log.{self.current}")

    def _read_rotated(self, name: str, offset: int, length: int | None = None) -> bytes | None:
        if not name.endswith(".gz"):
            data = self.reader.read(name, offset, length)
            if data is not None:
                return data
            name += ".gz"  # compressed meanwhile
        raw = self.reader.read(name, 0)
        if raw is None:
            return None
        try:
            data = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            self.note(f"{name} is not readable gzip: its lines after byte {offset} are missing")
            return b""
        return data[offset:] if length is None else data[offset:offset + length]

    def _next_file(self) -> None:
        self.current = self.queue.pop(0) if self.queue else ""
        self.offset, self.lineno, self.renamed_reads, self.head = 0, 0, 0, b""

    def stop(self) -> None:
        """The end of following: a line still waiting for its last piece is delivered as unterminated."""
        self._flush()

    def _finish(self, why: str) -> None:
        self._flush()
        self.ended = why

    def _flush(self) -> None:
        for line in self.joiner.finish():
            self.emit(self.restart, line)

    # ---------------------------------------------------------------------------------------- lines

    def _consume(self, data: bytes) -> None:
        """Deliver the whole physical lines of ``data`` (read at ``self.offset``) and move past them."""
        if not self.offset and len(self.head) < HEAD:
            self.head = data[:HEAD]
        end = data.rfind(b"\n") + 1
        if not end:
            return
        if self.emit_block is not None and self.joiner.idle and self.emit_block(self.restart, data[:end]):
            self.lineno += data.count(b"\n", 0, end)
            self.offset += end
            return
        name = f"{self.restart}.log" + (f".{self.current}" if self.current else "")
        emit, restart, joiner, whole_re = self.emit, self.restart, self.joiner, TIMESTAMP_RE.fullmatch
        for raw in data[:end - 1].split(b"\n"):
            self.lineno += 1
            fields = raw.split(b" ", 3)
            if (len(fields) == 4 and fields[2] == b"F" and fields[1] in _STREAMS and joiner.idle
                    and whole_re(fields[0])):
                emit(restart, Whole(fields[0], fields[1], fields[3]))
                continue
            item = parse_line(raw, name, self.lineno)
            if isinstance(item, Malformed):
                self.emit(self.restart, item)
                continue
            line = self.joiner.feed(item)
            if line is not None:
                self.emit(self.restart, line)
        self.offset += end
