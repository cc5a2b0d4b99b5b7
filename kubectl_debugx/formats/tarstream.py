"""A tar stream read push-style: bytes are fed as they arrive (exec frames of any size), headers are parsed
and each regular file's content is handed on in slices of those very frames, with no copy, no pipe and no
thread in between.

Why not tarfile: its stream mode pulls from a file object, so cp fed it through a pipe from the exec's
reader to an extraction thread, and the profile showed the reader blocked on that pipe while tarfile read 10
KiB at a time (issue 24). Reading what `tar -c` writes is small: 512-byte headers (ustar, as GNU tar and
busybox write them in their default GNU format), GNU longname/longlink members ('L', 'K') before a header
whose name or link does not fit, and pax extended headers ('x', and global 'g') as tar --format=posix and
Python's tarfile write them. Read as tarfile reads them (the same names, types and fields), so that the
checks made on names downstream (formats/safetree.py) see what they saw before.

Pure: no I/O here. A damaged stream is a :class:`TarFormatError`; what the receiver raises goes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

BLOCK = 512
REGULAR_TYPES = (b"0", b"\0", b"7")  # regular file, old regular file, contiguous file (a regular file to tarfile)
LINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO = b"1", b"2", b"3", b"4", b"5", b"6"
_NO_CONTENT = (LINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO)  # tarfile ignores their size field, as we do
_LONGNAME, _LONGLINK, _PAX, _PAX_GLOBAL = b"L", b"K", b"x", b"g"
MAX_META = 1 << 20  # a longname or pax header larger than this is damage, not a name (PATH_MAX is 4096)
_ZERO = bytes(BLOCK)


class TarFormatError(Exception):
    """The stream is not a tar archive, or ended inside a member; the text is tarfile's for the same case."""


@dataclass(frozen=True)
class Member:
    name: str  # decoded as tarfile does (UTF-8, undecodable bytes kept as surrogates); a directory's without "/"
    type: bytes  # one byte, tar's typeflag
    mode: int
    mtime: float
    size: int  # bytes of content that follow (regular files and unknown types)
    linkname: str = ""

    def isreg(self) -> bool:
        return self.type in REGULAR_TYPES

    def isdir(self) -> bool:
        return self.type == DIRECTORY

    def issym(self) -> bool:
        return self.type == SYMLINK

    def islnk(self) -> bool:
        return self.type == LINK


class Receiver(Protocol):
    def member(self, member: Member) -> None:
        """A member's header, before its content (every member)."""

    def data(self, chunk: memoryview) -> None:
        """Content of the current regular file, in order; valid only during the call."""

    def done(self) -> None:
        """The current regular file's content is complete (called for an empty file too)."""


def _text(raw: bytes | bytearray | memoryview) -> str:
    """A NUL-terminated field, decoded as tarfile decodes names."""
    raw = bytes(raw)
    end = raw.find(b"\0")
    return (raw if end < 0 else raw[:end]).decode("utf-8", "surrogateescape")


def _number(raw: bytes) -> int:
    """An octal field (NUL/space padded), or GNU's base-256 for values octal cannot hold (files >= 8 GiB)."""
    if raw[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(raw[1:], "big")
        return value - (1 << (8 * (len(raw) - 1))) if raw[0] == 0xFF else value
    end = raw.find(b"\0")
    text = (raw if end < 0 else raw[:end]).strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise TarFormatError("invalid header") from None


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156])
    if stored == 256 + sum(block[:148]) + sum(block[156:]):
        return True
    # tarfile also accepts the signed sum that some old tars wrote
    return stored == 256 + sum(b - 256 if b > 127 else b for b in block[:148] + block[156:])


def pax_records(data: bytes) -> dict[str, str]:
    """`LENGTH KEY=VALUE\\n` records (LENGTH counts the whole record)."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        if space < 0:
            raise TarFormatError("invalid header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("invalid header") from None
        record = data[space + 1:pos + length]
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise TarFormatError("invalid header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class TarReader:
    """Feed it bytes (:meth:`feed`), then :meth:`end`; it calls the receiver as members go by. The first
    all-zero block ends the archive (as tarfile reads it); what follows is ignored."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.last: str | None = None  # the name of the last member seen, for messages
        self.members = 0
        self.finished = False  # the end-of-archive block was read
        self._header = bytearray()  # a header (or meta content) being gathered across frames
        self._content = 0  # bytes of the current member's content still to come
        self._padding = 0  # then bytes of padding to skip
        self._meta: bytes | None = None  # the type of the meta member being gathered ('L', 'K', 'x', 'g')
        self._to_receiver = False  # the content goes to the receiver (a regular file) or is skipped
        self._long: dict[bytes, str] = {}  # longname/longlink for the next header
        self._pax: dict[str, str] = {}  # pax records for the next header
        self._pax_global: dict[str, str] = {}

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view and not self.finished:
            if self._content:
                n = min(self._content, len(view))
                if self._meta is not None:
                    self._header += view[:n]
                elif self._to_receiver:
                    self.receiver.data(view[:n])
                self._content -= n
                view = view[n:]
                if not self._content:
                    self._content_done()
            elif self._padding:
                n = min(self._padding, len(view))
                self._padding -= n
                view = view[n:]
            elif not self._header and len(view) >= BLOCK:
                self._header_block(bytes(view[:BLOCK]))
                view = view[BLOCK:]
            else:
                n = min(BLOCK - len(self._header), len(view))
                self._header += view[:n]
                view = view[n:]
                if len(self._header) == BLOCK:
                    block = bytes(self._header)
                    self._header.clear()
                    self._header_block(block)

    def end(self) -> None:
        """The stream ended: inside a member is an error. Right after a member with no end-of-archive block
        is accepted, as tarfile accepts it (whether the sender ended well is the exec's outcome to tell)."""
        if self.finished:
            return
        if self._content or self._padding or self._header or self._meta is not None or self._long or self._pax:
            raise TarFormatError("unexpected end of data")
        if not self.members:
            raise TarFormatError("empty file")

    # ------------------------------------------------------------------------------------------ internals

    def _header_block(self, block: bytes) -> None:
        if block == _ZERO:
            if self._long or self._pax:
                raise TarFormatError("unexpected end of data")
            self.finished = True
            return
        if not _checksum_ok(block):
            raise TarFormatError("bad checksum")
        kind = block[156:157]
        size = _number(block[124:136])
        if size < 0:
            raise TarFormatError("invalid header")
        if kind in (_LONGNAME, _LONGLINK, _PAX, _PAX_GLOBAL):
            if size > MAX_META:
                raise TarFormatError(f"{kind.decode()} header of {size} bytes")
            self._meta = kind
            self._start_content(size)
            return
        pax = {**self._pax_global, **self._pax}
        name = _text(block[0:100])
        prefix = _text(block[345:500])
        if prefix and block[257:263] == b"ustar\0":  # POSIX ustar; GNU's magic ("ustar  ") has no prefix field
            name = prefix + "/" + name
        name = self._long.pop(_LONGNAME, name)
        linkname = self._long.pop(_LONGLINK, _text(block[157:257]))
        name = pax.get("path", name)
        linkname = pax.get("linkpath", linkname)
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise TarFormatError("invalid header") from None
        mtime: float = _number(block[136:148])
        if "mtime" in pax:
            try:
                mtime = float(pax["mtime"])
            except ValueError:
                raise TarFormatError("invalid header") from None
        self._pax = {}
        if kind == b"\0" and name.endswith("/"):  # V7 tar's directory: a regular file named with a slash
            kind = DIRECTORY
        if kind == DIRECTORY:
            name = name.rstrip("/")
        member = Member(name=name, type=kind, mode=_number(block[100:108]), mtime=mtime,
                        size=0 if kind in _NO_CONTENT else size, linkname=linkname)
        self.last = name
        self.members += 1
        self.receiver.member(member)
        self._to_receiver = member.isreg()
        self._start_content(member.size)

    def _start_content(self, size: int) -> None:
        self._content = size
        self._padding = -size % BLOCK
        if not size:
            self._content_done()

    def _content_done(self) -> None:
        if self._meta is not None:
            kind, data = self._meta, bytes(self._header)
            self._meta = None
            self._header.clear()
            if kind in (_LONGNAME, _LONGLINK):
                self._long[kind] = _text(data)
            elif kind == _PAX:
                self._pax.update(pax_records(data))
            else:
                self._pax_global.update(pax_records(data))
        elif self._to_receiver:
            self._to_receiver = False
            self.receiver.done()
