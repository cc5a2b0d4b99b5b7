"""safetree: every write of an untrusted tree lands below its root, through no link, over nothing not ours."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from kubectl_debugx.errors import ArchiveError, ExitCode, OutputError, UnsafeMemberError
from kubectl_debugx.formats.safetree import SafeTree, member_parts

from .test_logtree import tree


def refused(member: str, reason: str, origin: str = "the node") -> tuple[str, str, str, ExitCode]:
    return member, reason, f"refusing tar member {member!r} from {origin}: {reason}", ExitCode.REMOTE_FAILED


def caught(error: pytest.ExceptionInfo[UnsafeMemberError]) -> tuple[str, str, str, ExitCode]:
    return error.value.member, error.value.reason, str(error.value), error.value.code


def write(t: SafeTree, parts: tuple[str, ...], data: bytes, mode: int = 0o640, **kwargs: Any) -> int:
    return t.write_file(parts, io.BytesIO(data), "/".join(parts), mode, **kwargs)


# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "'..' in the path"),
        ("a/../../x", "'..' in the path"),
        ("/etc/passwd", "absolute path"),
        ("\\x", "absolute path"),
        ("c:x", "absolute path"),
        ("a\\..\\x", "backslash or NUL in the path"),
        ("a/b\0", "backslash or NUL in the path"),
    ],
)
def test_names_out_of_the_tree_are_refused(name: str, reason: str) -> None:
    with pytest.raises(UnsafeMemberError) as error:
        member_parts(name, "the pod")
    assert caught(error) == refused(name, reason, "the pod")


@pytest.mark.parametrize("part", ["..", ".", "", "a/b", "x\0"])
def test_the_writer_itself_takes_only_plain_names(dest: Path, outside: Path, part: str) -> None:
    with SafeTree(dest, "the node") as t, pytest.raises(UnsafeMemberError) as error:
        write(t, (part, "secret"), b"pwned")
    assert caught(error) == refused(f"{part}/secret", f"{part!r} is not a name")
    assert (tree(dest), tree(outside)) == ({}, {"secret": "keep me"})


# ---------------------------------------------------------------------------------------------- links


def test_a_file_through_a_symlink_entry_is_refused(dest: Path, outside: Path) -> None:
    # The classic: a link to somewhere else (`link -> /tmp`), then a file "inside" the link.
    with SafeTree(dest, "the pod") as t:
        t.symlink(("link",), str(outside), "link", 1600000000)
        with pytest.raises(UnsafeMemberError) as error:
            write(t, ("link", "secret"), b"pwned")
        with pytest.raises(UnsafeMemberError):
            t.directory(("link", "d"), "link/d")
    assert caught(error) == refused("link/secret", "link is a symbolic link", "the pod")
    assert (tree(dest), tree(outside)) == ({"link": f"-> {outside}"}, {"secret": "keep me"})


def test_a_symlink_already_on_the_way_is_not_followed(dest: Path, outside: Path) -> None:
    (dest / "a").mkdir()
    (dest / "a" / "c").symlink_to(outside)
    with SafeTree(dest, "the node") as t, pytest.raises(UnsafeMemberError) as error:
        write(t, ("a", "c", "d", "secret"), b"pwned")
    assert caught(error) == refused("a/c/d/secret", "a/c is a symbolic link")
    assert tree(outside) == {"secret": "keep me"}


def test_a_symlink_already_at_the_name_is_refused_or_replaced_never_followed(dest: Path, outside: Path) -> None:
    (dest / "x").symlink_to(outside / "secret")
    with SafeTree(dest, "the node") as t, pytest.raises(UnsafeMemberError) as error:
        write(t, ("x",), b"pwned")
    assert caught(error) == refused("x", "a symbolic link of that name is already there")
    with SafeTree(dest, "the pod", overwrite=True) as t:  # cp --force: the link goes, its target stays
        write(t, ("x",), b"new")
    assert (tree(dest), tree(outside)) == ({"x": "new"}, {"secret": "keep me"})


def test_a_file_or_fifo_on_the_way_is_not_a_directory(dest: Path) -> None:
    (dest / "f").write_text("")
    os.mkfifo(dest / "p")  # never opened: O_DIRECTORY fails before a FIFO would block
    with SafeTree(dest, "the node") as t:
        for name in ("f", "p"):
            with pytest.raises(UnsafeMemberError) as error:
                write(t, (name, "x"), b"")
            assert caught(error) == refused(f"{name}/x", f"{name} is not a directory")


def test_a_hard_link_only_to_a_file_this_tree_wrote(dest: Path, outside: Path) -> None:
    with SafeTree(dest, "the pod") as t:
        write(t, ("a",), b"data")
        t.hardlink(("d", "b"), ("a",), "d/b")
        assert t.wrote_file(("d", "b"))
        for target in (("..", "outside", "secret"), ("nothing",)):
            with pytest.raises(UnsafeMemberError) as error:
                t.hardlink(("h",), target, "h")
            assert caught(error) == refused("h", f"{'/'.join(target)} is not a file written here", "the pod")
        # a file replaced by a link out of the tree is no longer one to link to (linkat would follow nothing,
        # but the link would be a second name for whatever the symlink points at)
        t.symlink(("a",), str(outside / "secret"), "a", 1)
        with pytest.raises(UnsafeMemberError, match="'h' from the pod: a is not a file written here"):
            t.hardlink(("h",), ("a",), "h")
    assert os.stat(dest / "d" / "b").st_nlink == 1  # its first name was replaced by the link
    assert (tree(dest), tree(outside)) == ({"a": f"-> {outside / 'secret'}", "d": "<dir>", "d/b": "data"},
                                           {"secret": "keep me"})


def test_a_hard_link_to_itself_changes_nothing(dest: Path) -> None:
    with SafeTree(dest, "the pod") as t:
        write(t, ("a",), b"data")
        t.hardlink(("a",), ("a",), "a")
    assert tree(dest) == {"a": "data"}


# ---------------------------------------------------------------------------------------------- what is there


def test_a_file_already_there_is_refused_without_overwrite(dest: Path) -> None:
    (dest / "x").write_text("theirs")
    with SafeTree(dest, "the node") as t, pytest.raises(UnsafeMemberError) as error:
        write(t, ("x",), b"ours")
    assert caught(error) == refused("x", "a file of that name is already there")
    cp = SafeTree(dest, "the pod", overwrite_hint="use --force to overwrite it")
    with cp, pytest.raises(OutputError) as output_error:
        write(cp, ("x",), b"ours")
    assert (str(output_error.value), output_error.value.code) == (f"{dest / 'x'} exists: use --force to overwrite it",
                                                                  ExitCode.OUTPUT)
    assert tree(dest) == {"x": "theirs"}


def test_overwrite_replaces_the_entry_not_its_content(dest: Path, outside: Path) -> None:
    os.link(outside / "secret", dest / "x")  # a second name of a file outside: O_EXCL writes a new file
    with SafeTree(dest, "the pod", overwrite=True) as t:
        write(t, ("x",), b"new")
    assert (tree(dest), tree(outside)) == ({"x": "new"}, {"secret": "keep me"})


def test_a_later_entry_of_a_name_replaces_what_this_tree_wrote(dest: Path) -> None:
    with SafeTree(dest, "the node") as t:
        write(t, ("c", "0.log"), b"first")
        write(t, ("c", "0.log"), b"second")
        t.symlink(("c", "l"), "0.log", "c/l", 1)
        write(t, ("c", "l"), b"file now")
        write(t, ("c", "d"), b"was a file")
        t.directory(("c", "d"), "c/d")
        assert not t.wrote_file(("c", "d"))
    assert tree(dest) == {"c": "<dir>", "c/0.log": "second", "c/l": "file now", "c/d": "<dir>"}


def test_a_directory_is_never_replaced(dest: Path) -> None:
    (dest / "d").mkdir()
    (dest / "d" / "theirs").write_text("x")
    with SafeTree(dest, "the pod", overwrite=True) as t:
        t.directory(("d",), "d")  # kept as it is
        for make in (lambda: write(t, ("d",), b""), lambda: t.symlink(("d",), "/", "d", 1)):
            with pytest.raises(UnsafeMemberError) as error:
                make()
            assert caught(error) == refused("d", "a directory of that name is already there", "the pod")
    assert tree(dest) == {"d": "<dir>", "d/theirs": "x"}


# ---------------------------------------------------------------------------------------------- modes, times, damage


def test_modes_and_mtimes(dest: Path) -> None:
    old_umask = os.umask(0o027)
    try:
        with SafeTree(dest, "the pod", dir_mode=0o700) as t:
            t.directory(("d",), "d", 0o555, 1500000000)
            write(t, ("d", "exact"), b"x", 0o604, exact_mode=True, mtime=1600000000)
            write(t, ("d", "masked"), b"x", 0o666, mtime=1600000001)
            write(t, ("d", "e", "f"), b"x", 0o644)
            t.symlink(("d", "l"), "/nowhere", "d/l", 1700000000)
            t.finish()
    finally:
        os.umask(old_umask)

    def mode_time(*parts: str) -> tuple[int, int]:
        st = os.lstat(dest.joinpath(*parts))
        return stat.S_IMODE(st.st_mode), int(st.st_mtime)

    assert mode_time("d", "exact") == (0o604, 1600000000)  # as the copy's source had it, umask or not
    assert mode_time("d", "masked") == (0o640, 1600000001)
    assert mode_time("d", "e")[0] == 0o700  # made on the way
    assert mode_time("d", "l")[1] == 1700000000  # the link's own time: /nowhere was never touched
    assert mode_time("d") == (0o555, 1500000000)  # after everything inside was written
    (dest / "d").chmod(0o755)


def test_a_root_reached_through_a_symlink_is_the_callers_choice(tmp_path: Path, dest: Path) -> None:
    (tmp_path / "via").symlink_to(dest)
    with SafeTree(tmp_path / "via", "the node") as t:
        write(t, ("a", "b"), b"x")
    assert tree(dest) == {"a": "<dir>", "a/b": "x"}


class _Cut(io.BytesIO):
    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data:
            raise ArchiveError("the stream ended early")
        return data


@pytest.mark.parametrize("remove_partial", [False, True])
def test_a_file_cut_short_is_removed_only_when_asked(dest: Path, remove_partial: bool) -> None:
    with SafeTree(dest, "the pod", remove_partial=remove_partial) as t:
        with pytest.raises(ArchiveError, match="ended early"):
            t.write_file(("x",), _Cut(b"part"), "x", 0o644)
        assert not t.wrote_file(("x",))
        with pytest.raises(ArchiveError, match="^the tar stream from the pod was cut short in ./x$"):
            t.write_file(("y",), io.BytesIO(b"4 of 9"), "./x", 0o644, expect=9)
    assert tree(dest) == ({} if remove_partial else {"x": "part", "y": "4 of 9"})


def test_a_copy_has_its_real_name_only_once_whole(dest: Path) -> None:
    # cp (remove_partial): a kill -9 mid-file cannot run the clean-up, so while a file is written the real name
    # does not exist; the whole file gets it, no other name stays
    seen: list[list[str]] = []
    with SafeTree(dest, "the pod", remove_partial=True) as t:
        t.write_file(("x",), io.BytesIO(b"a" * 300_000), "x", 0o644,
                     on_chunk=lambda _c: seen.append(sorted(os.listdir(dest))))
    assert seen and all(names == [f".x.debugx-partial-{os.getpid()}"] for names in seen)
    assert tree(dest) == {"x": "a" * 300_000}
