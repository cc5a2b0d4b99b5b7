"""cp, end to end: a target running as uid 65532 whose image has no shell, tar or coreutils (on the test
cluster an image name holding "distroless", tests/cluster/images.py; on a real cluster
DEBUGX_E2E_DISTROLESS_IMAGE, a python3 image without a shell such as gcr.io/distroless/python3-debian12)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from kubectl_debugx import summary as schema

from .helpers import debugx, debugx_containers, processes, start_debugx, wait_for_line, wait_until

pytestmark = pytest.mark.e2e
UID = 65532
WRITER = r"""
import hashlib, json, os, random, time
root = '/tmp/tree'
os.makedirs(root + '/sub', exist_ok=True)
def w(p, b, mode=0o644):
    with open(p, 'wb') as f:
        f.write(b)
    os.chmod(p, mode)
w(root + '/small.txt', b'hello\n', 0o640)
os.utime(root + '/small.txt', (1600000000, 1600000000))
w(root + '/sub/big.bin', random.Random(7).randbytes(20 << 20))
w(root + '/vol/v.txt', b'in the volume\n')
os.symlink('small.txt', root + '/rel-link')
os.symlink('/etc/hostname', root + '/abs-link')
os.mkfifo(root + '/fifo')
os.makedirs('/tmp/slow')
w('/tmp/slow/a.txt', b'a\n')
with open('/tmp/slow/huge', 'wb') as f:
    f.truncate(8 << 30)  # sparse: 8 GB of zeros to read, long enough to be interrupted
sums = {}
for d, _, files in os.walk(root):
    for name in files:
        p = os.path.join(d, name)
        if os.path.isfile(p) and not os.path.islink(p):
            sums[os.path.relpath(p, root)] = hashlib.sha256(open(p, 'rb').read()).hexdigest()
print(json.dumps(sums), flush=True)
time.sleep(3600)
"""


def distroless_image(e2e) -> str:
    image = os.environ.get("DEBUGX_E2E_DISTROLESS_IMAGE")
    if image:
        return image
    if e2e.cluster is None:
        pytest.skip("set DEBUGX_E2E_DISTROLESS_IMAGE (a python3 image without shell, e.g. "
                    "gcr.io/distroless/python3-debian12) to run cp's e2e tests on a real cluster")
    return "gcr.io/distroless/python3-debian12"


RESTRICTED_SC = {"runAsNonRoot": True, "runAsUser": UID, "allowPrivilegeEscalation": False,
                 "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def make_target(e2e, make_pod, namespace: str, root_only: bool = True) -> dict[str, str]:
    """The distroless writer as uid 65532; returns {relative path: sha256} of what it wrote."""
    # /tmp/tree and /tmp/tree/vol are both emptyDirs: the runtime creates mount points as root, so the writer
    # (uid 65532) can only write where a world-writable emptyDir is
    spec: dict = {"volumes": [{"name": "tree", "emptyDir": {}}, {"name": "vol", "emptyDir": {}}],
                  "containers": [{"name": "app", "image": distroless_image(e2e),
                                  "command": ["python3", "-c", WRITER], "securityContext": RESTRICTED_SC,
                                  "volumeMounts": [{"name": "tree", "mountPath": "/tmp/tree"},
                                                   {"name": "vol", "mountPath": "/tmp/tree/vol"}]}]}
    if root_only:
        spec["volumes"].append({"name": "secret", "emptyDir": {}})
        spec["containers"][0]["volumeMounts"].append({"name": "secret", "mountPath": "/secret"})
        spec["initContainers"] = [{"name": "init", "image": e2e.image, "securityContext": {"runAsUser": 0},
                                   "command": ["sh", "-c", "echo s3cret > /secret/root-only && "
                                               "chmod 600 /secret/root-only"],
                                   "volumeMounts": [{"name": "secret", "mountPath": "/secret"}]}]
    make_pod(namespace, "app", **spec)

    def written() -> str:
        return e2e.kubectl("logs", "-n", namespace, "app", "-c", "app", check=False).stdout.strip()

    return json.loads(wait_until(written, "the writer's checksums", 60))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cp_directory_from_distroless_non_root_target(e2e, namespace, make_pod, tmp_path: Path):
    sums = make_target(e2e, make_pod, namespace)
    out = tmp_path / "tree"
    r = debugx(e2e, "cp", "app:/tmp/tree", str(out), "-n", namespace, "--summary", "json")
    assert r.returncode == 0, r.stderr.decode()
    got = {str(p.relative_to(out)): sha(p) for p in out.rglob("*") if p.is_file() and not p.is_symlink()}
    assert got == sums
    assert os.readlink(out / "rel-link") == "small.txt"
    assert os.readlink(out / "abs-link") == "/etc/hostname"  # kept as text, never followed
    assert not (out / "fifo").exists()
    assert "Skipped fifo: FIFO" in r.stderr.decode()
    assert (out / "small.txt").stat().st_mode & 0o777 == 0o640
    assert (out / "small.txt").stat().st_mtime == 1600000000
    summary = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert schema.check("cp", summary) == []
    assert summary["runAsUser"] == UID and summary["filesVerified"] == len(sums) == summary["filesWritten"]
    # The pod names no runAsGroup: the target's gid is its image's (65532, distroless' /etc/passwd), the debug
    # image's for uid 65532 is 0, and the kernel wants both to match; unless the pod's status gives the gid, a
    # first container (65532:0) learns it and a second one (65532:65532) reads. Later runs reuse them.
    ec = summary["debugContainer"]
    added = debugx_containers(e2e, namespace, "app")
    assert ec in added and len(added) <= 2, added
    if len(added) == 2:
        assert f"Container app runs as gid {UID} (its image's; the pod spec names none)" in r.stderr.decode()
    pod = json.loads(e2e.kubectl("get", "pod", "-n", namespace, "app", "-o", "json").stdout)
    [spec] = [c for c in pod["spec"]["ephemeralContainers"] if c["name"] == ec]
    assert spec["securityContext"] == {"runAsUser": UID, "runAsGroup": UID, "runAsNonRoot": True,
                                       "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    # a single file, into an existing directory; again without --force is refused
    r = debugx(e2e, "cp", "app:/tmp/tree/sub/big.bin", str(tmp_path), "-n", namespace)
    assert r.returncode == 0, r.stderr.decode()
    assert sha(tmp_path / "big.bin") == sums["sub/big.bin"]
    r = debugx(e2e, "cp", "app:/tmp/tree/sub/big.bin", str(tmp_path), "-n", namespace)
    assert r.returncode == 8, r.stderr.decode()
    # LOCAL "-": the tar stream itself on stdout
    r = debugx(e2e, "cp", "app:/tmp/tree/small.txt", "-", "-n", namespace)
    assert r.returncode == 0, r.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        [member] = tar.getmembers()
        assert (member.name, member.mode, member.mtime) == ("./small.txt", 0o640, 1600000000)
        assert tar.extractfile(member).read() == b"hello\n"  # type: ignore[union-attr]
    assert debugx_containers(e2e, namespace, "app") == added  # every later run reused the matching container


def test_cp_root_only_file_is_refused_naming_the_profile(e2e, namespace, make_pod, tmp_path: Path):
    make_target(e2e, make_pod, namespace)
    r = debugx(e2e, "cp", "app:/secret/root-only", str(tmp_path / "x"), "-n", namespace)
    assert r.returncode == 4, r.stderr.decode()
    assert "--profile sysadmin" in r.stderr.decode()
    assert not (tmp_path / "x").exists()


def test_cp_in_a_restricted_namespace(e2e, make_namespace, make_pod, tmp_path: Path):
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    sums = make_target(e2e, make_pod, namespace, root_only=False)
    r = debugx(e2e, "cp", "app:/tmp/tree/sub/big.bin", str(tmp_path / "big"), "-n", namespace)
    assert r.returncode == 0, r.stderr.decode()
    assert sha(tmp_path / "big") == sums["sub/big.bin"]


def test_cp_ctrl_c_keeps_finished_files_and_stops_tar(e2e, namespace, make_pod, tmp_path: Path):
    make_target(e2e, make_pod, namespace, root_only=False)
    out = tmp_path / "slow"
    proc = start_debugx(e2e, "cp", "app:/tmp/slow", str(out), "-n", namespace, "--summary", "json",
                        stdout=subprocess.PIPE)
    wait_for_line(proc, "Copying")
    wait_for_line(proc, "Copied: ")  # the progress line, once the copy has taken a second
    # a file being written has a name of its own until it is whole (.huge.debugx-partial-PID), so that not even
    # a kill -9 leaves a short file under the real name
    def partial() -> list[Path]:
        return list(out.glob(".huge.debugx-partial-*")) if out.is_dir() else []

    wait_until(lambda: any(p.stat().st_size > (50 << 20) for p in partial()), "copy underway", 60)
    assert not (out / "huge").exists()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    assert not (out / "huge").exists() and partial() == []  # the cut file is gone, under either name
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["filesVerified"] == summary["filesWritten"]
    if (out / "a.txt").exists():
        assert (out / "a.txt").read_bytes() == b"a\n"
    ec = summary["debugContainer"]
    programs = [line.split()[1] for line in processes(e2e, namespace, "app", ec).splitlines()[1:]]
    assert not [p for p in programs if os.path.basename(p) == "tar"], programs


def test_cp_as_kubectl_cp_is_typed(e2e, nginx_pod, tmp_path: Path):
    """kubectl cp's habits: NAMESPACE/POD:PATH; a LOCAL that exists refused before anything is created; a copy
    into a container (issue 23) in the same form."""
    namespace, pod = nginx_pod
    existing = tmp_path / "hosts"
    existing.write_bytes(b"mine\n")
    refused = debugx(e2e, "cp", f"{namespace}/{pod}:/etc/hosts", str(existing))
    assert refused.returncode != 0
    assert refused.stderr.decode().splitlines() == [f"error: {existing} exists: use --force to overwrite"]
    assert debugx_containers(e2e, namespace, pod) == [] and existing.read_bytes() == b"mine\n"
    # into the container (a root target: written as root), kubectl cp's NAMESPACE/POD:PATH form too
    upload = debugx(e2e, "cp", str(existing), f"{namespace}/{pod}:/tmp/hosts")
    assert upload.returncode == 0, upload.stderr.decode()
    written = e2e.kubectl("exec", "-n", namespace, pod, "--", "cat", "/tmp/hosts").stdout
    assert (written if isinstance(written, bytes) else written.encode()) == b"mine\n"
    copied = debugx(e2e, "cp", f"{namespace}/{pod}:/etc/hosts", str(tmp_path / "copy"))
    assert copied.returncode == 0, copied.stderr
    inside = e2e.kubectl("exec", "-n", namespace, pod, "--", "cat", "/etc/hosts").stdout
    assert (tmp_path / "copy").read_bytes() == (inside if isinstance(inside, bytes) else inside.encode())
