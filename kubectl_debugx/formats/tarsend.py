"""The tar stream cp sends into a container (`cp LOCAL POD:/path`), with the sha256 of every regular file
computed while it is sent: from local files (walked without following a symlink: a link is sent as a link), or
from a tar stream on stdin, re-written entry by entry.

Either way the stream is safe to extract into an empty folder: relative names without `..`, no name below one of
the stream's own symlinks (extracting `a -> /etc` then `a/passwd` would write through the link, and an absolute
link resolves in the debug container's filesystem), no hard link, device, FIFO or socket (skipped, said), no
setuid/setgid/sticky bit, no owner (the extracting user's, the target's, is taken). Headers are tarfile's (PAX
for long names), data is copied in 1 MiB reads.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from kubectl_debugx.errors import UsageError

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
# A file larger than this is digested range by range (the last range shorter), so that the container can check
# its ranges in parallel, one process per CPU: one sha256sum over a whole file is one core's speed, and that pass
# was a quarter of a 300 MB upload on the lab (1.44 s of 6.1 s; coreutils' sha256sum, no openssl in its image).
RANGE = 16 * CHUNK


@dataclass(frozen=True)
class Entry:
    """One item of the stream: kind D (directory), F (regular file) or L (symlink), its name in the stream,
    mode, mtime, size and link text; `source` is the local path (None: from the input stream)."""

    kind: str
    name: str
    mode: int = 0o644
    mtime: int = 0
    size: int = 0
    link: str = ""
    source: str | None = None


@dataclass
class SendReport:
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 of the bytes sent (at most RANGE)
    ranges: dict[str, list[str]] = field(default_factory=dict)  # name -> sha256 of each RANGE sent (larger files)
    sizes: dict[str, int] = field(default_factory=dict)  # name -> size, of each file in `ranges`
    entries: list[tuple[str, str]] = field(default_factory=list)  # (kind, name), parents before children
    bytes: int = 0
    symlinks: int = 0
    directories: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)


def header(entry: Entry) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.type = {"D": tarfile.DIRTYPE, "F": tarfile.REGTYPE, "L": tarfile.SYMTYPE}[entry.kind]
    info.mode = entry.mode & 0o777  # no setuid/setgid/sticky bit lands in the container
    info.mtime = entry.mtime
    info.size = entry.size if entry.kind == "F" else 0
    info.linkname = entry.link
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _kind(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "D"
    if stat.S_ISREG(mode):
        return "F"
    if stat.S_ISLNK(mode):
        return "L"
    return None


def _what(mode: int) -> str:
    return ("FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
            else "device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "special file")


def walk(local: str, name: str, skipped: list[tuple[str, str]]) -> list[Entry]:
    """LOCAL as entries named NAME/..., parents before children, names sorted; a symlink is an entry (never
    followed), LOCAL's own included; what is neither file, folder nor link is skipped. Every file and folder is
    checked readable now, before anything is created in the cluster."""
    out: list[Entry] = []

    def visit(path: str, rel: str) -> None:
        st = os.lstat(path)
        kind = _kind(st.st_mode)
        if kind is None:
            skipped.append((rel, _what(st.st_mode)))
            return
        if kind != "L" and not os.access(path, os.R_OK | (os.X_OK if kind == "D" else 0)):
            raise UsageError(f"cannot read {path}: permission denied")
        out.append(Entry(kind, rel, st.st_mode, int(st.st_mtime), st.st_size if kind == "F" else 0,
                         os.readlink(path) if kind == "L" else "", path))
        if kind == "D":
            for child in sorted(os.listdir(path)):
                visit(os.path.join(path, child), rel + "/" + child)

    try:
        visit(local, name)
    except FileNotFoundError as e:
        raise UsageError(f"{e.filename or local}: no such file or directory") from None
    except PermissionError as e:
        raise UsageError(f"cannot read {e.filename or local}: permission denied") from None
    return out


def safe_name(name: str, links: set[str]) -> str | None:
    """A stream member's name made relative and normal ("" for the folder itself); None when it cannot be
    extracted safely: `..`, or at or below a symlink of the stream (`links`: names of its symlinks so far)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        return ""  # the folder itself (`tar -C DIR .` starts with `./`): it is the destination
    if ".." in parts:
        return None
    for i in range(1, len(parts) + 1):
        if "/".join(parts[:i]) in links:
            return None  # the name itself too: what tar does with a folder over a link is its own (busybox's)
    return "/".join(parts)


def stream_entries(source: IO[bytes], skipped: list[tuple[str, str]]
                   ) -> Iterator[tuple[Entry, IO[bytes] | None]]:
    """A tar stream (stdin) as entries, each regular file with its data to read (once, in order)."""
    links: set[str] = set()
    folders: set[str] = set()
    try:
        with tarfile.open(fileobj=source, mode="r|*") as tar:
            for member in tar:
                name = safe_name(member.name, links)
                if name is None:
                    skipped.append((member.name, "a name outside the folder or below a symlink"))
                    continue
                if not name:
                    continue
                # a folder the stream names only by what it holds (tar -x would make it): an entry of its own,
                # so that it is renamed into place with what it holds
                parts = name.split("/")
                for i in range(1, len(parts)):
                    parent = "/".join(parts[:i])
                    if parent not in folders:
                        folders.add(parent)
                        yield Entry("D", parent, 0o755, int(member.mtime)), None
                if member.islnk():
                    skipped.append((name, "hard link"))
                    continue
                kind = "D" if member.isdir() else "F" if member.isreg() else "L" if member.issym() else None
                if kind is None:
                    skipped.append((name, "device, FIFO or special file"))
                    continue
                if kind == "L":
                    links.add(name)
                if kind == "D":
                    folders.add(name)
                entry = Entry(kind, name, member.mode, int(member.mtime), member.size if kind == "F" else 0,
                              member.linkname if kind == "L" else "")
                yield entry, (tar.extractfile(member) if kind == "F" else None)
    except tarfile.TarError as e:
        raise UsageError(f"stdin is not a tar stream: {e}") from None


def send(entries: Iterator[tuple[Entry, IO[bytes] | None]], write: Callable[[bytes | memoryview], None],
         on_data: Callable[[int], None], report: SendReport) -> None:
    """Write the stream: each entry's header, a file's data (read in CHUNK pieces, hashed as sent, padded to a
    block), then the two zero blocks of the end. A local file that changed size while sent is an error: its
    header already promised the old one."""
    buf = bytearray(CHUNK)
    for entry, data in entries:
        write(header(entry))
        report.entries.append((entry.kind, entry.name))
        if entry.kind == "D":
            report.directories += 1
            continue
        if entry.kind == "L":
            report.symlinks += 1
            continue
        parts: list[str] = []
        digest, in_range = hashlib.sha256(), 0
        left = entry.size
        opened = open(entry.source, "rb", buffering=0) if entry.source is not None else None  # noqa: SIM115
        reader: Any = opened if opened is not None else data
        assert reader is not None
        try:
            with memoryview(buf) as view:
                while left:
                    n = reader.readinto(view[: min(CHUNK, left)])
                    if not n:
                        raise UsageError(f"{entry.source or entry.name} got shorter while it was sent")
                    chunk = view[:n]
                    write(chunk)
                    while chunk:  # a short read (a stream) may straddle a range's end
                        take = min(len(chunk), RANGE - in_range)
                        digest.update(chunk[:take])
                        in_range, chunk = in_range + take, chunk[take:]
                        if in_range == RANGE:
                            parts.append(digest.hexdigest())
                            digest, in_range = hashlib.sha256(), 0
                    left -= n
                    on_data(n)
        finally:
            if opened is not None:
                opened.close()
        write(bytes(-entry.size % BLOCK))
        if in_range or not parts:
            parts.append(digest.hexdigest())
        if len(parts) == 1:
            report.files[entry.name] = parts[0]
        else:
            report.ranges[entry.name] = parts
            report.sizes[entry.name] = entry.size
        report.bytes += entry.size
    write(bytes(2 * BLOCK))
