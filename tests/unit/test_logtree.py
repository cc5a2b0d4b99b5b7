"""logtree: tar streams from the node are unpacked inside the output directory or not at all."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from kubectl_debugx.errors import ArchiveError, ExitCode, OutputError, UnsafeMemberError
from kubectl_debugx.formats.logfiles import Skipped
from kubectl_debugx.formats.logtree import (
    ExtractedFile,
    ExtractReport,
    extract_tar_stream,
    member_parts,
    prepare_output_dir,
    symlink_target,
)

POD = "logrec_writer_9304714d-bd42-4819-8eef-775e842293f7"

Member = tuple[tarfile.TarInfo, bytes | None]


def entry(name: str, data: bytes | None = None, *, kind: bytes = tarfile.REGTYPE, link: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o640
    info.mtime = 1795763914
    if data is not None:
        info.size = len(data)
    return info, data


def directory(name: str) -> Member:
    return entry(name, kind=tarfile.DIRTYPE)


def symlink(name: str, target: str) -> Member:
    return entry(name, kind=tarfile.SYMTYPE, link=target)


def hardlink(name: str, target: str) -> Member:
    return entry(name, kind=tarfile.LNKTYPE, link=target)


def tar_stream(members: list[Member], mode: str = "w") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as tar:  # type: ignore[call-overload]
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def tree(root: Path) -> dict[str, str]:
    """Everything under root: files with their content, directories and links marked."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[rel] = "<dir>"
        else:
            found[rel] = path.read_bytes().decode("latin-1")
    return found


# ---------------------------------------------------------------------------------------------- normal trees


def test_extracts_a_pod_log_tree(dest: Path) -> None:
    stream = tar_stream(
        [
            directory("./"),
            directory(f"./{POD}"),
            directory(f"./{POD}/out"),
            entry(f"./{POD}/out/0.log", b"2026-11-27T07:18:34Z stdout F a\n"),
            entry(f"./{POD}/out/0.log.20261127-071838.gz", b"\x1f\x8b\x08\x00gz"),
            entry(f"{POD}/quiet/0.log", b""),  # no directory member first: busybox order
        ]
    )
    report = extract_tar_stream(stream, dest)
    assert report == ExtractReport(
        files=(
            ExtractedFile(f"{POD}/out/0.log", 32),
            ExtractedFile(f"{POD}/out/0.log.20261127-071838.gz", 6),
            ExtractedFile(f"{POD}/quiet/0.log", 0),
        ),
        directories=(POD, f"{POD}/out"),
        skipped=(),
    )
    assert tree(dest) == {
        POD: "<dir>",
        f"{POD}/out": "<dir>",
        f"{POD}/out/0.log": "2026-11-27T07:18:34Z stdout F a\n",
        f"{POD}/out/0.log.20261127-071838.gz": "\x1f\x8b\x08\x00gz",
        f"{POD}/quiet": "<dir>",
        f"{POD}/quiet/0.log": "",
    }
    st = os.stat(dest / POD / "out" / "0.log")
    assert (st.st_mtime, st.st_mode & 0o777) == (1795763914, 0o640)


def test_extracts_compressed_stream_and_keeps_binary_bytes(dest: Path) -> None:
    data = bytes(range(256)) * 100
    report = extract_tar_stream(tar_stream([entry("c/0.log", data)], mode="w:gz"), dest)
    assert report == ExtractReport((ExtractedFile("c/0.log", len(data)),), (), ())
    assert (dest / "c" / "0.log").read_bytes() == data


def test_later_member_of_the_same_name_wins(dest: Path) -> None:
    report = extract_tar_stream(tar_stream([entry("c/0.log", b"first"), entry("c/0.log", b"second")]), dest)
    assert report.files == (ExtractedFile("c/0.log", 6),)
    assert tree(dest) == {"c": "<dir>", "c/0.log": "second"}


def test_hardlink_inside_the_tree_becomes_a_copy(dest: Path) -> None:
    stream = tar_stream(
        [entry("c/0.log", b"same"), hardlink("c/copy.log", "c/0.log"), hardlink("c/x", "c/none")]
    )
    assert extract_tar_stream(stream, dest) == ExtractReport(
        files=(ExtractedFile("c/0.log", 4), ExtractedFile("c/copy.log", 4)),
        directories=(),
        skipped=(Skipped("c/x", "hard link to c/none, not in the stream"),),
    )
    assert os.stat(dest / "c" / "0.log").st_ino != os.stat(dest / "c" / "copy.log").st_ino
    assert tree(dest) == {"c": "<dir>", "c/0.log": "same", "c/copy.log": "same"}


def test_symlink_inside_the_tree_is_skipped_and_reported(dest: Path) -> None:
    stream = tar_stream(
        [entry("c/0.log", b"x"), symlink("c/current", "0.log"), symlink("c/up", "../c/0.log")]
    )
    assert extract_tar_stream(stream, dest) == ExtractReport(
        files=(ExtractedFile("c/0.log", 1),),
        directories=(),
        skipped=(
            Skipped("c/current", "symbolic link to 0.log (not followed, no content)"),
            Skipped("c/up", "symbolic link to ../c/0.log (not followed, no content)"),
        ),
    )
    assert tree(dest) == {"c": "<dir>", "c/0.log": "x"}


# ---------------------------------------------------------------------------------------------- attacks


@pytest.mark.parametrize(
    ("members", "member", "reason"),
    [
        ([entry("/etc/cron.d/x", b"x")], "/etc/cron.d/x", "absolute path"),
        ([entry("../x", b"x")], "../x", "'..' in the path"),
        ([entry("c/../../x", b"x")], "c/../../x", "'..' in the path"),
        ([entry("c/./../x", b"x")], "c/./../x", "'..' in the path"),
        ([directory("/tmp/d")], "/tmp/d", "absolute path"),
        ([entry("c\\..\\..\\x", b"x")], "c\\..\\..\\x", "backslash or NUL in the path"),
        ([symlink("c/0.log", "/var/lib/docker/containers/a/a-json.log")], "c/0.log", None),
        ([symlink("c/0.log", "../../outside/secret")], "c/0.log", None),
        ([symlink("c/0.log", "../../../etc/passwd")], "c/0.log", None),
        ([entry("c/0.log", b"x"), hardlink("c/h", "/etc/passwd")], "c/h", None),
        ([entry("c/0.log", b"x"), hardlink("c/h", "../outside/secret")], "c/h", None),
        ([entry("c/0.log", kind=tarfile.CHRTYPE)], "c/0.log", "special file (device) in a log directory"),
        ([entry("c/0.log", kind=tarfile.BLKTYPE)], "c/0.log", "special file (device) in a log directory"),
        ([entry("c/0.log", kind=tarfile.FIFOTYPE)], "c/0.log", "special file (fifo) in a log directory"),
        ([entry("c/0.log", b"x"), entry("c/0.log/x", b"y")], "c/0.log/x", "c/0.log is not a directory"),
    ],
)
def test_refused_members(
    dest: Path, outside: Path, members: list[Member], member: str, reason: str | None
) -> None:
    info = members[-1][0]
    if reason is None:
        kind = "symbolic link" if info.issym() else "hard link"
        reason = f"{kind} to {info.linkname}, outside the log tree"
    with pytest.raises(UnsafeMemberError) as caught:
        extract_tar_stream(tar_stream(members), dest)
    assert (caught.value.member, caught.value.reason, str(caught.value), caught.value.code) == (
        member,
        reason,
        f"refusing tar member {member!r} from the node: {reason}",
        ExitCode.REMOTE_FAILED,
    )
    assert tree(outside) == {"secret": "keep me"}
    assert not (dest.parent / "x").exists()


def test_outside_links_may_be_skipped_instead(dest: Path) -> None:
    stream = tar_stream(
        [symlink("c/0.log", "/var/lib/docker/containers/a/a-json.log"), hardlink("c/h", "/etc/passwd")]
    )
    assert extract_tar_stream(stream, dest, outside_links="skip") == ExtractReport(
        files=(),
        directories=(),
        skipped=(
            Skipped(
                "c/0.log", "symbolic link to /var/lib/docker/containers/a/a-json.log, outside the log tree"
            ),
            Skipped("c/h", "hard link to /etc/passwd, outside the log tree"),
        ),
        links=(("c/0.log", "/var/lib/docker/containers/a/a-json.log"),),
    )


def test_file_through_a_symlink_member_stays_inside(dest: Path, outside: Path) -> None:
    # The classic: a link to somewhere else, then a file "inside" the link. No link is ever created, so the
    # file lands in a real directory of that name inside dest.
    stream = tar_stream([symlink("evil", str(outside)), entry("evil/secret", b"pwned")])
    report = extract_tar_stream(stream, dest, outside_links="skip")
    assert report.files == (ExtractedFile("evil/secret", 5),)
    assert tree(outside) == {"secret": "keep me"}
    assert tree(dest) == {"evil": "<dir>", "evil/secret": "pwned"}


def test_relative_symlink_out_of_the_tree_is_refused_before_a_file_goes_through_it(
    dest: Path, outside: Path
) -> None:
    stream = tar_stream([symlink("c/link", "../.."), entry("c/link/outside/secret", b"pwned")])
    with pytest.raises(UnsafeMemberError, match="'c/link'"):
        extract_tar_stream(stream, dest)
    assert tree(outside) == {"secret": "keep me"}


def test_existing_symlink_directory_in_dest_is_not_followed(dest: Path, outside: Path) -> None:
    (dest / "c").symlink_to(outside)
    with pytest.raises(UnsafeMemberError) as caught:
        extract_tar_stream(tar_stream([entry("c/secret", b"pwned")]), dest)
    assert caught.value.reason == "c is a symbolic link"
    assert tree(outside) == {"secret": "keep me"}


def test_existing_symlink_file_in_dest_is_not_followed(dest: Path, outside: Path) -> None:
    (dest / "0.log").symlink_to(outside / "secret")
    with pytest.raises(UnsafeMemberError) as caught:
        extract_tar_stream(tar_stream([entry("0.log", b"pwned")]), dest)
    assert caught.value.reason == "a symbolic link of that name is already there"
    assert tree(outside) == {"secret": "keep me"}


def test_hardlink_to_a_skipped_symlink_is_not_followed(dest: Path, outside: Path) -> None:
    stream = tar_stream([symlink("c/l", str(outside / "secret")), hardlink("c/h", "c/l")])
    report = extract_tar_stream(stream, dest, outside_links="skip")
    assert report.skipped[-1] == Skipped("c/h", "hard link to c/l, not in the stream")
    assert report.files == ()


# ---------------------------------------------------------------------------------------------- damage


def test_truncated_stream(dest: Path) -> None:
    data = tar_stream([entry("c/0.log", b"x" * 10000)]).getvalue()
    with pytest.raises(ArchiveError, match=r"damaged or cut short \(last member 'c/0.log'\)"):
        extract_tar_stream(io.BytesIO(data[:3000]), dest)


def test_not_a_tar(dest: Path) -> None:
    with pytest.raises(ArchiveError, match=r"damaged or cut short \(last member none\)"):
        extract_tar_stream(io.BytesIO(b"sh: tar: not found\n" * 40), dest)


def test_dest_must_exist(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        extract_tar_stream(tar_stream([]), tmp_path / "nope")


# ---------------------------------------------------------------------------------------------- names


def test_member_parts() -> None:
    assert [member_parts(n) for n in [".", "./", "a//b/./c", "./a/b/"]] == [
        (),
        (),
        ("a", "b", "c"),
        ("a", "b"),
    ]


def test_symlink_target() -> None:
    assert [
        symlink_target(("c", "0.log"), "1.log"),
        symlink_target(("c", "0.log"), "../d/./x"),
        symlink_target(("c", "0.log"), "../../x"),
        symlink_target(("c", "0.log"), "/x"),
    ] == [("c", "1.log"), ("d", "x"), None, None]


# ---------------------------------------------------------------------------------------------- output dir


def test_prepare_output_dir_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "nodelogs-writer"
    assert prepare_output_dir(path) == path
    assert path.is_dir()


def test_prepare_output_dir_accepts_an_empty_one(tmp_path: Path) -> None:
    assert prepare_output_dir(tmp_path) == tmp_path


def test_prepare_output_dir_refuses_a_non_empty_one(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(OutputError) as caught:
        prepare_output_dir(tmp_path)
    assert (str(caught.value), caught.value.code) == (
        f"output directory {tmp_path} exists and is not empty; choose another with -o",
        ExitCode.OUTPUT,
    )


def test_prepare_output_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        prepare_output_dir(tmp_path / "x")
