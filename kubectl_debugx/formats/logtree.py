"""Unpack the tar stream of a node's pod log directory into a local folder, and never anywhere else.

The stream comes from ``tar -c`` (GNU or busybox) run on the node, so it is only as trustworthy as the node.
Every member is checked and written through formats/safetree.py (:class:`SafeTree`), streaming
(``mode="r|*"``); this module decides what a log tree may hold:

- refused, with :class:`UnsafeMemberError` naming the member: absolute names, ``..`` components, links
  (symbolic or hard) whose target lies outside the tree, device files, fifos and other special files, and a
  member whose path runs through a symbolic link or anything else that is not a directory;
- never created: symbolic links. A link inside the tree carries no content in the stream, so it is skipped
  and reported (``tar -h`` sends the target's content as a regular file instead, and that is written);
- hard links inside the tree become copies of the file already extracted;
- a later member of a name replaces what an earlier one wrote (as tar does); nothing else already there is
  replaced (the output directory starts empty: :func:`prepare_output_dir`).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from kubectl_debugx.errors import OutputError, UnsafeMemberError
from kubectl_debugx.formats import safetree
from kubectl_debugx.formats.logfiles import Skipped
from kubectl_debugx.formats.safetree import Parts, SafeTree

NODE = "the node"  # who sent the tree, in refusals
OutsideLinks = Literal["refuse", "skip"]


@dataclass(frozen=True)
class ExtractedFile:
    path: str  # relative to the destination, "/"-separated
    size: int


@dataclass(frozen=True)
class ExtractReport:
    files: tuple[ExtractedFile, ...]
    directories: tuple[str, ...]
    skipped: tuple[Skipped, ...]
    # symbolic links skipped as leaving the tree (outside_links="skip"): (member path, link target). On Docker
    # nodes N.log -> /var/lib/docker/containers/ID/ID-json.log names which container ID was restart N.
    links: tuple[tuple[str, str], ...] = ()


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
    """The path components of a member name from the node, checked (:func:`safetree.member_parts`)."""
    return safetree.member_parts(name, NODE)


def log_tree(dest: Path) -> SafeTree:
    """The writer of every file nodelogs puts under ``dest`` (its tar stream's, and the node proxy's)."""
    return SafeTree(dest, NODE, dir_mode=0o755)


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


def _file_mode(member: tarfile.TarInfo) -> int:
    # Permission bits only (no setuid and friends), and always readable by the user who asked for the logs.
    return (member.mode & 0o777) | 0o600


# ---------------------------------------------------------------------------------------------- extraction


class _Extractor:
    def __init__(self, tree: SafeTree, outside_links: OutsideLinks) -> None:
        self.tree = tree
        self.outside_links = outside_links
        self.files: dict[Parts, int] = {}
        self.directories: list[str] = []
        self.skipped: list[Skipped] = []
        self.links: list[tuple[str, str]] = []

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = member_parts(member.name)
        if member.isdir():
            if parts:
                self.tree.directory(parts, member.name)
                self.directories.append("/".join(parts))
        elif not parts:
            raise UnsafeMemberError(member.name, "a file with no name", NODE)
        elif member.isreg():
            src = tar.extractfile(member)
            if src is None:
                raise UnsafeMemberError(member.name, "regular file without content", NODE)
            self._write(parts, member, src)
        elif member.issym():
            self._symlink(parts, member)
        elif member.islnk():
            self._hardlink(parts, member)
        else:
            raise UnsafeMemberError(member.name, f"special file ({_kind(member)}) in a log directory", NODE)

    def _write(self, parts: Parts, member: tarfile.TarInfo, src: IO[bytes]) -> None:
        # Rotated files keep their last-write time on the node; keep it here too.
        self.files[parts] = self.tree.write_file(parts, src, member.name, _file_mode(member),
                                                 mtime=float(member.mtime))

    def _symlink(self, parts: Parts, member: tarfile.TarInfo) -> None:
        target = symlink_target(parts, member.linkname)
        if target is None:
            self._outside(member, "symbolic link")
            self.links.append(("/".join(parts), member.linkname))
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
        with self.tree.open_file(target, member.name) as src:
            self._write(parts, member, src)

    def _outside(self, member: tarfile.TarInfo, kind: str) -> None:
        reason = f"{kind} to {member.linkname}, outside the log tree"
        if self.outside_links == "refuse":
            raise UnsafeMemberError(member.name, reason, NODE)
        self.skipped.append(Skipped(member.name, reason))

    def report(self) -> ExtractReport:
        files = tuple(ExtractedFile("/".join(parts), size) for parts, size in self.files.items())
        return ExtractReport(files, tuple(self.directories), tuple(self.skipped), tuple(self.links))


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
    stay (a log cut short is still a log).
    """
    if not dest.is_dir():
        raise OutputError(f"output directory {dest} does not exist")
    with log_tree(dest) as tree:
        extractor = _Extractor(tree, outside_links)
        safetree.read_members(fileobj, NODE, extractor.member, mode="r|*")
    return extractor.report()
