"""tarstream: a tar stream read push-style, fed in pieces of any size, gives the members tarfile reads from the
same bytes; a damaged or cut stream is an error, never a short member passed for a whole one."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from kubectl_debugx.formats import tarstream
from kubectl_debugx.formats.tarstream import BLOCK, Member, TarFormatError, TarReader

Event = tuple[str, object]


class Recorder:
    """A receiver that keeps every call, a file's data joined (how it was split is not the reader's to keep)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.open = False

    def member(self, member: Member) -> None:
        assert not self.open
        self.events.append(("member", member))
        self.open = member.isreg()
        if self.open:
            self.events.append(("data", b""))

    def data(self, chunk: memoryview) -> None:
        assert self.open and isinstance(chunk, memoryview)
        kind, got = self.events[-1]
        assert kind == "data" and isinstance(got, bytes)
        self.events[-1] = ("data", got + bytes(chunk))

    def done(self) -> None:
        assert self.open
        self.open = False
        self.events.append(("done", None))


def read(pieces: list[bytes]) -> list[Event]:
    recorder = Recorder()
    reader = TarReader(recorder)
    for piece in pieces:
        reader.feed(piece)
    reader.end()
    return recorder.events


def as_tarfile_reads(data: bytes) -> list[Event]:
    """The events the same bytes give through Python's tarfile (stream mode, as cp used before)."""
    events: list[Event] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        for info in tar:
            kind = info.type
            member = Member(name=info.name, type=kind, mode=info.mode, mtime=float(info.mtime),
                            size=info.size if info.isreg() or kind not in tarstream._NO_CONTENT else 0,
                            linkname=info.linkname)
            events.append(("member", member))
            if info.isreg():
                src = tar.extractfile(info)
                assert src is not None
                events += [("data", src.read()), ("done", None)]
    return events


def archive(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, link: str = "",
         mode: int = 0o640) -> tuple[tarfile.TarInfo, bytes | None]:
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.mode, member.mtime = kind, link, mode, 1795763914
    if data is not None:
        member.size = len(data)
    return member, data


LONG = "./tree/" + "deep-directory-name/" * 8 + "a-file-name-longer-than-a-hundred-bytes.txt"
SMALL = [
    info("./tree", tarfile.DIRTYPE, mode=0o755),
    info("./tree/empty"),
    info("./tree/hello.txt", data=b"hello\n"),
    info("./tree/block.bin", data=bytes(range(256)) * 2),  # exactly one block: no padding
    info("./tree/rel-link", tarfile.SYMTYPE, link="hello.txt"),
    info("./tree/same", tarfile.LNKTYPE, link="./tree/hello.txt"),
    info("./tree/fifo", tarfile.FIFOTYPE),
    info(LONG, data=b"long\n"),
    info("./tree/long-link", tarfile.SYMTYPE, link="../" * 40 + "target"),
]


def m(name: str, kind: bytes = b"0", size: int = 0, link: str = "", mode: int = 0o640) -> Member:
    return Member(name=name, type=kind, mode=mode, mtime=1795763914.0, size=size, linkname=link)


def test_a_small_tree_gives_every_member_with_its_content() -> None:
    assert read([archive(SMALL)]) == [
        ("member", m("./tree", b"5", mode=0o755)),
        ("member", m("./tree/empty")), ("data", b""), ("done", None),
        ("member", m("./tree/hello.txt", size=6)), ("data", b"hello\n"), ("done", None),
        ("member", m("./tree/block.bin", size=512)), ("data", bytes(range(256)) * 2), ("done", None),
        ("member", m("./tree/rel-link", b"2", link="hello.txt")),
        ("member", m("./tree/same", b"1", link="./tree/hello.txt")),
        ("member", m("./tree/fifo", b"6")),
        ("member", m(LONG, size=5)), ("data", b"long\n"), ("done", None),
        ("member", m("./tree/long-link", b"2", link="../" * 40 + "target")),
    ]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT],
                         ids=["gnu", "pax", "ustar"])
def test_split_at_every_byte_offset_it_reads_as_tarfile_does(fmt: int) -> None:
    members = SMALL if fmt != tarfile.USTAR_FORMAT else [
        # ustar has no longlink, and a long name only as prefix + name (split at a slash)
        *SMALL[:7], info(LONG[:200], data=b"long\n")]
    data = archive(members, fmt)
    expected = as_tarfile_reads(data)
    assert read([data]) == expected
    for cut in range(1, len(data)):
        assert read([data[:cut], data[cut:]]) == expected, cut
    for first, second in ((100, 700), (511, 513), (1023, 1537)):
        assert read([data[:first], data[first:second], data[second:]]) == expected


def test_fed_a_byte_at_a_time_or_in_random_pieces() -> None:
    data = archive(SMALL, tarfile.PAX_FORMAT)
    expected = as_tarfile_reads(data)
    assert read([data[i:i + 1] for i in range(len(data))]) == expected
    rng = random.Random(24)
    for _ in range(50):
        pieces, pos = [], 0
        while pos < len(data):
            size = rng.choice((1, 7, 511, 512, 513, 4096, 20000))
            pieces.append(data[pos:pos + size])
            pos += size
        assert read(pieces) == expected


def test_pax_names_and_times() -> None:
    name = "./tree/" + "ü" * 120 + "/naïve.txt"  # not ASCII and too long for ustar: a pax path record
    member, data = info(name, data=b"x")
    member.mtime = 1795763914.5  # pax keeps sub-second mtimes
    raw = archive([(member, data), info("./tree/l", tarfile.SYMTYPE, link="é" * 150)], tarfile.PAX_FORMAT)
    assert read([raw]) == as_tarfile_reads(raw) == [
        ("member", Member(name=name, type=b"0", mode=0o640, mtime=1795763914.5, size=1)), ("data", b"x"),
        ("done", None), ("member", m("./tree/l", b"2", link="é" * 150))]


def test_a_global_pax_header_applies_to_every_later_member() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"mtime": "5"}) as tar:
        for member, data in (info("./a", data=b"1"), info("./b", data=b"2")):
            tar.addfile(member, io.BytesIO(data))
    raw = buf.getvalue()
    events = read([raw])
    assert events == as_tarfile_reads(raw)
    assert [e[1].mtime for e in events if e[0] == "member"] == [5.0, 5.0]  # type: ignore[union-attr]


def test_names_undecodable_as_utf8_are_kept_as_surrogates() -> None:
    # what os functions turn back into the same bytes, as tarfile's names
    raw = bytearray(archive([info("./tree/x", data=b"")]))
    raw[7] = 0xFF  # ./tree/\xff
    raw[148:156] = b"%06o\0 " % (256 + sum(raw[:148]) + sum(raw[156:512]))
    assert read([bytes(raw)])[0] == ("member", m("./tree/\udcff"))


def test_gnu_tar_archives_read_as_tarfile_reads_them(tmp_path: Path) -> None:
    # the archives cp reads come from GNU tar or busybox tar -c (commands/cp/procroot.py: tar_argv)
    tar = shutil.which("tar")
    assert tar is not None
    if b"GNU tar" not in subprocess.run([tar, "--version"], capture_output=True, check=True).stdout:
        pytest.skip("not GNU tar (macOS: bsdtar); the tarfile-written archives above cover the formats")
    top = tmp_path / "item"
    deep = top.joinpath(*["d" * 60] * 3)
    deep.mkdir(parents=True)
    (deep / ("f" * 90)).write_bytes(b"deep\n" * 300)
    (top / "empty").write_bytes(b"")
    (top / "link").symlink_to("x" * 150)
    (top / "hard").hardlink_to(deep / ("f" * 90))
    for fmt in ("gnu", "posix", "ustar", "v7"):
        argv = [tar, "-C", str(tmp_path), f"--format={fmt}", "-cf", "-", "./item"]
        done = subprocess.run(argv, capture_output=True)
        if fmt in ("ustar", "v7"):  # names too long for them: tar says so and leaves those out
            assert done.returncode == 2, done.stderr
        else:
            assert done.returncode == 0, done.stderr
        data = done.stdout
        expected = as_tarfile_reads(data)
        assert read([data]) == expected and len(expected) >= 4
        assert read([data[i:i + 1000] for i in range(0, len(data), 1000)]) == expected


# ------------------------------------------------------------------------------------------ damaged streams


def test_a_cut_stream_is_an_error_wherever_it_is_cut() -> None:
    data = archive(SMALL)
    between = []  # offsets between members (padding included): tarfile, too, takes these as the end
    for cut in range(len(data)):
        reader = TarReader(Recorder())
        reader.feed(data[:cut])
        if reader.finished:  # the end-of-archive block was read: what follows does not matter
            reader.end()
            continue
        if reader.members and not (reader._content or reader._padding or reader._header or reader._meta
                                   or reader._long):
            between.append(cut)
            reader.end()
            continue
        with pytest.raises(TarFormatError) as caught:
            reader.end()
        assert str(caught.value) == ("empty file" if cut == 0 else "unexpected end of data"), cut
    # one after each member (a longname or longlink member belongs to the member after it)
    assert len(between) == len(SMALL)


def test_the_end_of_archive_block_ends_it_and_what_follows_is_ignored() -> None:
    data = archive(SMALL[:3])
    recorder = Recorder()
    reader = TarReader(recorder)
    reader.feed(data + b"garbage that is not tar" * 100)
    reader.end()
    assert (reader.finished, recorder.events) == (True, as_tarfile_reads(data))


def test_a_bad_checksum_is_damage() -> None:
    data = bytearray(archive(SMALL[:3]))
    data[512 + 10] ^= 1  # a byte of the second header's name
    recorder = Recorder()
    reader = TarReader(recorder)
    with pytest.raises(TarFormatError, match="^bad checksum$"):
        reader.feed(bytes(data))
    assert (reader.last, recorder.events) == ("./tree", [("member", m("./tree", b"5", mode=0o755))])


def test_not_a_number_is_damage() -> None:
    data = bytearray(archive([info("./a", data=b"1")]))
    data[124:136] = b"12345678zz1\0"
    data[148:156] = b"%06o\0 " % (256 + sum(data[:148]) + sum(data[156:512]))
    with pytest.raises(TarFormatError, match="^invalid header$"):
        read([bytes(data)])


def test_a_huge_longname_is_damage_not_memory() -> None:
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = b"L", tarstream.MAX_META + 1
    with pytest.raises(TarFormatError, match=r"^L header of 1048577 bytes$"):
        read([header.tobuf(tarfile.GNU_FORMAT)])


@pytest.mark.parametrize("record", [b"x path=a\n", b"99 path=a\n", b"9 patha\n", b"8 path=a"])
def test_bad_pax_records_are_damage(record: bytes) -> None:
    with pytest.raises(TarFormatError, match="^invalid header$"):
        tarstream.pax_records(record)


def test_base_256_numbers_hold_sizes_octal_cannot() -> None:
    # GNU tar writes a size of 8 GiB or more in base 256
    assert tarstream._number(b"\x80" + (8 << 30).to_bytes(11, "big")) == 8 << 30
    assert tarstream._number(b"00000001750\0") == 0o1750
    assert tarstream._number(b"     1750 \0") == 0o1750
    assert BLOCK == 512
