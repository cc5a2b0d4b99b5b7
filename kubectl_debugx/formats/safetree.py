"""Write a tree of files that an untrusted tar stream describes under one directory, and nowhere else.

Two commands unpack a tree sent by something only as trustworthy as its sender: nodelogs (a node's
/var/log/pods: formats/logtree.py, and file by file through the node proxy) and cp (a container's files:
formats/tarcopy.py). Python 3.10's tarfile has no extraction filters (3.12's ``filter="data"`` would differ
by version), so each member is checked by name here and every filesystem write of both goes through
:class:`SafeTree`:

- names: :func:`member_parts` refuses absolute names, ``..``, backslashes and NUL;
- below the root (trusted: the caller's choice, reached however the system reaches it), every directory is
  opened one component at a time from its parent's descriptor with O_NOFOLLOW | O_DIRECTORY (created with
  mkdirat when missing): no symlink is followed anywhere on the way, one sent by the stream, one already there
  or one swapped in meanwhile; a symlink or a non-directory on the way is refused. The realpath of each
  parent must then lie under the root's (belt and braces);
- entries are made relative to that descriptor: files with O_CREAT | O_EXCL | O_NOFOLLOW, symlinks with
  symlinkat (their text kept, never followed), hard links with linkat without AT_SYMLINK_FOLLOW and only to a
  regular file this tree wrote;
- an entry already there is replaced only when this tree wrote it (a later tar member of the same name wins,
  as with tar) or the caller overwrites (cp --force); a directory is never replaced;
- modes and mtimes are set through descriptors (fchmod, futimens; directories' at :meth:`SafeTree.finish`),
  a symlink's own mtime relative to its directory's descriptor without following it: never through a path
  that could have become a link.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from kubectl_debugx.errors import ArchiveError, OutputError, UnsafeMemberError

Parts = tuple[str, ...]
_CHUNK = 1 << 20
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_DIR = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW


def member_parts(name: str, origin: str) -> Parts:
    """The path components of a member name, checked; () for the archive root ("." or "./")."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeMemberError(name, "absolute path", origin)
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise UnsafeMemberError(name, "'..' in the path", origin)
    if any("\\" in part or "\0" in part for part in parts):
        # Windows would read a backslash as a separator; no kubelet log path has one.
        raise UnsafeMemberError(name, "backslash or NUL in the path", origin)
    return parts


def read_members(
    fileobj: IO[bytes], origin: str, each: Callable[[tarfile.TarFile, tarfile.TarInfo], None], *,
    mode: Literal["r|", "r|*"] = "r|",
) -> None:
    """Call ``each`` for every member of a tar stream read sequentially; a damaged or cut stream is an
    :class:`ArchiveError` naming the last member seen."""
    last = None
    try:
        with tarfile.open(fileobj=fileobj, mode=mode) as tar:
            for member in tar:
                last = member.name
                each(tar, member)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise damaged(origin, last, exc) from exc


def damaged(origin: str, last: str | None, exc: BaseException) -> ArchiveError:
    """A tar stream that could not be read to its end, naming the last member seen."""
    shown = "none" if last is None else repr(last)
    return ArchiveError(f"the tar stream from {origin} is damaged or cut short (last member {shown}): {exc}")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "file" if stat.S_ISREG(mode) else "special file"


class SafeTree:
    """Writes entries at paths (tuples of names) below ``root``; see the module's docstring.

    ``origin`` names the sender in refusals ("the node", "the pod"); ``dir_mode`` is the mode of directories
    made on the way (less the umask); ``overwrite`` lets an entry replace a non-directory this tree did not
    write, and without it ``overwrite_hint`` (cp: "use --force to overwrite it") makes that an OutputError
    naming the path instead of a refused member; ``remove_partial`` removes a file whose content could not be
    read to its end. Use it as a context manager: it keeps the last parent directory open.
    """

    def __init__(self, root: Path, origin: str, *, dir_mode: int = 0o755, overwrite: bool = False,
                 overwrite_hint: str | None = None, remove_partial: bool = False) -> None:
        self.root = root
        self.origin = origin
        self.dir_mode = dir_mode
        self.overwrite = overwrite
        self.overwrite_hint = overwrite_hint
        self.remove_partial = remove_partial
        self._written: set[Parts] = set()  # entries (not directories) this tree made and that are still there
        self._files: set[Parts] = set()  # the regular files among them
        self._dir_times: list[tuple[Parts, int, float]] = []
        self._parent: tuple[Parts, int] | None = None  # the last parent directory opened, and its descriptor

    def __enter__(self) -> SafeTree:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def wrote_file(self, parts: Parts) -> bool:
        """Whether ``parts`` is a regular file this tree wrote (and nothing has replaced since)."""
        return parts in self._files

    # ------------------------------------------------------------------------------------------ directories

    def _refuse(self, member: str, reason: str) -> UnsafeMemberError:
        return UnsafeMemberError(member, reason, self.origin)

    def _walk(self, dirs: Parts, member: str) -> int:
        """A descriptor of root/dirs, made where missing, reached without following any link below root."""
        fd = os.open(self.root, os.O_RDONLY | _O_DIRECTORY)
        try:
            for depth, part in enumerate(dirs, 1):
                if part in ("", ".", "..") or "/" in part or "\0" in part:
                    raise self._refuse(member, f"{part!r} is not a name")
                try:
                    child = os.open(part, _O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, self.dir_mode, dir_fd=fd)
                    child = os.open(part, _O_DIR, dir_fd=fd)
                except OSError:  # ELOOP: a symbolic link; ENOTDIR: anything else but a directory
                    kind = _kind(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode)
                    if kind == "directory":
                        raise
                    article = "a symbolic link" if kind == "symbolic link" else "not a directory"
                    raise self._refuse(member, f"{'/'.join(dirs[:depth])} is {article}") from None
                os.close(fd)
                fd = child
            real_root, real = os.path.realpath(self.root), os.path.realpath(self.root.joinpath(*dirs))
            if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
                raise self._refuse(member, "path leads outside the output directory")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent_of(self, parts: Parts, member: str) -> int:
        """The descriptor of the directory that holds ``parts`` (kept open for the next entry there)."""
        if not parts:
            raise self._refuse(member, "a file with no name")
        dirs = parts[:-1]
        if self._parent is not None and self._parent[0] == dirs:
            return self._parent[1]
        fd = self._walk(dirs, member)
        self.close()
        self._parent = (dirs, fd)
        return fd

    def makedirs(self, parts: Parts, member: str) -> None:
        """root/parts and every directory above it, made where missing; refused through a link or a file."""
        os.close(self._walk(parts, member))

    def directory(self, parts: Parts, member: str, mode: int | None = None, mtime: float | None = None) -> None:
        """A directory at ``parts``: one already there is kept; a file or link there is replaced as a file
        would replace it. ``mode`` and ``mtime`` are applied by :meth:`finish`."""
        fd = self._parent_of(parts, member)
        try:
            is_dir = stat.S_ISDIR(os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            is_dir = False
        if not is_dir:
            self._clear(fd, parts, member)
            os.mkdir(parts[-1], self.dir_mode, dir_fd=fd)
        if mode is not None and mtime is not None:
            self._dir_times.append((parts, mode, mtime))

    def finish(self) -> None:
        """Directory modes and mtimes last (writing inside a directory changes its mtime), deepest first."""
        for parts, mode, mtime in reversed(self._dir_times):
            fd = self._walk(parts, "/".join(parts))
            try:
                os.fchmod(fd, mode & 0o777)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)
        self._dir_times.clear()

    # ------------------------------------------------------------------------------------------ entries

    def _clear(self, fd: int, parts: Parts, member: str) -> None:
        """Make room for a new entry at ``parts``: what this tree wrote there goes, as does anything but a
        directory when overwriting; everything else is refused."""
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        kind = _kind(st.st_mode)
        if kind == "directory" or (parts not in self._written and not self.overwrite):
            if kind != "directory" and self.overwrite_hint:
                raise OutputError(f"{self.root.joinpath(*parts)} exists: {self.overwrite_hint}")
            raise self._refuse(member, f"a {kind} of that name is already there")
        os.unlink(parts[-1], dir_fd=fd)
        self._written.discard(parts)
        self._files.discard(parts)

    def write_file(self, parts: Parts, src: IO[bytes], member: str, mode: int, *, mtime: float | None = None,
                   exact_mode: bool = False, on_chunk: Callable[[bytes], object] | None = None,
                   expect: int | None = None) -> int:
        """Copy ``src`` to a new file at ``parts``; returns its size. ``mode`` is given to open() (less the
        umask), or with ``exact_mode`` set afterwards as it is (a copy keeps its modes); ``mtime`` is set
        when given; ``on_chunk`` sees every chunk written (a digest); a size other than ``expect`` is an
        :class:`ArchiveError` (tarfile raises first: a short file must never pass for a whole one)."""
        out = self.create_file(parts, member, mode, exact_mode=exact_mode)
        try:
            while chunk := src.read(_CHUNK):
                if on_chunk is not None:
                    on_chunk(chunk)
                out.write(chunk)
        except BaseException:
            out.abort()
            raise
        return out.commit(mtime=mtime, expect=expect)

    def create_file(self, parts: Parts, member: str, mode: int, *, exact_mode: bool = False) -> NewFile:
        """A new file at ``parts``, written push-style (cp feeds it exec frames as they arrive): see
        :meth:`write_file` for ``mode`` and ``exact_mode``. The caller ends it with :meth:`NewFile.commit` or
        :meth:`NewFile.abort`, before any other entry of this tree is made."""
        fd = self._parent_of(parts, member)
        self._clear(fd, parts, member)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY
        # remove_partial (cp): written under a name of its own, given its real name only once whole, so that even
        # a kill -9 mid-file leaves no short file under the real name (bench/reliability: kill -9 cp)
        name = f".{parts[-1]}.debugx-partial-{os.getpid()}" if self.remove_partial else parts[-1]
        out_fd = os.open(name, flags, 0o600 if exact_mode else mode, dir_fd=fd)
        self._written.add(parts)
        return NewFile(self, parts, member, mode if exact_mode else None, fd, name, out_fd)

    def open_file(self, parts: Parts, member: str) -> IO[bytes]:
        """Read a regular file this tree wrote (a hard link made into a copy)."""
        if parts not in self._files:
            raise self._refuse(member, f"{'/'.join(parts)} is not a file written here")
        dir_fd = self._walk(parts[:-1], member)
        try:
            fd = os.open(parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_BINARY, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._refuse(member, f"{'/'.join(parts)} is no longer a regular file")
        return os.fdopen(fd, "rb")

    def symlink(self, parts: Parts, target: str, member: str, mtime: float) -> None:
        """A symbolic link holding ``target`` as text: made, never followed."""
        fd = self._parent_of(parts, member)
        self._clear(fd, parts, member)
        os.symlink(target, parts[-1], dir_fd=fd)
        self._written.add(parts)
        if os.utime in os.supports_follow_symlinks and os.utime in os.supports_dir_fd:
            os.utime(parts[-1], (mtime, mtime), dir_fd=fd, follow_symlinks=False)

    def hardlink(self, parts: Parts, target: Parts, member: str) -> None:
        """A hard link at ``parts`` to ``target``, a regular file this tree wrote."""
        if target not in self._files:
            raise self._refuse(member, f"{'/'.join(target)} is not a file written here")
        if parts == target:
            return  # a link to itself: it is there already
        src_fd = self._walk(target[:-1], member)
        try:
            if not stat.S_ISREG(os.stat(target[-1], dir_fd=src_fd, follow_symlinks=False).st_mode):
                raise self._refuse(member, f"{'/'.join(target)} is no longer a regular file")
            fd = self._parent_of(parts, member)
            self._clear(fd, parts, member)
            os.link(target[-1], parts[-1], src_dir_fd=src_fd, dst_dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(src_fd)
        self._written.add(parts)
        self._files.add(parts)


class NewFile:
    """A file being written by :meth:`SafeTree.create_file`: under a name of its own until :meth:`commit`
    when the tree removes partial files, removed by :meth:`abort` then."""

    def __init__(self, tree: SafeTree, parts: Parts, member: str, exact_mode: int | None, dir_fd: int, name: str,
                 fd: int) -> None:
        self.tree, self.parts, self.member, self.exact_mode = tree, parts, member, exact_mode
        self.dir_fd, self.name, self.fd = dir_fd, name, fd
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.size += len(view)
        while view:
            view = view[os.write(self.fd, view):]

    def commit(self, *, mtime: float | None = None, expect: int | None = None) -> int:
        """Complete: a size other than ``expect`` is an :class:`ArchiveError`; then the mode and ``mtime`` are
        set and the file gets its real name. Returns its size."""
        tree, parts = self.tree, self.parts
        try:
            if expect is not None and self.size != expect:
                raise ArchiveError(f"the tar stream from {tree.origin} was cut short in {self.member}")
            if self.exact_mode is not None:
                os.fchmod(self.fd, self.exact_mode & 0o777)
            if mtime is not None and os.utime in os.supports_fd:
                os.utime(self.fd, (mtime, mtime))
            fd, self.fd = self.fd, -1
            os.close(fd)
            if self.name != parts[-1]:
                # link, not rename: it never replaces what may have appeared under the real name meanwhile
                os.link(self.name, parts[-1], src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd, follow_symlinks=False)
                os.unlink(self.name, dir_fd=self.dir_fd)
        except BaseException:
            self.abort()
            raise
        tree._files.add(parts)
        return self.size

    def abort(self) -> None:
        """Not complete: closed, and removed when the tree removes partial files."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.tree.remove_partial:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self.dir_fd)
            self.tree._written.discard(self.parts)
