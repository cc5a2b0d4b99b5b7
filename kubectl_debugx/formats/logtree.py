"""Unpack the tar stream of a node's pod log directory into a local folder, and never anywhere else.

The stream comes from ``tar -c`` (GNU or busybox) run on the node, so it is only as trustworthy as the node.
Python 3.10's tarfile has no extraction filters (and 3.12's ``filter="data"`` would differ by version), so
every member is checked here and written by hand, streaming (``mode="r|*"``):

- refused, with :class:`UnsafeMemberError` naming the member: absolute names, ``..`` components, links
  (symbolic or hard) whose target lies outside the tree, device files, fifos and other special files, and a
  member whose path runs through something that is not a directory we made;
- never created: symbolic links. A link inside the tree carries no content in the stream, so it is skipped
  and reported (``tar -h`` sends the target's content as a regular file instead, and that is written);
- hard links inside the tree become copies of the file already extracted;
- no path component is followed if it is a symlink, and files are opened with ``O_NOFOLLOW | O_EXCL``, so no
  sequence of members (say a symlink followed by a file "through" it) can write outside the destination.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from kubectl_debugx.errors import OutputError, RemoteFailed
from kubectl_debugx.formats.logfiles import Skipped

_COPY_CHUNK = 1 << 20
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)

OutsideLinks = Literal["refuse", "skip"]
Parts = tuple[str, ...]


class UnsafeMemberError(RemoteFailed):
    """A tar member that would escape the output directory or is not a plain file or directory."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"refusing tar member {member!r} from the node: {reason}")
        self.member = member
        self.reason = reason


class ArchiveError(RemoteFailed):
    """The tar stream is damaged or cut short."""


@dataclass(frozen=True)
class ExtractedFile:
    path: str  # relative to the destination, "/"-separated
    size: int


@dataclass(frozen=True)
class ExtractReport:
    files: tuple[ExtractedFile, ...]
    directories: tuple[str, ...]
    skipped: tuple[Skipped, ...]


# ---------------------------------------------------------------------------------------------- output dir


def prepare_output_dir(path: Path) -> Path:
    """Create the output directory, or accept an existing empty one; refuse anything else."""
    try:
        path.mkdir(parents=True)
        return path
    except FileExistsError:
        pass
    except OSError as exc:
        raise OutputError(f"cannot create output directory {path}: {exc.strerror}") from exc
    if not path.is_dir():
        raise OutputError(f"output path {path} exists and is not a directory")
    try:
        empty = next(path.iterdir(), None) is None
    except OSError as exc:
        raise OutputError(f"cannot read output directory {path}: {exc.strerror}") from exc
    if not empty:
        raise OutputError(f"output directory {path} exists and is not empty; choose another with -o")
    return path


# ---------------------------------------------------------------------------------------------- names


def member_parts(name: str) -> Parts:
    """The path components of a member name, checked; () for the archive root ("." or "./")."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeMemberError(name, "absolute path")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeMemberError(name, "'..' in the path")
    if any("\\" in part or "\0" in part for part in parts):
        # Windows would read a backslash as a separator; no kubelet log path has one.
        raise UnsafeMemberError(name, "backslash or NUL in the path")
    return parts


def symlink_target(parts: Parts, linkname: str) -> Parts | None:
    """Where a symlink at ``parts`` points, within the tree; None if the target is outside it.

    Resolved by name only: nothing on disk is consulted, and no symlink is ever created, so no other link
    can bend the path.
    """
    if linkname.startswith("/"):
        return None
    resolved = list(parts[:-1])
    for part in linkname.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
        else:
            resolved.append(part)
    return tuple(resolved)


def hardlink_target(linkname: str) -> Parts | None:
    """A hard link names its target from the archive root; None if that is outside the tree."""
    try:
        parts = member_parts(linkname)
    except UnsafeMemberError:
        return None
    return parts or None


# ---------------------------------------------------------------------------------------------- writing


def _make_dirs(dest: Path, parts: Parts, member: str) -> Path:
    """Create dest/parts one level at a time, refusing to pass through a symlink or a non-directory."""
    current = dest
    for part in parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a directory"
            raise UnsafeMemberError(member, f"{'/'.join(parts)} is {kind}")
    # Belt and braces: whatever the checks above missed, the directory must still be inside dest.
    real_dest, real = os.path.realpath(dest), os.path.realpath(current)
    if real != real_dest and not real.startswith(real_dest.rstrip(os.sep) + os.sep):
        raise UnsafeMemberError(member, "path leads outside the output directory")
    return current


def _open_new_file(path: Path, mode: int, member: str) -> int:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        # tar lets a later member replace an earlier one of the same name; only ever a file we wrote.
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeMemberError(member, "a directory or link of that name is already there")
        os.unlink(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
    return os.open(path, flags, mode)


def _write_file(path: Path, src: IO[bytes], mode: int, mtime: float | None, member: str) -> int:
    fd = _open_new_file(path, mode, member)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, _COPY_CHUNK)
        out.flush()
        size = out.tell()
        if mtime is not None and os.utime in os.supports_fd:
            # Rotated files keep their last-write time on the node; keep it here too.
            os.utime(out.fileno(), (mtime, mtime))
    return size


def _open_written(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_BINARY)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def _file_mode(member: tarfile.TarInfo) -> int:
    # Permission bits only (no setuid and friends), and always readable by the user who asked for the logs.
    return (member.mode & 0o777) | 0o600


# ---------------------------------------------------------------------------------------------- extraction


class _Extractor:
    def __init__(self, dest: Path, outside_links: OutsideLinks) -> None:
        self.dest = dest
        self.outside_links = outside_links
        self.files: dict[Parts, int] = {}
        self.directories: list[str] = []
        self.skipped: list[Skipped] = []

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = member_parts(member.name)
        if member.isdir():
            if parts:
                _make_dirs(self.dest, parts, member.name)
                self.directories.append("/".join(parts))
        elif not parts:
            raise UnsafeMemberError(member.name, "a file with no name")
        elif member.isreg():
            src = tar.extractfile(member)
            if src is None:
                raise UnsafeMemberError(member.name, "regular file without content")
            self._write(parts, member, src)
        elif member.issym():
            self._symlink(parts, member)
        elif member.islnk():
            self._hardlink(parts, member)
        else:
            raise UnsafeMemberError(member.name, f"special file ({_kind(member)}) in a log directory")

    def _write(self, parts: Parts, member: tarfile.TarInfo, src: IO[bytes]) -> None:
        parent = _make_dirs(self.dest, parts[:-1], member.name)
        size = _write_file(parent / parts[-1], src, _file_mode(member), float(member.mtime), member.name)
        self.files[parts] = size

    def _symlink(self, parts: Parts, member: tarfile.TarInfo) -> None:
        target = symlink_target(parts, member.linkname)
        if target is None:
            self._outside(member, "symbolic link")
            return
        # A symlink carries no content in the stream and we never create links: say what was there.
        self.skipped.append(
            Skipped(member.name, f"symbolic link to {member.linkname} (not followed, no content)")
        )

    def _hardlink(self, parts: Parts, member: tarfile.TarInfo) -> None:
        target = hardlink_target(member.linkname)
        if target is None:
            self._outside(member, "hard link")
            return
        if target not in self.files:
            self.skipped.append(
                Skipped(member.name, f"hard link to {member.linkname}, not in the stream")
            )
            return
        with _open_written(self.dest.joinpath(*target)) as src:
            self._write(parts, member, src)

    def _outside(self, member: tarfile.TarInfo, kind: str) -> None:
        reason = f"{kind} to {member.linkname}, outside the log tree"
        if self.outside_links == "refuse":
            raise UnsafeMemberError(member.name, reason)
        self.skipped.append(Skipped(member.name, reason))

    def report(self) -> ExtractReport:
        files = tuple(ExtractedFile("/".join(parts), size) for parts, size in self.files.items())
        return ExtractReport(files, tuple(self.directories), tuple(self.skipped))


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "fifo"
    return f"type {member.type!r}"


def extract_tar_stream(
    fileobj: IO[bytes], dest: Path, *, outside_links: OutsideLinks = "refuse"
) -> ExtractReport:
    """Unpack a tar stream (plain or compressed) read sequentially from ``fileobj`` into ``dest``.

    ``dest`` must exist (see :func:`prepare_output_dir`). ``outside_links="skip"`` reports links that leave
    the tree instead of refusing them, for trees known to hold such links (dockershim's ``0.log`` points into
    /var/lib/docker). On :class:`UnsafeMemberError` or :class:`ArchiveError` the members written so far
    stay.
    """
    if not dest.is_dir():
        raise OutputError(f"output directory {dest} does not exist")
    extractor = _Extractor(dest, outside_links)
    last = "none"
    try:
        with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
            for member in tar:
                last = repr(member.name)
                extractor.member(tar, member)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise ArchiveError(
            f"the tar stream from the node is damaged or cut short (last member {last}): {exc}"
        ) from exc
    return extractor.report()

