"""cp's upload: the pure builders (every argv whole), the destination's resolution, what is renamed, and the tar
stream sent (read back with tarfile)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from kubectl_debugx.commands.cp import uploadplan as plan
from kubectl_debugx.commands.cp.procroot import STAT_SCRIPT
from kubectl_debugx.commands.doctor import checks
from kubectl_debugx.errors import Forbidden, NotFound, OutputError, RemoteFailed, UsageError
from kubectl_debugx.formats import tarsend
from kubectl_debugx.formats.tarsend import Entry


def test_resolve_dest_step():
    assert plan.resolve_dest_step(["tmp", "x"], ["D", "D", "N"], "/tmp/x", 1) == plan.DestStep(["tmp", "x"], "N")
    assert plan.resolve_dest_step(["tmp", "x"], ["D", "D", "D"], "/tmp/x", 1) == plan.DestStep(["tmp", "x"], "D")
    assert plan.resolve_dest_step(["tmp", "x"], ["D", "D", "F12"], "/tmp/x", 1) == plan.DestStep(["tmp", "x"], "F")
    assert plan.resolve_dest_step([], ["D"], "/", 1) == plan.DestStep([], "D")
    # every symlink is followed inside the root, PATH's own too; an absolute one from the target's root
    assert plan.resolve_dest_step(["a", "b", "c"], ["D", "D", "L/data", "N"], "/a/b/c", 1) == plan.DestStep(
        None, again=["data", "c"])
    assert plan.resolve_dest_step(["a", "l"], ["D", "D", "L../x"], "/a/l", 1) == plan.DestStep(None, again=["x"])
    with pytest.raises(NotFound) as missing:
        plan.resolve_dest_step(["nowhere", "f"], ["D", "N", "N"], "/nowhere/f", 65532)
    assert str(missing.value) == ("folder /nowhere does not exist in the container (or cannot be searched as uid "
                                  "65532) (resolving /nowhere/f)")
    with pytest.raises(NotFound, match=r"^/f is not a directory in the container, so /f/x cannot be written$"):
        plan.resolve_dest_step(["f", "x"], ["D", "F1", "N"], "/f/x", 1)
    with pytest.raises(Forbidden, match="--profile sysadmin"):
        plan.resolve_dest_step(["a"], ["N", "N"], "/a", 65532)


def test_place_as_cp_does():
    # PATH missing: it names the item; PATH a folder: the item goes inside under LOCAL's name
    assert plan.place(plan.DestStep(["tmp", "x"], "N"), "conf") == plan.Placement(["tmp"], "x", "N")
    assert plan.place(plan.DestStep(["tmp", "x"], "D"), "conf") == ["tmp", "x", "conf"]
    assert plan.place(plan.DestStep(["tmp", "f"], "F"), "conf") == plan.Placement(["tmp"], "f", "F")
    # a tar stream: PATH is the folder it is extracted into
    assert plan.place(plan.DestStep(["tmp"], "D"), None) == plan.Placement(["tmp"], None, "D")
    with pytest.raises(NotFound, match=r"^folder /tmp/x does not exist in the container"):
        plan.place(plan.DestStep(["tmp", "x"], "N"), None)
    with pytest.raises(OutputError, match=r"^/tmp/f is not a directory in the container"):
        plan.place(plan.DestStep(["tmp", "f"], "F"), None)


def test_check_placement():
    plan.check_placement(plan.Placement(["tmp"], "x", "N"), "D", force=False)
    plan.check_placement(plan.Placement(["tmp"], "x", "F"), "F", force=True)
    plan.check_placement(plan.Placement(["tmp"], "x", "D"), "D", force=True)  # merged
    cases = [
        (plan.Placement(["tmp"], "x", "F"), "F", False, "/tmp/x exists in the container: use --force to overwrite"),
        (plan.Placement(["tmp"], "x", "D"), "D", False, "/tmp/x exists in the container: use --force to overwrite"),
        (plan.Placement(["tmp"], "x", "D"), "F", True,
         "/tmp/x is a directory in the container: cannot replace it with a file"),
        (plan.Placement(["tmp"], "x", "D"), "L", True,
         "/tmp/x is a directory in the container: cannot replace it with a symlink"),
        (plan.Placement(["tmp"], "x", "F"), "D", True, "/tmp/x exists in the container and is not a directory"),
    ]
    for placement, kind, force, message in cases:
        with pytest.raises(OutputError) as e:
            plan.check_placement(placement, kind, force)
        assert str(e.value) == message


def test_remote_commands():
    temp = plan.temp_path(1, ["tmp", "x"], "abc")
    assert temp == "/proc/1/root/tmp/x/.debugx-upload-abc"
    assert plan.temp_path(7, [], "abc") == "/proc/7/root/.debugx-upload-abc"
    assert plan.folder_path(1, []) == "/proc/1/root/"
    assert plan.extract_argv(temp) == ["sh", "-c", plan.EXTRACT_SCRIPT, "sh", temp]
    assert plan.sha256_argv(temp, ["a", "d/b"]) == ["sh", "-c", plan.SUM_SCRIPT, "sh", temp + "/a", temp + "/d/b"]
    assert plan.sha256_argv(temp, ["a", "new\nline"]) == ["sha256sum", "--", temp + "/a", temp + "/new\nline"]
    assert plan.stat_argv("/proc/1/root/tmp/", ["a", "-x"]) == [
        "sh", "-c", STAT_SCRIPT, "sh", "/proc/1/root/tmp/a", "/proc/1/root/tmp/-x"]
    assert plan.move_argv(temp, "/proc/1/root/tmp/", ["a", "d"]) == [
        "sh", "-c", plan.MOVE_SCRIPT, "sh", temp, "/proc/1/root/tmp", "0", "a", "d"]
    assert plan.move_argv(temp, "/proc/1/root/tmp/", ["a"], remove=True) == [
        "sh", "-c", plan.MOVE_SCRIPT, "sh", temp, "/proc/1/root/tmp", "1", "a"]
    assert plan.remove_argv(temp) == ["rm", "-rf", "--", temp]


def test_moves_new_folder_whole_existing_merged_links_never_written_through():
    entries = [("D", "conf"), ("F", "conf/a"), ("D", "conf/sub"), ("F", "conf/sub/b"), ("L", "conf/l")]
    assert plan.moves(entries, {"conf": "N"}, force=False) == ["conf"]
    states = {"conf": "D", "conf/a": "F6", "conf/sub": "N", "conf/sub/b": "N", "conf/l": "L/etc"}
    assert plan.moves(entries, states, force=True) == ["conf/a", "conf/sub", "conf/l"]
    with pytest.raises(OutputError, match=r"^conf exists in the container: use --force to overwrite$"):
        plan.moves(entries, states, force=False)
    with pytest.raises(OutputError, match=r"^conf/sub is a symbolic link in the container: a folder is not "):
        plan.moves(entries, {**states, "conf/sub": "L/etc"}, force=True)
    with pytest.raises(OutputError, match=r"^conf/a is a directory in the container: cannot replace it with a file"):
        plan.moves(entries, {**states, "conf/a": "D"}, force=True)
    with pytest.raises(OutputError, match=r"^conf exists in the container and is not a directory$"):
        plan.moves(entries, {"conf": "F3"}, force=True)
    # a name a stream gave twice is renamed once
    assert plan.moves([("F", "a"), ("F", "a")], {"a": "N"}, force=False) == ["a"]
    assert plan.to_check(entries, force=False) == ["conf"]
    assert plan.to_check(entries, force=True) == ["conf", "conf/a", "conf/sub", "conf/sub/b", "conf/l"]


def test_openssl_sums_read_as_sha256sum_ones():
    from kubectl_debugx.formats.tarcopy import parse_sha256sum

    digest = "b" * 64
    assert parse_sha256sum(f"{digest} */t/.debugx-upload-x/conf/a b\n", "/t/.debugx-upload-x") == {"conf/a b": digest}


def test_write_error_one_line_each():
    ro = plan.write_error("mkdir: cannot create directory '/proc/1/root/tmp/x': Read-only file system", "/tmp", 9)
    assert (type(ro), str(ro)) == (OutputError, "cannot write into /tmp in the container: read-only file system "
                                                "(readOnlyRootFilesystem: only a volume is writable there)")
    denied = plan.write_error("mkdir: cannot create directory 'x': Permission denied", "/etc", 65532)
    assert (type(denied), str(denied)) == (Forbidden, "cannot write into /etc in the container as uid 65532: "
                                                      "permission denied; --profile sysadmin writes as root")
    other = plan.write_error("mkdir: odd", "/tmp", 1)
    assert (type(other), str(other)) == (RemoteFailed, "cannot write into /tmp in the container: mkdir: odd")


def test_root_fs_row():
    pod = {"spec": {"containers": [{"name": "app", "securityContext": {"readOnlyRootFilesystem": True},
                                    "volumeMounts": [{"mountPath": "/data"}, {"mountPath": "/cfg",
                                                                              "readOnly": True}]}]}}
    assert checks.root_fs_row(pod, "app") == checks.Row(
        "container app root filesystem", checks.WARN,
        "read-only (readOnlyRootFilesystem): cp into the container writes only in its writable volumes: /data")
    assert checks.root_fs_row({"spec": {"containers": [{"name": "app"}]}}, "app") is None


# --- the stream ---------------------------------------------------------------------------------------------


def test_walk_never_follows_a_symlink_and_skips_fifos(tmp_path: Path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"12345")
    os.utime(src / "d" / "f", (1600000000, 1600000000))
    (src / "l").symlink_to("/etc")
    os.mkfifo(src / "p")
    skipped: list[tuple[str, str]] = []
    entries = tarsend.walk(str(src), "x", skipped)
    st = {p: os.lstat(src / p) for p in ("", "d", "d/f", "l")}
    assert entries == [
        Entry("D", "x", st[""].st_mode, int(st[""].st_mtime), 0, "", str(src)),
        Entry("D", "x/d", st["d"].st_mode, int(st["d"].st_mtime), 0, "", str(src / "d")),
        Entry("F", "x/d/f", st["d/f"].st_mode, 1600000000, 5, "", str(src / "d" / "f")),
        Entry("L", "x/l", st["l"].st_mode, int(st["l"].st_mtime), 0, "/etc",
                      str(src / "l")),
    ]
    assert skipped == [("x/p", "FIFO")]
    with pytest.raises(UsageError, match="no such file or directory"):
        tarsend.walk(str(tmp_path / "missing"), "m", [])


def test_safe_name():
    assert tarsend.safe_name("./a/./b", set()) == "a/b"
    assert tarsend.safe_name("./", set()) == ""
    assert tarsend.safe_name("/etc/passwd", set()) == "etc/passwd"  # relative, as tar makes it
    assert tarsend.safe_name("a/../../x", set()) is None
    assert tarsend.safe_name("esc/passwd", {"esc"}) is None  # below a symlink of the stream
    assert tarsend.safe_name("esc", {"esc"}) is None  # over it (a folder over a link is tar's own business)


def _send(entries) -> tuple[bytes, tarsend.SendReport, list[int]]:
    out = io.BytesIO()
    report = tarsend.SendReport()
    counted: list[int] = []
    tarsend.send(iter(entries), out.write, counted.append, report)
    return out.getvalue(), report, counted


def test_send_local_entries_hashes_what_it_sends(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"x" * 3000)
    stream, report, counted = _send([(Entry("D", "d", 0o40755, 5), None),
                                     (Entry("F", "d/f", 0o104755, 7, 3000, "", str(tmp_path / "f")), None),
                                     (Entry("L", "d/l", 0o120777, 9, 0, "/etc"), None)])
    assert report == tarsend.SendReport(files={"d/f": hashlib.sha256(b"x" * 3000).hexdigest()},
                                        entries=[("D", "d"), ("F", "d/f"), ("L", "d/l")], bytes=3000, symlinks=1,
                                        directories=1)
    assert sum(counted) == 3000
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        got = [(m.name, m.type, m.mode, m.mtime, m.size, m.linkname, m.uid, m.gid) for m in tar.getmembers()]
        assert got == [("d", tarfile.DIRTYPE, 0o755, 5, 0, "", 0, 0),
                       ("d/f", tarfile.REGTYPE, 0o755, 7, 3000, "", 0, 0),  # no setuid bit lands
                       ("d/l", tarfile.SYMTYPE, 0o777, 9, 0, "/etc", 0, 0)]
        assert tar.extractfile("d/f").read() == b"x" * 3000  # type: ignore[union-attr]


def test_send_a_file_that_shrank_is_an_error(tmp_path: Path):
    (tmp_path / "f").write_bytes(b"short")
    with pytest.raises(UsageError, match="got shorter while it was sent"):
        _send([(Entry("F", "f", 0o644, 0, 10, "", str(tmp_path / "f")), None)])


def test_stream_entries_rewrites_stdin_safely():
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        def add(name: str, kind: bytes = tarfile.REGTYPE, content: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname, info.mtime = kind, len(content), link, 3
            tar.addfile(info, io.BytesIO(content) if content else None)
        add("./", tarfile.DIRTYPE)
        add("./d/b.txt", content=b"b\n")  # its folder only implied
        add("./esc", tarfile.SYMTYPE, link="/etc")
        add("esc/passwd", content=b"bad\n")
        add("../up", content=b"up\n")
        add("hard", tarfile.LNKTYPE, link="d/b.txt")
        add("fifo", tarfile.FIFOTYPE)
    data.seek(0)
    skipped: list[tuple[str, str]] = []
    stream, report, _counted = _send(tarsend.stream_entries(data, skipped))
    assert report.entries == [("D", "d"), ("F", "d/b.txt"), ("L", "esc")]
    assert report.files == {"d/b.txt": hashlib.sha256(b"b\n").hexdigest()}
    assert skipped == [("esc/passwd", "a name outside the folder or below a symlink"),
                       ("../up", "a name outside the folder or below a symlink"), ("hard", "hard link"),
                       ("fifo", "device, FIFO or special file")]
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        assert [(m.name, m.type) for m in tar.getmembers()] == [
            ("d", tarfile.DIRTYPE), ("d/b.txt", tarfile.REGTYPE), ("esc", tarfile.SYMTYPE)]
    with pytest.raises(UsageError, match="^stdin is not a tar stream"):
        _send(tarsend.stream_entries(io.BytesIO(b"not tar" * 100), []))


@pytest.mark.parametrize(("parts", "i", "link", "again"), [
    (["etc", "nginx", "conf.d"], 1, "/opt/nginx", ["opt", "nginx", "conf.d"]),  # absolute: from the root
    (["etc", "nginx", "conf.d"], 1, "../srv/ng", ["srv", "ng", "conf.d"]),  # relative: from its folder
    (["a", "b"], 0, "../../../x", ["x", "b"]),  # `..` never climbs above the target's root
    (["a", "b"], 1, "/", []),  # a link to the root
])
def test_a_symlink_on_the_way_is_followed_inside_the_targets_root(parts, i, link, again):
    from kubectl_debugx.commands.cp.procroot import through_link

    assert through_link(parts, i, link) == again


def test_move_script_renames_each_name_then_removes_the_folder_after_the_last_batch(tmp_path: Path):
    """MOVE_SCRIPT run by a real sh: every name renamed into place (a file replaced, never written through a
    symlink), the temporary folder removed only with the last batch; a failure names the item, keeps the folder."""
    import subprocess

    temp, dest = tmp_path / ".debugx-upload-x", tmp_path / "dest"
    (temp / "conf").mkdir(parents=True)
    dest.mkdir()
    (temp / "a").write_text("new")
    (temp / "conf" / "b").write_text("b")
    (dest / "a").write_text("old")
    res = subprocess.run(plan.move_argv(str(temp), str(dest), ["a"]), capture_output=True)
    assert (res.returncode, res.stdout, (dest / "a").read_text(), temp.exists()) == (0, b"", "new", True)
    res = subprocess.run(plan.move_argv(str(temp), str(dest), ["conf"], remove=True), capture_output=True)
    assert (res.returncode, res.stdout, (dest / "conf" / "b").read_text(), temp.exists()) == (0, b"", "b", False)
    temp.mkdir()
    res = subprocess.run(plan.move_argv(str(temp), str(dest), ["missing"], remove=True), capture_output=True)
    assert (res.returncode, res.stdout, temp.exists()) == (1, b"missing\0", True)


def _ranges(data: bytes, size: int) -> list[str]:
    import hashlib

    return [hashlib.sha256(data[i:i + size]).hexdigest() for i in range(0, len(data), size)] or [
        hashlib.sha256(b"").hexdigest()]


def test_send_digests_a_larger_file_range_by_range_whatever_the_reads(tmp_path: Path, monkeypatch):
    """A file above RANGE has a digest per range (the last one shorter), one at or below it a whole one; a stream
    read in odd pieces gives the same ranges as a file read in whole chunks."""
    import hashlib
    import io
    import os

    monkeypatch.setattr(tarsend, "RANGE", 2 * tarsend.CHUNK)
    big, exact = os.urandom(5 * tarsend.CHUNK + 7), os.urandom(2 * tarsend.CHUNK)
    (tmp_path / "big").write_bytes(big)
    (tmp_path / "exact").write_bytes(exact)
    entries = [tarsend.Entry("F", name, 0o644, 0, len(data), "", str(tmp_path / name))
               for name, data in (("big", big), ("exact", exact))]
    report = tarsend.SendReport()
    tarsend.send(((e, None) for e in entries), lambda _b: None, lambda _n: None, report)
    assert (report.files, report.ranges) == ({"exact": hashlib.sha256(exact).hexdigest()},
                                             {"big": _ranges(big, 2 * tarsend.CHUNK)})

    class Trickle(io.RawIOBase):  # a stream that hands over 300,001 bytes at a time
        def __init__(self, data: bytes) -> None:
            self.data = memoryview(data)

        def readinto(self, b) -> int:
            n = min(len(b), 300_001, len(self.data))
            b[:n], self.data = self.data[:n], self.data[n:]
            return n

    streamed = tarsend.SendReport()
    tarsend.send(iter([(tarsend.Entry("F", "big", 0o644, 0, len(big)), Trickle(big))]), lambda _b: None,
                 lambda _n: None, streamed)
    assert (streamed.files, streamed.ranges) == ({}, {"big": _ranges(big, 2 * tarsend.CHUNK)})


def test_range_script_sums_each_range_in_the_container_as_the_sender_did(tmp_path: Path):
    """RANGE_SCRIPT run by a real sh (dd, nproc, openssl or sha256sum): every range of every file, in the
    order given; without dd it exits 127 and says so; waiting without stat, 126."""
    import os
    import subprocess

    one, two = os.urandom(3 * (1 << 20) + 5), os.urandom(1 << 20)
    (tmp_path / "one").write_bytes(one)
    (tmp_path / "two").write_bytes(two)
    argv = plan.ranges_argv(str(tmp_path), [("one", len(one)), ("two", len(two))], 1)
    assert argv == ["sh", "-c", plan.RANGE_SCRIPT, "sh", "0", "1", f"{tmp_path}/one", str(len(one)),
                    f"{tmp_path}/two", str(len(two))]
    res = subprocess.run(argv, capture_output=True, text=True)
    want = {(0, k): d for k, d in enumerate(_ranges(one, 1 << 20))} | {(1, 0): _ranges(two, 1 << 20)[0]}
    assert (res.returncode, plan.parse_ranges(res.stdout)) == (0, want)
    res = subprocess.run(["/bin/sh", *argv[1:]], capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert (res.returncode, res.stderr) == (127, "dd: not found\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "dd").symlink_to("/bin/dd")
    waiting = plan.ranges_argv(str(tmp_path), [("one", len(one))], 1, wait=True)
    res = subprocess.run(["/bin/sh", *waiting[1:]], capture_output=True, text=True,
                         env={"PATH": str(tmp_path / "bin")})
    assert (res.returncode, res.stderr) == (126, "stat: not found\n")


def test_range_script_waiting_reads_each_range_once_written_beside_the_writer(tmp_path: Path):
    """Waiting (beside tar), each range is summed once the file has grown past its end, not before: a writer
    that appends a range every 0.3 s; the digest of each range comes while the file is still being written."""
    import os
    import select
    import subprocess
    import time

    data = os.urandom(4 * (1 << 20) + 3)
    path = tmp_path / "big"
    script = subprocess.Popen(plan.ranges_argv(str(tmp_path), [("big", len(data))], 1, wait=True),
                              stdout=subprocess.PIPE, bufsize=0)
    assert script.stdout is not None
    got = b""

    def lines_within(count: int, seconds: float) -> int:
        nonlocal got
        deadline = time.monotonic() + seconds
        while got.count(b"\n") < count and select.select([script.stdout], [], [], deadline - time.monotonic())[0]:
            chunk = os.read(script.stdout.fileno(), 4096)
            if not chunk:
                break
            got += chunk
        return got.count(b"\n")

    try:
        with open(path, "wb", buffering=0) as out:
            for k in range(5):
                time.sleep(0.3)  # the writer's pace (a transfer), not a wait for the script
                assert lines_within(k, 10) == k  # range k - 1 summed, range k not yet written: not summed
                out.write(data[k << 20:(k + 1) << 20])
        assert (lines_within(5, 10), script.wait(10)) == (5, 0)
    finally:
        script.kill()
    assert plan.parse_ranges(got.decode()) == {(0, k): d for k, d in enumerate(_ranges(data, 1 << 20))}
