"""Container log files as the node keeps them: parse, join and decode them (their names and order:
formats/logfiles.py).

Formats (docs/kubernetes-facts.md, "Pod log files"; recorded in tests/cluster/recordings/logs/):

- CRI (containerd, CRI-O): ``TIMESTAMP STREAM TAG CONTENT``; the timestamp is RFC3339Nano in the runtime's
  local offset (``Z`` or ``+05:30``, trailing zeros of the fraction dropped); the tag is split on ``:`` and
  only its first field matters: ``P`` is a 16384-byte piece of a longer line, anything else ends the line.
- Docker json-file: ``{"log": "...\\n", "stream": "stdout", "time": "..."}``; a ``log`` value without the
  final newline is a piece of a longer line.

Each physical line is tried as CRI first, then as Docker JSON, as the kubelet's parser does. A line that is
neither is kept as :class:`Malformed` and reported, never dropped.

Pieces are joined per stream and per container instance (a rotation may fall between a ``P`` and its ``F``),
and the bytes are only decoded (UTF-8, ``errors="replace"``) once a line is whole, so a character cut at
the 16384-byte boundary comes out intact.

Decoded text format (one file per container instance, one line per log line)::

    2026-11-27T07:18:34.80442642Z out seq=000001            a stdout line
    2026-11-27T07:18:41.127636069Z [stderr] err seq=001250   a stderr line
    2026-11-27T07:18:34.83433237Z [unterminated] no-newline  the last line had no newline (stdout)
    2026-11-27T07:18:34.83433237Z [stderr,unterminated] ...  the same on stderr
    [malformed 0.log:17] raw text of the line                not a CRI or Docker line

The timestamp is the one in the file (its offset kept), of the line's first piece, as ``kubectl logs
--timestamps`` prints it, so stdout lines read exactly like kubectl's output. Markers sit in one bracketed
field right after the timestamp: ``grep -F ' [stderr'`` finds stderr lines, ``grep -v '^[^ ]* \\['`` leaves
plain stdout lines, ``grep '^\\[malformed'`` the lines that could not be parsed.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Literal, TextIO, cast

Stream = Literal["stdout", "stderr"]
LogFormat = Literal["cri", "docker"]

GZIP_MAGIC = b"\x1f\x8b"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NS_PER_S = 1_000_000_000
_STREAMS: tuple[Stream, ...] = ("stdout", "stderr")
_Emit = Callable[["LogLine | Malformed"], None]

# RFC3339Nano as Go's time.Parse accepts it for the kubelet's layout: fraction optional, Z or ±HH:MM.
TIMESTAMP_RE = re.compile(
    rb"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))"
)


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Timestamp:
    """A log timestamp, exact to the nanosecond (datetime alone stops at microseconds)."""

    text: str  # as written in the file: rendering it keeps the runtime's offset
    epoch_ns: int  # UTC nanoseconds since the epoch: what comparisons use
    utc_offset_s: int

    def to_datetime(self) -> datetime:
        """Timezone-aware, in the file's offset; sub-microsecond digits are cut."""
        tz = timezone(timedelta(seconds=self.utc_offset_s))
        micros = self.epoch_ns // 1000
        return (_EPOCH + timedelta(microseconds=micros)).astimezone(tz)


@dataclass(frozen=True)
class Record:
    """One physical line of a log file that parsed. ``content`` has no line ending."""

    source: str
    lineno: int
    format: LogFormat
    timestamp: Timestamp
    stream: Stream
    partial: bool
    content: bytes


@dataclass(frozen=True)
class Malformed:
    """A physical line that is neither CRI nor Docker JSON, kept as it was (without its newline)."""

    source: str
    lineno: int
    raw: bytes
    reason: str


@dataclass(frozen=True)
class LogLine:
    """A whole log line: its pieces joined. Location and timestamp are those of the first piece."""

    source: str
    lineno: int
    timestamp: Timestamp
    stream: Stream
    content: bytes
    parts: int = 1
    # The instance ended before the line's last piece: a P record at exit, text written without a newline.
    unterminated: bool = False

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def parse_timestamp(raw: bytes | str) -> Timestamp | None:
    """Parse an RFC3339Nano timestamp (``Z`` or ``±HH:MM``); None if it is not one."""
    data = raw.encode("ascii", errors="replace") if isinstance(raw, str) else raw
    match = TIMESTAMP_RE.fullmatch(data)
    if match is None:
        return None
    fraction, zulu, sign, off_h, off_m = match.groups()[6:]
    offset_s = 0 if zulu else (int(off_h) * 3600 + int(off_m) * 60) * (-1 if sign == b"-" else 1)
    if zulu is None and (int(off_h) > 23 or int(off_m) > 59):
        return None
    seconds = _epoch_seconds(data[:19], offset_s)
    if seconds is None:
        return None
    nanos = int(fraction.ljust(9, b"0")) if fraction else 0
    return Timestamp(data.decode("ascii"), seconds * _NS_PER_S + nanos, offset_s)


@functools.lru_cache(maxsize=256)
def _epoch_seconds(local: bytes, offset_s: int) -> int | None:
    """``YYYY-MM-DDTHH:MM:SS`` at that UTC offset, in seconds since the epoch. Cached: the lines of one second
    share it, and building the datetime is most of parsing a line (nodelogs --follow parses every line)."""
    try:
        moment = datetime(int(local[0:4]), int(local[5:7]), int(local[8:10]), int(local[11:13]), int(local[14:16]),
                          int(local[17:19]), tzinfo=timezone(timedelta(seconds=offset_s)))
    except ValueError:
        return None
    return (moment - _EPOCH) // timedelta(seconds=1)


def _strip_eol(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\n") else line


def parse_cri(line: bytes, source: str = "", lineno: int = 0) -> Record | str:
    """Parse one CRI line (with or without its newline); on failure return the reason."""
    body = _strip_eol(line)
    fields = body.split(b" ", 3)
    if len(fields) < 4:
        # The kubelet needs the space after the tag too, so "TS stdout F" alone is not a record.
        return "not a CRI line (expected TIMESTAMP STREAM TAG CONTENT)"
    ts_raw, stream, tag, content = fields
    timestamp = parse_timestamp(ts_raw)
    if timestamp is None:
        return f"bad CRI timestamp {ts_raw[:40].decode('utf-8', errors='replace')!r}"
    if stream not in (b"stdout", b"stderr"):
        return f"bad CRI stream {stream[:20].decode('utf-8', errors='replace')!r}"
    partial = tag.split(b":")[0] == b"P"
    return Record(source, lineno, "cri", timestamp, _stream(stream.decode()), partial, content)


def parse_docker(line: bytes, source: str = "", lineno: int = 0) -> Record | str:
    """Parse one Docker json-file line; on failure return the reason."""
    try:
        obj = json.loads(line)
    except ValueError:
        return "not a CRI line and not Docker JSON"
    if not isinstance(obj, dict):
        return "Docker JSON line is not an object"
    log, stream, time = obj.get("log"), obj.get("stream"), obj.get("time")
    if not isinstance(log, str):
        return 'Docker JSON line without a "log" string'
    if stream not in _STREAMS:
        return f"bad Docker stream {stream!r}"
    timestamp = parse_timestamp(time) if isinstance(time, str) else None
    if timestamp is None:
        return f"bad Docker time {time!r}"
    # Lone surrogates (JSON \udXXX escapes) survive as bytes here and become U+FFFD when decoded.
    data = log.encode("utf-8", errors="surrogatepass")
    partial = not data.endswith(b"\n")
    return Record(source, lineno, "docker", timestamp, _stream(stream), partial, _strip_eol(data))


def _stream(name: str) -> Stream:
    return "stderr" if name == "stderr" else "stdout"


def parse_line(line: bytes, source: str = "", lineno: int = 0) -> Record | Malformed:
    """Parse one physical line as the kubelet does: CRI first, then Docker JSON."""
    cri = parse_cri(line, source, lineno)
    if isinstance(cri, Record):
        return cri
    if line.lstrip()[:1] == b"{":
        docker = parse_docker(line, source, lineno)
        if isinstance(docker, Record):
            return docker
        return Malformed(source, lineno, _strip_eol(line), docker)
    return Malformed(source, lineno, _strip_eol(line), cri)


def iter_records(lines: Iterable[bytes], source: str = "") -> Iterator[Record | Malformed]:
    """Parse a file object (or any iterable of byte lines) one line at a time, never the whole file."""
    for lineno, line in enumerate(lines, start=1):
        yield parse_line(line, source, lineno)


# ---------------------------------------------------------------------------------------------- joining


class PartialJoiner:
    """Joins P pieces with the pieces that follow on the same stream, up to the piece that ends the line.

    stdout and stderr share a file, so a stderr line may arrive between the pieces of a stdout line; a joined
    line is emitted when its last piece arrives. Feed every record of one container instance, across its
    rotated files, then call :meth:`finish`.
    """

    def __init__(self) -> None:
        self._pending: dict[Stream, list[Record]] = {}

    def feed(self, record: Record) -> LogLine | None:
        if not record.partial and record.stream not in self._pending:  # most lines: one record, nothing held
            return LogLine(record.source, record.lineno, record.timestamp, record.stream, record.content)
        pieces = self._pending.setdefault(record.stream, [])
        pieces.append(record)
        if record.partial:
            return None
        del self._pending[record.stream]
        return _join(pieces, unterminated=False)

    @property
    def idle(self) -> bool:
        """Whether no line is waiting for its last piece."""
        return not self._pending

    def finish(self) -> list[LogLine]:
        """The lines still waiting for their end, in the order their first piece came."""
        # A stream enters the dict with its first piece and leaves with its last: insertion order is the order
        # of first pieces.
        pending = list(self._pending.values())
        self._pending = {}
        return [_join(pieces, unterminated=True) for pieces in pending]


def _join(pieces: list[Record], unterminated: bool) -> LogLine:
    first = pieces[0]
    content = b"".join(piece.content for piece in pieces)
    return LogLine(
        first.source, first.lineno, first.timestamp, first.stream, content, len(pieces), unterminated
    )


def since_ns(since: datetime) -> int:
    """A timezone-aware datetime as UTC nanoseconds since the epoch, to compare with Timestamp.epoch_ns."""
    if since.tzinfo is None or since.utcoffset() is None:
        raise ValueError("since must be timezone-aware")
    return ((since - _EPOCH) // timedelta(microseconds=1)) * 1000


def keep_since(item: LogLine | Malformed, since: datetime | None) -> bool:
    """Whether a line passes --since: at or after it, like kubectl. Malformed lines have no time: kept."""
    return _keep(item, None if since is None else since_ns(since))


def _keep(item: LogLine | Malformed, limit_ns: int | None) -> bool:
    return limit_ns is None or isinstance(item, Malformed) or item.timestamp.epoch_ns >= limit_ns


# ---------------------------------------------------------------------------------------------- rendering


def render(item: LogLine | Malformed) -> str:
    """One decoded output line, newline included (format in the module docstring)."""
    if isinstance(item, Malformed):
        raw = item.raw.decode("utf-8", errors="replace")
        return f"[malformed {item.source}:{item.lineno}] {raw}\n"
    flags = (("stderr", item.stream == "stderr"), ("unterminated", item.unterminated))
    marks = [mark for mark, on in flags if on]
    prefix = f"{item.timestamp.text} [{','.join(marks)}] " if marks else f"{item.timestamp.text} "
    return prefix + item.text + "\n"


# ---------------------------------------------------------------------------------------------- reading


def is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic (the name alone may lie, e.g. a half-copied file)."""
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_log(path: Path) -> IO[bytes]:
    """Open a log file for reading line by line, gunzipping it when its content is gzip.

    CRI and Docker lines start with a digit or ``{``, never with 1f 8b, so the magic bytes decide; a name
    that disagrees is reported by :func:`decode_instance`.
    """
    if is_gzip(path):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


@dataclass(frozen=True)
class FileReport:
    """What reading one file gave. ``malformed`` holds line numbers, in the file's decompressed text."""

    name: str
    size: int  # bytes on disk
    records: int  # physical lines, parsed or not
    malformed: tuple[int, ...] = ()
    note: str = ""  # e.g. gzip content under a plain name
    error: str = ""  # e.g. a truncated .gz: the lines before the damage were used


@dataclass(frozen=True)
class DecodeReport:
    """What decoding one container instance gave."""

    files: tuple[FileReport, ...]
    lines: int  # lines written, malformed ones included
    stderr_lines: int
    unterminated: int
    malformed: int
    before_since: int  # lines left out by --since


class _Counts:
    def __init__(self) -> None:
        self.lines = self.stderr = self.unterminated = self.malformed = self.before_since = 0

    def add(self, item: LogLine | Malformed, kept: bool) -> None:
        if not kept:
            self.before_since += 1
            return
        self.lines += 1
        if isinstance(item, Malformed):
            self.malformed += 1
        else:
            self.stderr += item.stream == "stderr"
            self.unterminated += item.unterminated


def decode_instance(paths: Sequence[Path], out: TextIO, since: datetime | None = None) -> DecodeReport:
    """Decode one container instance's files (in logfiles.plan_container_logs order) into ``out``.

    ``out`` should be opened with ``encoding="utf-8", newline=""`` so a ``\\r`` in the logs stays as it was.
    Files are read line by line; only a line being joined is held in memory.
    """
    joiner = PartialJoiner()
    counts = _Counts()
    reports = []

    limit_ns = None if since is None else since_ns(since)

    def emit(item: LogLine | Malformed) -> None:
        kept = _keep(item, limit_ns)
        counts.add(item, kept)
        if kept:
            out.write(render(item))

    for path in paths:
        reports.append(_decode_file(path, joiner, emit))
    for line in joiner.finish():
        emit(line)
    return DecodeReport(
        tuple(reports),
        counts.lines,
        counts.stderr,
        counts.unterminated,
        counts.malformed,
        counts.before_since,
    )


def _decode_file(path: Path, joiner: PartialJoiner, emit: _Emit) -> FileReport:
    records, malformed, error = 0, [], ""
    gz = is_gzip(path)
    try:
        with open_log(path) as f:
            for item in iter_records(f, path.name):
                records += 1
                if isinstance(item, Malformed):
                    malformed.append(item.lineno)
                    emit(item)
                    continue
                line = joiner.feed(item)
                if line is not None:
                    emit(line)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        error = f"damaged gzip data after line {records}: {exc}"
    note = _name_note(path.name, gz)
    return FileReport(path.name, path.stat().st_size, records, tuple(malformed), note, error)


def _name_note(name: str, gz: bool) -> str:
    if gz and not name.endswith(".gz"):
        return "gzip content under a plain name: read decompressed"
    if not gz and name.endswith(".gz"):
        return "named .gz but not gzip: read as plain text"
    return ""
