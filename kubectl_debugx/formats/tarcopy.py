"""Unpack the tar stream of `cp` into LOCAL, keeping what a copy keeps, and never writing anywhere else.

Unlike a log tree (formats/logtree.py), a copy keeps symbolic links as links (their target as text, never
followed: an absolute target points into the reader's machine, not the pod), hard links as links, modes and
mtimes; device files and FIFOs are skipped with a line each. Every regular file's sha256 is computed while it
is written, to be checked against the one computed in the pod.

Every write goes through formats/safetree.py (:class:`SafeTree`): no absolute name, no `..`, no write through
a symlink (the stream's or one already there), files opened with O_NOFOLLOW | O_EXCL. The stream's first path
component (the copied item's own name) maps to LOCAL itself, so the tree's root is LOCAL's parent (the user's
choice) and every entry's path starts with LOCAL's name. What is already there is replaced only with --force
(never a directory); a later member of a name replaces what an earlier one wrote, as tar does.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kubectl_debugx.errors import ArchiveError, OutputError, UnsafeMemberError
from kubectl_debugx.formats import safetree, tarstream
from kubectl_debugx.formats.safetree import NewFile, Parts, SafeTree

_CHUNK = 1 << 20
POD = "the pod"  # who sent the tree, in refusals


@dataclass
class CopyReport:
    files: dict[str, str] = field(default_factory=dict)  # relative path ("" = LOCAL itself) -> local sha256
    sizes: dict[str, int] = field(default_factory=dict)
    symlinks: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    partial: str | None = None  # the file being written when the stream ended early (removed)

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())


def relative(parts: Parts, base: str) -> Parts:
    """The member's path below the copied item: tar names start with the item's own name (`base`), or `.`
    when the item is the target's root."""
    if base in ("", "."):
        return parts
    if not parts or parts[0] != base:
        raise UnsafeMemberError("/".join(parts), f"outside the copied item {base!r}", POD)
    return parts[1:]


def _kind(member: tarstream.Member) -> str:
    if member.type == tarstream.FIFO:
        return "FIFO"
    if member.type == tarstream.CHAR:
        return "character device"
    if member.type == tarstream.BLOCKDEV:
        return "block device"
    return f"special file (type {member.type.decode('latin-1')!r})"


def copy_tree(dest: Path, force: bool) -> tuple[SafeTree, Parts]:
    """The writer of a copy into ``dest`` and the path of ``dest`` in it: the tree's root is dest's parent,
    as the item itself (a file or a directory) is written at dest."""
    if dest.name in ("", ".."):  # `.`, `..`, `/`: the name is the directory's own
        dest = Path(os.path.abspath(dest))
    if not dest.name:
        raise OutputError(f"cannot copy into {dest}: name a directory below it")
    tree = SafeTree(dest.parent, POD, dir_mode=0o700, overwrite=force,
                    overwrite_hint="use --force to overwrite it", remove_partial=True)
    return tree, (dest.name,)


class Extractor:
    """Writes members under `dest` (None: only hash, for `-o -`), recording what it did in `report`; a
    :class:`tarstream.Receiver`: each file's bytes are hashed and written as they arrive."""

    def __init__(self, dest: Path | None, base: str, force: bool, say: Callable[[str], None]) -> None:
        self.base = base
        self.say = say
        self.report = CopyReport()
        self.tree: SafeTree | None = None
        self.top: Parts = ()
        if dest is not None:
            self.tree, self.top = copy_tree(dest, force)
        # the regular file being received: its member, key, digest and file (None: only hashed)
        self._current: tuple[tarstream.Member, str, Any, NewFile | None] | None = None

    def member(self, member: tarstream.Member) -> None:
        rel = relative(safetree.member_parts(member.name, POD), self.base)
        key = "/".join(rel)
        shown = key or member.name
        if member.isreg():
            self._file(member, rel)
        elif member.isdir():
            self.report.directories.append(key)
            if self.tree is not None:
                self.tree.directory(self.top + rel, member.name, member.mode & 0o7777, float(member.mtime))
            self._forget(key)
        elif member.issym():
            self.report.symlinks.append(key)
            if self.tree is not None:
                self.tree.symlink(self.top + rel, member.linkname, member.name, float(member.mtime))
            self._forget(key)
        elif member.islnk():
            self._hardlink(member, rel, shown)
        else:
            reason = _kind(member)
            self.report.skipped.append((shown, reason))
            self.say(f"Skipped {shown}: {reason}")

    def _forget(self, key: str) -> None:
        """A file of that name was replaced by this member: it is no longer a file to verify."""
        self.report.files.pop(key, None)
        self.report.sizes.pop(key, None)

    def _file(self, member: tarstream.Member, rel: Parts) -> None:
        out = None
        if self.tree is not None:
            path = self.top + rel
            self.report.partial = str(self.tree.root.joinpath(*path))
            out = self.tree.create_file(path, member.name, member.mode & 0o777, exact_mode=True)
        self._current = (member, "/".join(rel), hashlib.sha256(), out)

    def data(self, chunk: memoryview) -> None:
        assert self._current is not None
        _, _, digest, out = self._current
        digest.update(chunk)
        if out is not None:
            out.write(chunk)

    def done(self) -> None:
        assert self._current is not None
        member, key, digest, out = self._current
        self._current = None
        size = member.size
        if out is not None:
            size = out.commit(mtime=float(member.mtime), expect=member.size)
            self.report.partial = None
        self.report.files[key] = digest.hexdigest()
        self.report.sizes[key] = size

    def _hardlink(self, member: tarstream.Member, rel: Parts, shown: str) -> None:
        target = "/".join(relative(safetree.member_parts(member.linkname, POD), self.base))
        if target not in self.report.files:
            self.report.skipped.append((shown, f"hard link to {member.linkname}, not in the stream"))
            self.say(f"Skipped {shown}: hard link to {member.linkname}, not copied")
            return
        if self.tree is not None:
            self.tree.hardlink(self.top + rel, self.top + (tuple(target.split("/")) if target else ()), member.name)
        self.report.files["/".join(rel)] = self.report.files[target]
        self.report.sizes["/".join(rel)] = 0  # its bytes are counted once, with the file it links to

    def finish(self) -> None:
        """Directory modes and mtimes, once every member is written."""
        if self.tree is not None:
            self.tree.finish()

    def close(self) -> None:
        """The end, whole or not: a file still being written is removed (the tree removes partial files)."""
        if self._current is not None:
            out = self._current[3]
            self._current = None
            if out is not None:
                out.abort()
        if self.tree is not None:
            self.tree.close()


class Unpacking:
    """cp's receive loop: the tar stream fed as it arrives (:meth:`feed`), straight into the extractor."""

    def __init__(self, extractor: Extractor) -> None:
        self.extractor = extractor
        self.reader = tarstream.TarReader(extractor)

    def _damaged(self, exc: tarstream.TarFormatError) -> ArchiveError:
        return safetree.damaged(POD, self.reader.last, exc)

    def feed(self, data: bytes | memoryview) -> None:
        """Members written as their bytes arrive; on any error the file being written is removed, and the
        error raised (the caller stops feeding)."""
        try:
            self.reader.feed(data)
        except tarstream.TarFormatError as exc:
            self.extractor.close()
            raise self._damaged(exc) from exc
        except BaseException:
            self.extractor.close()
            raise

    def end(self) -> CopyReport:
        """The stream ended: a cut one is an :class:`ArchiveError` (its partial file removed)."""
        try:
            self.reader.end()
            self.extractor.finish()
        except tarstream.TarFormatError as exc:
            raise self._damaged(exc) from exc
        finally:
            self.extractor.close()
        return self.extractor.report


def extract(fileobj: IO[bytes], extractor: Extractor) -> CopyReport:
    """Read a tar stream from a file to its end (what cp's receive loop does frame by frame)."""
    unpacking = Unpacking(extractor)
    while chunk := fileobj.read(_CHUNK):
        unpacking.feed(chunk)
    return unpacking.end()


def parse_sha256sum(text: str, prefix: str) -> dict[str, str]:
    """`sha256sum` output (GNU or busybox) -> {path below `prefix`: hex digest}. A name holding a backslash
    or a newline is escaped by GNU sha256sum, its line starting with a backslash."""
    out: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        escaped = line.startswith("\\")
        if escaped:
            line = line[1:]
        digest, name = line[:64], line[66:]
        if escaped:
            name = name.replace("\\n", "\n").replace("\\\\", "\\")
        if name == prefix:
            out[""] = digest
        elif name.startswith(prefix.rstrip("/") + "/"):
            out[name[len(prefix.rstrip("/")) + 1:]] = digest
    return out
