"""tarcopy: cp's tar stream unpacked into LOCAL as a copy (links, modes, mtimes kept), and nowhere else."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from kubectl_debugx.errors import ArchiveError, ExitCode, OutputError, UnsafeMemberError
from kubectl_debugx.formats.tarcopy import CopyReport, Extractor, Unpacking, extract

from .test_logtree import Member, directory, entry, hardlink, symlink, tar_stream, tree


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def copy(members: list[Member], dest: Path | None, base: str = "tree", force: bool = False) -> tuple[CopyReport,
                                                                                                     list[str]]:
    said: list[str] = []
    return extract(tar_stream(members), Extractor(dest, base, force, said.append)), said


TREE = [
    directory("./tree"),
    entry("./tree/small.txt", b"hello\n"),
    directory("./tree/sub"),
    entry("./tree/sub/big.bin", b"\0" * 3000),
    symlink("./tree/rel-link", "small.txt"),
    symlink("./tree/abs-link", "/etc/hostname"),
    entry("./tree/fifo", kind=tarfile.FIFOTYPE),
    hardlink("./tree/sub/same", "./tree/small.txt"),
]


def test_a_directory_copy_keeps_links_modes_and_times(tmp_path: Path) -> None:
    report, said = copy(TREE, tmp_path / "tree")
    assert report == CopyReport(
        files={"small.txt": sha(b"hello\n"), "sub/big.bin": sha(b"\0" * 3000), "sub/same": sha(b"hello\n")},
        sizes={"small.txt": 6, "sub/big.bin": 3000, "sub/same": 0},
        symlinks=["rel-link", "abs-link"], directories=["", "sub"], skipped=[("fifo", "FIFO")],
    )
    assert said == ["Skipped fifo: FIFO"]
    assert tree(tmp_path / "tree") == {"abs-link": "-> /etc/hostname", "rel-link": "-> small.txt",
                                       "small.txt": "hello\n", "sub": "<dir>", "sub/big.bin": "\0" * 3000,
                                       "sub/same": "hello\n"}
    out = tmp_path / "tree"
    assert os.stat(out / "sub" / "same").st_ino == os.stat(out / "small.txt").st_ino
    assert [(stat.S_IMODE(os.lstat(p).st_mode), os.lstat(p).st_mtime) for p in (out, out / "small.txt")] == [
        (0o755, 1795763914), (0o640, 1795763914)]


def test_to_stdout_only_hashes(tmp_path: Path) -> None:
    report, _ = copy(TREE, None)
    assert (report.files, report.symlinks, list(tmp_path.iterdir())) == (
        {"small.txt": sha(b"hello\n"), "sub/big.bin": sha(b"\0" * 3000), "sub/same": sha(b"hello\n")},
        ["rel-link", "abs-link"], [])


def test_a_single_file_is_written_at_local_itself(tmp_path: Path) -> None:
    report, _ = copy([entry("./big.bin", b"data")], tmp_path / "copy.bin", base="big.bin")
    assert (report.files, tree(tmp_path)) == ({"": sha(b"data")}, {"copy.bin": "data"})


def test_the_targets_root_lands_in_local(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    report, _ = copy([directory("./"), entry("./etc/hosts", b"h")], tmp_path / "root", base=".")
    assert (report.directories, tree(tmp_path / "root")) == ([""], {"etc": "<dir>", "etc/hosts": "h"})


# ---------------------------------------------------------------------------------------------- attacks


def test_a_file_through_a_symlink_of_the_stream_is_refused(tmp_path: Path, outside: Path) -> None:
    with pytest.raises(UnsafeMemberError) as caught:
        copy([directory("./tree"), symlink("./tree/link", str(outside)), entry("./tree/link/secret", b"pwned")],
             tmp_path / "tree")
    assert (str(caught.value), caught.value.code) == (
        "refusing tar member './tree/link/secret' from the pod: tree/link is a symbolic link", ExitCode.REMOTE_FAILED)
    assert tree(outside) == {"secret": "keep me"}


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (entry("./tree/../x", b"x"), "refusing tar member './tree/../x' from the pod: '..' in the path"),
        (entry("/etc/x", b"x"), "refusing tar member '/etc/x' from the pod: absolute path"),
        (entry("./other/x", b"x"), "refusing tar member 'other/x' from the pod: outside the copied item 'tree'"),
        (hardlink("./tree/h", "/etc/passwd"), "refusing tar member '/etc/passwd' from the pod: absolute path"),
        (hardlink("./tree/h", "../outside/secret"),
         "refusing tar member '../outside/secret' from the pod: '..' in the path"),
    ],
)
def test_names_out_of_the_copy_are_refused(tmp_path: Path, outside: Path, member: Member, message: str) -> None:
    with pytest.raises(UnsafeMemberError) as caught:
        copy([directory("./tree"), entry("./tree/a", b"a"), member], tmp_path / "tree")
    assert str(caught.value) == message
    assert (tree(outside), sorted(p.name for p in tmp_path.iterdir())) == ({"secret": "keep me"}, ["outside", "tree"])


def test_a_hard_link_to_a_file_replaced_by_a_symlink_is_not_made(tmp_path: Path, outside: Path) -> None:
    # linkat with AT_SYMLINK_FOLLOW (os.link's default) would have made tree/b a second name of outside/secret
    report, _ = copy([directory("./tree"), entry("./tree/a", b"a"), symlink("./tree/a", str(outside / "secret")),
                      hardlink("./tree/b", "./tree/a")], tmp_path / "tree")
    assert (report.files, report.skipped) == ({}, [("b", "hard link to ./tree/a, not in the stream")])
    assert tree(tmp_path / "tree") == {"a": f"-> {outside / 'secret'}"}


def test_an_existing_symlink_directory_in_local_is_not_followed(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "sub").symlink_to(outside)
    with pytest.raises(UnsafeMemberError, match="tree/sub is a symbolic link"):
        copy([directory("./tree"), entry("./tree/sub/secret", b"pwned")], tmp_path / "tree", force=True)
    assert tree(outside) == {"secret": "keep me"}


def test_an_existing_file_needs_force(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "a").symlink_to(outside / "secret")
    with pytest.raises(OutputError) as caught:
        copy([directory("./tree"), entry("./tree/a", b"new")], tmp_path / "tree")
    assert (str(caught.value), caught.value.code) == (
        f"{tmp_path / 'tree' / 'a'} exists: use --force to overwrite it", ExitCode.OUTPUT)
    copy([directory("./tree"), entry("./tree/a", b"new")], tmp_path / "tree", force=True)
    assert (tree(tmp_path / "tree"), tree(outside)) == ({"a": "new"}, {"secret": "keep me"})


def test_a_later_member_of_a_name_replaces_the_earlier_without_force(tmp_path: Path) -> None:
    report, _ = copy([directory("./tree"), entry("./tree/a", b"1"), entry("./tree/a", b"22")], tmp_path / "tree")
    assert (report.files, tree(tmp_path / "tree")) == ({"a": sha(b"22")}, {"a": "22"})


def test_a_cut_stream_removes_the_partial_file_and_keeps_the_others(tmp_path: Path) -> None:
    data = tar_stream([directory("./tree"), entry("./tree/a", b"a"), entry("./tree/b", b"b" * 20000)]).getvalue()
    extractor = Extractor(tmp_path / "tree", "tree", False, print)
    with pytest.raises(ArchiveError, match=r"^the tar stream from the pod is damaged or cut short \(last member "
                                           r"'./tree/b'\): unexpected end of data$"):
        extract(io.BytesIO(data[:5000]), extractor)
    assert (tree(tmp_path / "tree"), extractor.report.partial) == ({"a": "a"}, str(tmp_path / "tree" / "b"))


# ------------------------------------------------------------------------------- the receive loop, frame by frame


def unpack(pieces: list[bytes], dest: Path | None, base: str = "tree") -> tuple[CopyReport, list[str]]:
    said: list[str] = []
    unpacking = Unpacking(Extractor(dest, base, False, said.append))
    for piece in pieces:
        unpacking.feed(memoryview(piece))
    return unpacking.end(), said


def test_split_at_every_byte_offset_the_copy_is_the_same(tmp_path: Path) -> None:
    data = tar_stream(TREE).getvalue()
    data = data[:7680 + 1024]  # TREE's members, then the end-of-archive blocks (not tarfile's padding to 10 KiB)
    whole, said = unpack([data], tmp_path / "whole")
    assert whole == copy(TREE, tmp_path / "tarfile-like")[0]
    for cut in range(1, len(data)):
        assert unpack([data[:cut], data[cut:]], None)[0].files == whole.files, cut
        if cut % 5 == 0 or cut % 512 in (1, 511):  # writing the tree at every offset takes 15 s: one in five
            dest = tmp_path / str(cut)
            assert unpack([data[:cut], data[cut:]], dest) == (whole, said), cut
            assert tree(dest) == tree(tmp_path / "whole"), cut


def test_a_stream_cut_anywhere_in_a_file_leaves_nothing_under_its_name(tmp_path: Path) -> None:
    data = tar_stream([directory("./tree"), entry("./tree/a", b"a"), entry("./tree/b", b"b" * 2000)]).getvalue()
    start = 4 * 512  # b's content starts after three headers and a's one block
    for cut in range(start - 511, start + 2000):  # in b's header, then in its content
        dest = tmp_path / str(cut)
        with pytest.raises(ArchiveError) as caught:
            unpack([data[:cut]], dest)
        assert str(caught.value) == ("the tar stream from the pod is damaged or cut short (last member "
                                     f"{'./tree/a' if cut < start else './tree/b'!r}): unexpected end of data")
        assert tree(dest) == {"a": "a"}, cut  # no b, and no partial file under another name either


def test_a_file_through_a_symlink_is_refused_in_any_pieces(tmp_path: Path, outside: Path) -> None:
    data = tar_stream([directory("./tree"), symlink("./tree/link", str(outside)),
                       entry("./tree/link/secret", b"pwned")]).getvalue()
    for cut in range(0, 2048, 97):
        with pytest.raises(UnsafeMemberError, match="^refusing tar member './tree/link/secret' from the pod: "
                                                    "tree/link is a symbolic link$"):
            (tmp_path / str(cut)).mkdir()
            unpack([data[:cut], data[cut:]], tmp_path / str(cut) / "tree")
    assert tree(outside) == {"secret": "keep me"}
