"""cp into a container, end to end: a distroless target running as uid 65532 (no shell, tar or coreutils in its
image) under Pod Security restricted, written through /proc/PID/root by a debug container running as its uid and
gid; checked by downloading back (bytes), and by `stat` through the debug container (owner)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from kubectl_debugx import summary as schema

from .helpers import (
    debugx,
    debugx_containers,
    processes,
    start_debugx,
    wait_for_line,
    wait_until,
)
from .test_cp import RESTRICTED_SC, UID, distroless_image

pytestmark = pytest.mark.e2e
IDLE = "import time; print('ready', flush=True); time.sleep(3600)"


def target(e2e, make_pod, namespace: str, read_only: bool = False) -> None:
    sc = {**RESTRICTED_SC, **({"readOnlyRootFilesystem": True} if read_only else {})}
    make_pod(namespace, "app", containers=[{"name": "app", "image": distroless_image(e2e),
                                            "command": ["python3", "-c", IDLE], "securityContext": sc}])


def tree(root: Path) -> dict[str, str]:
    """{relative name: sha256 of a file, or `-> TEXT` of a symlink} of a local folder."""
    out = {}
    for p in sorted(root.rglob("*")):
        name = str(p.relative_to(root))
        if p.is_symlink():
            out[name] = "-> " + os.readlink(p)
        elif p.is_file():
            out[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def owners(e2e, namespace: str, ec: str, path: str) -> set[str]:
    """uid:gid of everything below path, as the debug container (the target's own user) sees it."""
    r = e2e.kubectl("exec", "-n", namespace, "app", "-c", ec, "--", "find", f"/proc/1/root{path}",
                    "-exec", "stat", "-c", "%u:%g", "{}", "+")
    return set(r.stdout.split())


def make_local(tmp_path: Path) -> Path:
    src = tmp_path / "conf"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "big.bin").write_bytes(random.Random(11).randbytes(20 << 20))
    (src / "small.txt").write_bytes(b"hello\n")
    (src / "small.txt").chmod(0o640)
    (src / "rel-link").symlink_to("small.txt")
    (src / "abs-link").symlink_to("/etc/hostname")  # created as a link, never written through
    return src


def test_upload_a_folder_into_a_distroless_non_root_target(e2e, make_namespace, make_pod, tmp_path: Path):
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    target(e2e, make_pod, namespace)
    src = make_local(tmp_path)
    r = debugx(e2e, "cp", str(src), "app:/tmp/conf", "-n", namespace, "--summary", "json")
    assert r.returncode == 0, r.stderr.decode()
    summary = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert schema.check("cp", summary) == []
    assert (summary["filesWritten"], summary["filesVerified"], summary["symlinksWritten"],
            summary["directoriesWritten"], summary["bytesWritten"]) == (2, 2, 2, 2, (20 << 20) + 6)
    ec = summary["debugContainer"]
    # downloaded back: the same bytes, the links as links
    back = tmp_path / "back"
    r = debugx(e2e, "cp", "app:/tmp/conf", str(back), "-n", namespace)
    assert r.returncode == 0, r.stderr.decode()
    assert tree(back) == tree(src)
    assert (back / "small.txt").stat().st_mode & 0o777 == 0o640
    # owned by the target's uid and gid (65532:65532: the distroless image's nonroot group)
    assert owners(e2e, namespace, ec, "/tmp/conf") == {f"{UID}:{UID}"}
    # again: /tmp/conf exists, so the folder would go to /tmp/conf/conf: a new name, written
    r = debugx(e2e, "cp", str(src), "app:/tmp/conf", "-n", namespace)
    assert r.returncode == 0, r.stderr.decode()
    # a file that exists is refused without --force, one line naming it, nothing written
    (src / "small.txt").write_bytes(b"changed\n")
    r = debugx(e2e, "cp", str(src / "small.txt"), "app:/tmp/conf", "-n", namespace)
    assert r.returncode == 8, r.stderr.decode()
    assert r.stderr.decode().splitlines()[-1] == \
        "error: /tmp/conf/small.txt exists in the container: use --force to overwrite"
    r = debugx(e2e, "cp", "app:/tmp/conf/small.txt", "-", "-n", namespace)
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        assert tar.extractfile("./small.txt").read() == b"hello\n"  # type: ignore[union-attr]
    # with --force: replaced
    r = debugx(e2e, "cp", "--force", str(src / "small.txt"), "app:/tmp/conf", "-n", namespace)
    assert r.returncode == 0, r.stderr.decode()
    r = debugx(e2e, "cp", "app:/tmp/conf/small.txt", str(tmp_path / "small.back"), "-n", namespace)
    assert r.returncode == 0 and (tmp_path / "small.back").read_bytes() == b"changed\n", r.stderr.decode()
    # no temporary folder stays, no tar runs
    listing = e2e.kubectl("exec", "-n", namespace, "app", "-c", ec, "--", "ls", "-a", "/proc/1/root/tmp",
                          "/proc/1/root/tmp/conf").stdout
    assert ".debugx-upload" not in listing, listing
    assert "tar" not in [os.path.basename(line.split()[1])
                         for line in processes(e2e, namespace, "app", ec).splitlines()[1:]]


def test_upload_a_tar_stream_from_stdin(e2e, make_namespace, make_pod, tmp_path: Path):
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    target(e2e, make_pod, namespace)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in (("./a.txt", b"a\n"), ("./d/b.txt", b"b\n")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        link = tarfile.TarInfo("./esc")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
        # through the stream's own symlink: skipped, never written through
        info = tarfile.TarInfo("esc/passwd")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"bad\n"))
    r = debugx(e2e, "cp", "-", "app:/tmp", "-n", namespace, input=data.getvalue())
    assert r.returncode == 0, r.stderr.decode()
    assert "Skipped esc/passwd: a name outside the folder or below a symlink" in r.stderr.decode()
    back = tmp_path / "back"
    back.mkdir()
    for name in ("a.txt", "d", "esc"):
        r = debugx(e2e, "cp", f"app:/tmp/{name}", str(back), "-n", namespace)
        assert r.returncode == 0, r.stderr.decode()
    assert tree(back) == {"a.txt": hashlib.sha256(b"a\n").hexdigest(), "d/b.txt": hashlib.sha256(b"b\n").hexdigest(),
                          "esc": "-> /etc"}
    # the same stream again: refused as a whole, without --force
    r = debugx(e2e, "cp", "-", "app:/tmp", "-n", namespace, input=data.getvalue())
    assert r.returncode == 8, r.stderr.decode()
    assert r.stderr.decode().splitlines()[-1] == "error: /tmp/a.txt exists in the container: use --force to overwrite"


def test_upload_into_a_read_only_root_is_refused_in_one_line(e2e, namespace, make_pod, tmp_path: Path):
    target(e2e, make_pod, namespace, read_only=True)
    (tmp_path / "f").write_bytes(b"x\n")
    r = debugx(e2e, "cp", str(tmp_path / "f"), "app:/tmp/f", "-n", namespace)
    assert r.returncode == 8, r.stderr.decode()
    errors = [line for line in r.stderr.decode().splitlines() if line.startswith("error:")]
    assert errors == ["error: cannot write into /tmp in the container: read-only file system "
                      "(readOnlyRootFilesystem: only a volume is writable there)"], r.stderr.decode()
    r = debugx(e2e, "cp", str(tmp_path / "f"), "app:/nowhere/f", "-n", namespace)
    assert r.returncode == 3, r.stderr.decode()
    assert r.stderr.decode().splitlines()[-1].startswith("error: folder /nowhere does not exist in the container")


def test_upload_ctrl_c_leaves_nothing_under_the_final_name(e2e, namespace, make_pod, tmp_path: Path):
    target(e2e, make_pod, namespace)
    big = tmp_path / "huge"
    with big.open("wb") as f:
        f.truncate(4 << 30)  # sparse: 4 GB to send, long enough to be interrupted
    proc = start_debugx(e2e, "cp", str(big), "app:/tmp/huge", "-n", namespace, "--summary", "json",
                        stdout=subprocess.PIPE)
    wait_for_line(proc, "Sent: ")  # the progress line, once the copy has taken a second
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    ec = summary["debugContainer"]
    assert summary["stoppedBy"] == "SIGINT"
    listing = e2e.kubectl("exec", "-n", namespace, "app", "-c", ec, "--", "ls", "-a", "/proc/1/root/tmp").stdout
    assert "huge" not in listing and ".debugx-upload" not in listing, listing
    wait_until(lambda: "tar" not in [os.path.basename(line.split()[1]) for line in
                                     processes(e2e, namespace, "app", ec).splitlines()[1:]], "tar stopped", 10)
    assert len(debugx_containers(e2e, namespace, "app")) <= 2


def test_upload_kill_9_leaves_no_temporary_folder_and_no_tar(e2e, namespace, make_pod, tmp_path: Path):
    """A kill -9 of the client mid-copy: nothing under the final name, and the temporary folder and tar go too
    (the tether apart stops tar and removes the folder when the client's exec closes)."""
    target(e2e, make_pod, namespace)
    big = tmp_path / "huge"
    with big.open("wb") as f:
        f.truncate(4 << 30)
    proc = start_debugx(e2e, "cp", str(big), "app:/tmp/huge", "-n", namespace)
    wait_for_line(proc, "Sent: ")

    def tmp_listing() -> tuple[str, list[str]]:
        """/tmp of the target, as the debug container that may read it (the one matching its gid) sees it."""
        for ec in debugx_containers(e2e, namespace, "app"):
            r = e2e.kubectl("exec", "-n", namespace, "app", "-c", ec, "--", "ls", "-a", "/proc/1/root/tmp",
                            check=False)
            if r.returncode == 0:
                tools = [os.path.basename(line.split()[1]) for line in
                         processes(e2e, namespace, "app", ec).splitlines()[1:]]
                return r.stdout, tools
        raise AssertionError("no debug container can read the target's /tmp")

    names, _ = tmp_listing()
    assert ".debugx-upload-" in names, names  # the copy is under way, into its temporary folder
    proc.kill()
    proc.communicate(timeout=30)

    def left() -> list[str]:
        names, tools = tmp_listing()
        return [n for n in names.split() if "huge" in n or ".debugx-upload" in n] + [t for t in tools if t == "tar"]

    wait_until(lambda: left() == [], "the temporary folder and tar gone", 30)
