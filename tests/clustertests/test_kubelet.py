"""The test cluster's kubelet driven directly (no API server): real namespaces, capabilities, CRI logs.

Needs root (namespaces, mounts, veths). Skips with one line otherwise, fails instead under CI=true.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.cluster import podlogs
from tests.cluster.kubelet import ContainerNotFound, ContainerNotRunning, Kubelet

if os.geteuid() != 0:
    if os.environ.get("CI") == "true":
        pytest.fail("the kubelet tests need root (CI runs as root)", pytrace=False)
    pytest.skip("the kubelet tests need root (namespaces, mounts, veth pairs)", allow_module_level=True)

NGINX = "nginx:1.27"
DEBUG = "nicolaka/netshoot:v0.13"
CRI_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)) (stdout|stderr) ([PF]) (.*)$", re.S)
_names = itertools.count()


class Node:
    """A Kubelet plus what it reported: statuses per pod, in order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.statuses: dict[tuple[str, str], list[dict]] = {}
        self.cond = threading.Condition()
        self.kubelet = Kubelet("vm", root, "10.0.0.1", self._on_status)

    def _on_status(self, ns: str, name: str, status: dict) -> None:
        with self.cond:
            self.statuses.setdefault((ns, name), []).append(json.loads(json.dumps(status)))
            self.cond.notify_all()

    def status(self, ns: str, name: str) -> dict:
        with self.cond:
            return self.statuses[(ns, name)][-1]

    def wait(self, ns: str, name: str, pred, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                hist = self.statuses.get((ns, name)) or []
                if hist and pred(hist[-1]):
                    return hist[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timeout; last status: {json.dumps(hist[-1] if hist else None)}")
                self.cond.wait(left)

    def run(self, pod: dict) -> tuple[str, str]:
        self.kubelet.run_pod(pod)
        return pod["metadata"]["namespace"], pod["metadata"]["name"]

    def exec(self, ns: str, name: str, ctr: str, cmd: list[str], stdin: bytes | None = None,
             timeout: float = 20) -> tuple[int, bytes, bytes]:
        proc = self.kubelet.exec(ns, name, ctr, cmd)
        out, err = proc.communicate(stdin, timeout=timeout)
        return proc.returncode, out, err

    def delete(self, ns: str, name: str, grace: int = 2) -> None:
        gone = threading.Event()
        self.kubelet.delete_pod(ns, name, grace, gone.set)
        assert gone.wait(grace + 15), f"{ns}/{name} not gone"


def ctr_state(status: dict, name: str, key: str = "containerStatuses") -> dict:
    """The container's status; before the kubelet reports it, an empty one (so wait predicates never raise)."""
    for cs in status.get(key) or []:
        if cs["name"] == name:
            return cs
    return {"state": {}}


def running(name: str, key: str = "containerStatuses"):
    return lambda st: "running" in ctr_state(st, name, key).get("state", {})


def pod(containers: list[dict], **spec) -> dict:
    n = next(_names)
    return {"metadata": {"name": f"p{n}", "namespace": f"ns{n}", "uid": str(uuid.uuid4())},
            "spec": {"containers": containers, **spec}}


def sleeper(name: str = "main", seconds: int = 600, **extra) -> dict:
    return {"name": name, "image": DEBUG, "command": ["sleep", str(seconds)], **extra}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = Node(tmp_path_factory.mktemp("node"))
    n.kubelet.start()
    yield n
    n.kubelet.stop()


@pytest.fixture
def nginx(node):
    p = pod([{"name": "nginx", "image": NGINX}])
    ns, name = node.run(p)
    node.wait(ns, name, lambda st: st["phase"] == "Running" and running("nginx")(st))
    # Running means started, as on a real node, not listening yet: wait for the port before the tests use it.
    node.exec(ns, name, "nginx", ["curl", "-s", "-o", "/dev/null", "--retry", "20", "--retry-connrefused",
                                  "--retry-delay", "1", "--retry-max-time", "20", "http://127.0.0.1/"], timeout=30)
    yield p
    node.delete(ns, name)


def add_ephemeral(node: Node, p: dict, ctr: dict) -> None:
    p["spec"].setdefault("ephemeralContainers", []).insert(0, ctr)
    node.kubelet.sync_ephemeral(p)
    ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
    node.wait(ns, name, running(ctr["name"], "ephemeralContainerStatuses"))


# ---------------------------------------------------------------------------------------------------------


def test_start_is_fast(tmp_path):
    k = Kubelet("vm", tmp_path, "10.0.0.1", lambda *a: None)
    t0 = time.monotonic()
    k.start()
    elapsed = time.monotonic() - t0
    k.stop()
    assert elapsed < 0.5


def test_nginx_runs_and_answers_curl_from_inside(node, nginx):
    ns, name = nginx["metadata"]["namespace"], nginx["metadata"]["name"]
    st = node.status(ns, name)
    cs = ctr_state(st, "nginx")
    assert re.fullmatch(r"containerd://[0-9a-f]{64}", cs["containerID"])
    assert cs["image"] == "docker.io/library/nginx:1.27" and cs["imageID"].startswith("sha256:")
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
    assert [c["type"] for c in st["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in st["conditions"])
    assert re.fullmatch(r"10\.244\.0\.\d+", st["podIP"]) and st["hostIP"] == "10.0.0.1"
    # the status history went through ContainerCreating
    hist = node.statuses[(ns, name)]
    assert ctr_state(hist[0], "nginx")["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert hist[0]["phase"] == "Pending"
    rc, out, err = node.exec(ns, name, "nginx", ["curl", "-s", "http://127.0.0.1/"])
    assert rc == 0 and b"Welcome to nginx!" in out, err
    rc, out, _ = node.exec(ns, name, "nginx", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                               f"http://{st['podIP']}/"])
    assert out == b"200"
    rc, out, _ = node.exec(ns, name, "nginx", ["hostname"])
    assert out.strip() == name.encode()
    rc, out, _ = node.exec(ns, name, "nginx", ["sh", "-c", "tail -1 /etc/hosts; cat /etc/hostname"])
    assert out.decode() == f"{st['podIP']}\t{name}\n{name}\n"
    # nginx is PID 1 of the container, workers run unprivileged like the official image's
    rc, out, _ = node.exec(ns, name, "nginx", ["ps", "-o", "pid=,user=,args=", "-e"])
    lines = out.decode().splitlines()
    assert lines[0].split()[0] == "1" and "nginx: master process" in lines[0]
    assert sum("nginx: worker process" in line for line in lines) == 2


def test_exec_errors_and_shared_tmp(node, nginx):
    ns, name = nginx["metadata"]["namespace"], nginx["metadata"]["name"]
    with pytest.raises(ContainerNotFound):
        node.kubelet.exec(ns, name, "nosuch", ["true"])
    with pytest.raises(FileNotFoundError, match="executable file not found in \\$PATH"):
        node.kubelet.exec(ns, name, "nginx", ["nosuchcommand"])
    rc, out, err = node.exec(ns, name, "nginx", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (rc, out, err) == (3, b"out\n", b"err\n")
    # a PID file written by one exec is read by the next (same mount namespace, private /tmp)
    node.exec(ns, name, "nginx", ["sh", "-c", "echo $$ > /tmp/x.pid"])
    rc, out, _ = node.exec(ns, name, "nginx", ["cat", "/tmp/x.pid"])
    assert rc == 0 and out.strip().isdigit()
    assert not Path("/tmp/x.pid").exists() or Path("/tmp/x.pid").read_bytes() != out
    # stdin, binary output intact
    rc, out, _ = node.exec(ns, name, "nginx", ["cat"], stdin=bytes(range(256)) * 1000)
    assert out == bytes(range(256)) * 1000
    # the exec'd process outlives its client: close the pipes, it keeps running
    proc = node.kubelet.exec(ns, name, "nginx", ["sh", "-c", "echo $$ > /tmp/bg.pid; exec sleep 30"])
    time.sleep(0.3)
    for s in (proc.stdin, proc.stdout, proc.stderr):
        s.close()
    time.sleep(0.2)
    rc, out, _ = node.exec(ns, name, "nginx", ["sh", "-c", "kill -0 $(cat /tmp/bg.pid) && echo alive"])
    assert out == b"alive\n"
    node.exec(ns, name, "nginx", ["sh", "-c", "kill -INT $(cat /tmp/bg.pid)"])
    assert proc.wait(5) == 130


def test_exec_tty_and_throughput(node, nginx):
    ns, name = nginx["metadata"]["namespace"], nginx["metadata"]["name"]
    proc = node.kubelet.exec(ns, name, "nginx", ["sh", "-c", "tty; exit 4"], tty=True)
    out, _ = proc.communicate(timeout=10)
    assert out.startswith(b"/dev/pts/") and proc.returncode == 4
    # bulk stdout comes straight from the process's pipe
    size = 256 << 20
    t0 = time.monotonic()
    proc = node.kubelet.exec(ns, name, "nginx", ["head", "-c", str(size), "/dev/zero"])
    n = 0
    while chunk := proc.stdout.read1(1 << 20):
        n += len(chunk)
    assert proc.wait(10) == 0 and n == size
    assert time.monotonic() - t0 < 10


def test_start_error_and_empty_dir(node):
    p = pod([{"name": "bad", "image": DEBUG, "command": ["nosuchcommand"]},
             sleeper("a", volumeMounts=[{"name": "shared", "mountPath": "/data"}]),
             sleeper("b", volumeMounts=[{"name": "shared", "mountPath": "/data"}])],
            restartPolicy="Never", volumes=[{"name": "shared", "emptyDir": {}}])
    ns, name = node.run(p)
    st = node.wait(ns, name, lambda s: "terminated" in ctr_state(s, "bad")["state"] and running("a")(s)
                   and running("b")(s))
    term = ctr_state(st, "bad")["state"]["terminated"]
    assert term["exitCode"] == 128 and term["reason"] == "StartError"
    assert 'exec: "nosuchcommand": executable file not found in $PATH' in term["message"]
    node.exec(ns, name, "a", ["sh", "-c", "echo shared > /data/f"])
    assert node.exec(ns, name, "b", ["cat", "/data/f"])[1] == b"shared\n"
    node.delete(ns, name)


def test_ephemeral_target_sees_target_processes(node, nginx):
    ns, name = nginx["metadata"]["namespace"], nginx["metadata"]["name"]
    add_ephemeral(node, nginx, {"name": "debugx-ps", "image": DEBUG, "command": ["sleep", "600"],
                                "targetContainerName": "nginx"})
    rc, out, _ = node.exec(ns, name, "debugx-ps", ["ps", "-e", "-o", "args="])
    assert b"nginx: master process" in out and b"sleep 600" in out
    st = node.status(ns, name)
    ec = ctr_state(st, "debugx-ps", "ephemeralContainerStatuses")
    assert ec["ready"] is False and "started" not in ec
    # one that exits is Completed, never restarted, and cannot be exec'd into
    add_done = {"name": "debugx-done1", "image": DEBUG, "command": ["true"], "targetContainerName": "nginx"}
    nginx["spec"]["ephemeralContainers"].insert(0, add_done)
    node.kubelet.sync_ephemeral(nginx)
    st = node.wait(ns, name, lambda s: "terminated" in ctr_state(
        s, "debugx-done1", "ephemeralContainerStatuses").get("state", {}))
    term = ctr_state(st, "debugx-done1", "ephemeralContainerStatuses")["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    with pytest.raises(ContainerNotRunning):
        node.kubelet.exec(ns, name, "debugx-done1", ["true"])
    names = [c["name"] for c in st["ephemeralContainerStatuses"]]
    assert names == sorted(names)


def test_tcpdump_with_default_caps_captures_curl(node, nginx, tmp_path):
    ns, name = nginx["metadata"]["namespace"], nginx["metadata"]["name"]
    add_ephemeral(node, nginx, {"name": "debugx-cap", "image": DEBUG, "command": ["sleep", "600"],
                                "targetContainerName": "nginx"})
    dump = node.kubelet.exec(ns, name, "debugx-cap",
                             ["sh", "-c", "echo $$ > /tmp/td.pid; exec tcpdump -i any -U -w - --immediate-mode "
                                          "tcp port 80"])
    time.sleep(1.0)
    for i in range(3):
        rc, _, _ = node.exec(ns, name, "nginx", ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1/?req={i}"])
        assert rc == 0
    time.sleep(0.5)
    node.exec(ns, name, "debugx-cap", ["sh", "-c", "kill -INT $(cat /tmp/td.pid)"])
    pcap, err = dump.communicate(timeout=10)
    assert b"packets captured" in err, err
    path = tmp_path / "cap.pcap"
    path.write_bytes(pcap)
    res = subprocess.run(["tshark", "-r", str(path), "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["/?req=0", "/?req=1", "/?req=2"]


def test_strace_needs_sys_ptrace(node, nginx):
    ns, name = nginx["metadata"]["namespace"], nginx["metadata"]["name"]
    add_ephemeral(node, nginx, {"name": "debugx-noptrace", "image": DEBUG, "command": ["sleep", "600"],
                                "targetContainerName": "nginx"})
    add_ephemeral(node, nginx, {"name": "debugx-ptrace", "image": DEBUG, "command": ["sleep", "600"],
                                "targetContainerName": "nginx",
                                "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}})
    rc, out, err = node.exec(ns, name, "debugx-noptrace", ["strace", "-p", "1"], timeout=10)
    assert rc != 0 and b"Operation not permitted" in err, err
    proc = node.kubelet.exec(ns, name, "debugx-ptrace",
                             ["sh", "-c", "echo $$ > /tmp/st.pid; exec strace -f -p 1"])
    time.sleep(1.0)
    node.exec(ns, name, "nginx", ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1/"])
    time.sleep(0.5)
    node.exec(ns, name, "debugx-ptrace", ["sh", "-c", "kill -INT $(cat /tmp/st.pid)"])
    _, err = proc.communicate(timeout=10)
    assert b"Process 1 attached" in err and b"rt_sigsuspend" in err and b"detached" in err, err[-2000:]
    # nginx survived the detach
    rc, out, _ = node.exec(ns, name, "nginx", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                               "http://127.0.0.1/"])
    assert out == b"200"


def test_capabilities_enforced(node):
    p = pod([sleeper("dflt"), sleeper("dropall", securityContext={"capabilities": {"drop": ["ALL"]}}),
             sleeper("netadmin", securityContext={"capabilities": {"add": ["NET_ADMIN"], "drop": ["KILL"]}}),
             sleeper("priv", securityContext={"privileged": True}),
             sleeper("sysres", securityContext={"capabilities": {"add": ["SYS_RESOURCE", "SYS_PTRACE"]}})])
    ns, name = node.run(p)
    node.wait(ns, name, lambda st: st["phase"] == "Running" and all(
        "running" in c["state"] for c in st["containerStatuses"]))

    def caps(ctr: str) -> dict[str, int]:
        _, out, _ = node.exec(ns, name, ctr, ["grep", "^Cap", "/proc/self/status"])
        return {k: int(v, 16) for k, v in (line.split(":\t") for line in out.decode().splitlines())}

    default = 0xA80425FB  # containerd's default set
    assert caps("dflt")["CapEff"] == default and caps("dflt")["CapBnd"] == default
    assert caps("dflt")["CapInh"] == default
    assert caps("dropall")["CapEff"] == 0 and caps("dropall")["CapBnd"] == 0
    na = caps("netadmin")["CapEff"]
    assert na & (1 << 12) and not na & (1 << 5)
    with open("/proc/self/status") as f:
        host_bnd = int(next(line for line in f if line.startswith("CapBnd")).split()[1], 16)
    assert caps("priv")["CapEff"] == host_bnd
    # a capability the kubelet itself lacks (this VM has no CAP_SYS_RESOURCE) is left out, not an error
    assert caps("sysres")["CapEff"] == (default | 1 << 19 | 1 << 24) & host_bnd
    rc, _, err = node.exec(ns, name, "dflt", ["ip", "addr", "add", "10.9.9.9/32", "dev", "lo"])
    assert rc != 0 and b"Operation not permitted" in err
    rc, _, err = node.exec(ns, name, "netadmin", ["ip", "addr", "add", "10.9.9.9/32", "dev", "lo"])
    assert rc == 0, err
    node.delete(ns, name)


def test_run_as_user(node):
    p = pod([sleeper("pod-level"), sleeper("override", securityContext={"runAsUser": 2000, "runAsGroup": 3000})],
            securityContext={"runAsUser": 1000})
    ns, name = node.run(p)
    node.wait(ns, name, lambda st: st["phase"] == "Running" and all(
        "running" in c["state"] for c in st["containerStatuses"]))
    _, out, _ = node.exec(ns, name, "pod-level", ["id", "-u"])
    assert out == b"1000\n"
    _, out, _ = node.exec(ns, name, "override", ["sh", "-c", "id -u; id -g; grep CapEff /proc/self/status"])
    uid, gid, capeff = out.decode().splitlines()
    assert (uid, gid) == ("2000", "3000")
    assert int(capeff.split()[1], 16) == 0  # non-root: capabilities not effective, as on a real node
    _, out, _ = node.exec(ns, name, "override", ["ps", "-o", "user=", "-p", "1"])
    assert out.strip() == b"2000"
    node.delete(ns, name)
    # runAsNonRoot without a user: every image here runs as root, so the kubelet refuses (as a real one)
    p = pod([sleeper("nonroot", securityContext={"runAsNonRoot": True})])
    ns, name = node.run(p)
    st = node.wait(ns, name, lambda s: "CreateContainerConfigError" in json.dumps(s))
    assert ctr_state(st, "nonroot")["state"]["waiting"]["message"] == (
        f'container has runAsNonRoot and image will run as root (pod: "{name}_{ns}({p["metadata"]["uid"]})", '
        "container: nonroot)")
    node.delete(ns, name)


def read_records(path: Path) -> list[tuple[str, str, bytes]]:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    out = []
    for line in data.split(b"\n")[:-1]:
        m = CRI_LINE.match(line)
        assert m, line[:100]
        out.append((m.group(4).decode(), m.group(5).decode(), m.group(6)))
    return out


def test_cri_log_lines_and_split(node):
    script = ("echo first; echo err >&2; head -c 16383 /dev/zero | tr '\\0' a; echo; "
              "head -c 16384 /dev/zero | tr '\\0' b; echo; head -c 16385 /dev/zero | tr '\\0' c; echo; "
              "head -c 40000 /dev/zero | tr '\\0' d; echo; echo; printf no-newline-at-exit")
    p = pod([{"name": "w", "image": DEBUG, "command": ["sh", "-c", script]}], restartPolicy="Never")
    ns, name = node.run(p)
    st = node.wait(ns, name, lambda st: st["phase"] == "Succeeded")
    term = ctr_state(st, "w")["state"]["terminated"]
    assert term["reason"] == "Completed" and term["exitCode"] == 0
    assert [c["status"] for c in st["conditions"] if c["type"] == "Ready"] == ["False"]
    uid = p["metadata"]["uid"]
    logdir = node.root / "var/log/pods" / f"{ns}_{name}_{uid}" / "w"
    path = node.kubelet.log_path(ns, name, "w")
    assert path == logdir / "0.log"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert oct(logdir.stat().st_mode & 0o777) == "0o755"
    assert oct((node.root / "var/log/pods").stat().st_mode & 0o777) == "0o750"
    recs = read_records(path)
    stdout = [(tag, c) for s, tag, c in recs if s == "stdout"]
    assert ("stderr", "F", b"err") in recs
    assert stdout == [
        ("F", b"first"), ("F", b"a" * 16383), ("F", b"b" * 16384), ("P", b"c" * 16384), ("F", b"c"),
        ("P", b"d" * 16384), ("P", b"d" * 16384), ("F", b"d" * 7232), ("F", b""), ("P", b"no-newline-at-exit"),
    ]
    ts = CRI_LINE.match(path.read_bytes().split(b"\n")[0]).group(1).decode()
    assert not re.search(r"\.\d*0(Z|[+-])", ts)  # Go's RFC3339Nano drops trailing zeros
    # /var/log/containers symlink: POD_NS_CTR-ID.log -> absolute node path of N.log
    cid = ctr_state(st, "w")["containerID"].split("//")[1]
    link = node.root / "var/log/containers" / f"{name}_{ns}_w-{cid}.log"
    assert os.readlink(link) == f"/var/log/pods/{ns}_{name}_{uid}/w/0.log"
    node.delete(ns, name)


def test_cri_writer_splits_exactly_whatever_the_chunking():
    stream = b"short\n" + b"x" * 16384 + b"\n" + b"y" * 32768 + b"\n" + b"z" * 16385 + b"\n\n" + b"tail"
    for chunk in (1, 7, 4096, 16384, 65536):
        records: list[bytes] = []
        w = podlogs.CriWriter(records.append)
        for i in range(0, len(stream), chunk):
            w.feed("stdout", stream[i:i + chunk])
        w.close_stream("stdout")
        lines = b"".join(records).split(b"\n")[:-1]
        got = [(m.group(5), len(m.group(6))) for m in map(CRI_LINE.match, lines)]
        assert got == [(b"F", 5), (b"F", 16384), (b"P", 16384), (b"F", 16384), (b"P", 16384), (b"F", 1),
                       (b"F", 0), (b"P", 4)], chunk


def test_timestamps_carry_the_local_offset():
    old = os.environ.get("TZ")
    try:
        os.environ["TZ"] = "Asia/Kolkata"
        time.tzset()
        ts = podlogs.timestamp(1_795_000_000_120_000_000)
        assert ts == time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(1_795_000_000)) + ".12+05:30"
        os.environ["TZ"] = "UTC"
        time.tzset()
        assert podlogs.timestamp(1_795_000_000_000_000_000).endswith(":40Z")
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_rotation_naming_and_gzip(node):
    p = pod([{"name": "out", "image": DEBUG,
              "command": ["sh", "-c", "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.01; done"]}])
    ns, name = node.run(p)
    node.wait(ns, name, running("out"))
    live = node.kubelet.log_path(ns, name, "out")
    time.sleep(0.3)
    node.kubelet.rotate_logs(ns, name, "out")
    first = sorted(live.parent.iterdir())
    assert [f.name for f in first][0] == "0.log" and len(first) == 2
    assert re.fullmatch(r"0\.log\.\d{8}-\d{6}", first[1].name)
    rotated_at = time.mktime(time.strptime(first[1].name[6:], "%Y%m%d-%H%M%S"))  # local time, like the kubelet
    assert abs(time.time() - rotated_at) < 5
    time.sleep(0.3)
    node.kubelet.rotate_logs(ns, name, "out")
    time.sleep(0.3)
    node.kubelet.rotate_logs(ns, name, "out")
    files = sorted(f.name for f in live.parent.iterdir())
    assert len(files) == 3 and files[0] == "0.log", files
    gz = [f for f in files if f.endswith(".gz")]
    plain = [f for f in files if re.fullmatch(r"0\.log\.\d{8}-\d{6}", f)]
    assert len(gz) == 1 and len(plain) == 1 and gz[0] < plain[0]
    assert (live.parent / gz[0]).read_bytes()[:10] == bytes.fromhex("1f8b08000000000000ff")
    assert all(oct((live.parent / f).stat().st_mode & 0o777) == "0o640" for f in files)
    time.sleep(0.3)
    # no loss, no reordering: the numbers continue across the gz, the plain file and the live file
    nums = []
    for f in [gz[0], plain[0], "0.log"]:
        nums += [int(c[4:]) for s, t, c in read_records(live.parent / f)]
    assert nums == list(range(nums[0], nums[0] + len(nums)))
    node.delete(ns, name)


def test_restart_file_naming_and_retention(node):
    p = pod([sleeper("crash", 600)])
    ns, name = node.run(p)
    node.wait(ns, name, running("crash"))
    uid = p["metadata"]["uid"]
    d = node.root / "var/log/pods" / f"{ns}_{name}_{uid}" / "crash"
    first_id = ctr_state(node.status(ns, name), "crash")["containerID"]
    node.kubelet.restart_container(ns, name, "crash")
    st = node.wait(ns, name, lambda s: ctr_state(s, "crash")["restartCount"] == 1 and running("crash")(s))
    cs = ctr_state(st, "crash")
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["lastState"]["terminated"]["containerID"] == first_id
    assert sorted(f.name for f in d.iterdir()) == ["0.log", "1.log"]
    assert node.kubelet.log_path(ns, name, "crash", previous=True) == d / "0.log"
    assert node.kubelet.log_path(ns, name, "crash") == d / "1.log"
    node.kubelet.restart_container(ns, name, "crash")
    node.wait(ns, name, lambda s: ctr_state(s, "crash")["restartCount"] == 2 and running("crash")(s))
    assert sorted(f.name for f in d.iterdir()) == ["1.log", "2.log"]  # only the previous instance is kept
    links = sorted(os.readlink(x) for x in (node.root / "var/log/containers").glob(f"{name}_{ns}_crash-*.log"))
    assert [x.rsplit("/", 1)[1] for x in links] == ["1.log", "2.log"]
    node.delete(ns, name)


def test_init_containers_and_crash_loop(node):
    p = pod([{"name": "crash", "image": DEBUG, "command": ["sh", "-c", "echo run; exit 1"]}],
            initContainers=[{"name": "init", "image": DEBUG, "command": ["sh", "-c", "echo init done"]}])
    ns, name = node.run(p)
    st = node.wait(ns, name, lambda s: ctr_state(s, "crash").get("restartCount", 0) >= 2
                   and "CrashLoopBackOff" in json.dumps(ctr_state(s, "crash")["state"]))
    init = ctr_state(st, "init", "initContainerStatuses")
    assert init["state"]["terminated"]["reason"] == "Completed" and init["ready"] is True
    crash = ctr_state(st, "crash")
    assert crash["lastState"]["terminated"]["exitCode"] == 1 and crash["lastState"]["terminated"]["reason"] == "Error"
    assert st["phase"] == "Running"
    msg = crash["state"]["waiting"]["message"]
    assert re.fullmatch(rf"back-off \S+ restarting failed container=crash pod={name}_{ns}\(.*\)", msg)
    hist = node.statuses[(ns, name)]
    assert ctr_state(hist[0], "crash")["state"] == {"waiting": {"reason": "PodInitializing"}}
    node.delete(ns, name)


def test_unpullable_images(node, nginx):
    ns, name = nginx["metadata"]["namespace"], nginx["metadata"]["name"]
    for ctr in ({"name": "img-never", "image": "localhost/nosuch:v1", "imagePullPolicy": "Never",
                 "command": ["true"]},
                {"name": "img-ifnot", "image": "localhost/nosuch:v1", "imagePullPolicy": "IfNotPresent",
                 "command": ["true"]}):
        nginx["spec"].setdefault("ephemeralContainers", []).insert(0, ctr)
    node.kubelet.sync_ephemeral(nginx)
    key = "ephemeralContainerStatuses"
    st = node.wait(ns, name, lambda s: ctr_state(s, "img-ifnot", key)["state"].get("waiting", {}).get("reason")
                   == "ImagePullBackOff", timeout=10)
    assert ctr_state(st, "img-never", key)["state"] == {"waiting": {
        "reason": "ErrImageNeverPull",
        "message": 'Container image "localhost/nosuch:v1" is not present with pull policy of Never'}}
    reasons = [ctr_state(s, "img-ifnot", key).get("state", {}).get("waiting", {}).get("reason")
               for s in node.statuses[(ns, name)]]
    reasons = [r for i, r in enumerate(reasons) if r and (i == 0 or reasons[i - 1] != r)]
    assert reasons[:3] == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"]
    msg = ctr_state(st, "img-ifnot", key)["state"]["waiting"]["message"]
    assert msg.startswith('Back-off pulling image "localhost/nosuch:v1": ErrImagePull: failed to pull and unpack')
    assert ctr_state(st, "img-ifnot", key)["imageID"] == ""


def test_node_pod_host_path_read_only(node):
    (node.root / "etc").mkdir(exist_ok=True)
    (node.root / "etc" / "node-file").write_text("from the node root\n")
    p = pod([{"name": "debugger", "image": DEBUG, "command": ["sleep", "600"],
              "volumeMounts": [{"name": "host-root", "mountPath": "/host", "readOnly": True}]}],
            nodeName="vm", hostPID=True, hostNetwork=True, hostIPC=True, restartPolicy="Never",
            tolerations=[{"operator": "Exists"}], volumes=[{"name": "host-root", "hostPath": {"path": "/"}}])
    ns, name = node.run(p)
    st = node.wait(ns, name, running("debugger"))
    assert st["podIP"] == "10.0.0.1"
    _, out, _ = node.exec(ns, name, "debugger", ["cat", "/host/etc/node-file"])
    assert out == b"from the node root\n"
    rc, _, err = node.exec(ns, name, "debugger", ["touch", "/host/etc/x"])
    assert rc != 0 and b"Read-only file system" in err
    _, out, _ = node.exec(ns, name, "debugger", ["ls", "/host/var/log/pods"])
    assert out  # the node's pod logs are visible
    # host namespaces: the host's PID 1 and network
    _, out, _ = node.exec(ns, name, "debugger", ["cat", "/proc/1/comm"])
    assert out.strip() == Path("/proc/1/comm").read_text().strip().encode()
    _, out, _ = node.exec(ns, name, "debugger", ["readlink", "/proc/self/ns/net"])
    assert out.strip().decode() == os.readlink("/proc/self/ns/net")
    assert not Path("/host").exists()  # the mountpoint was never created on the real host
    # processes of a host-PID container (its own children, exec'd ones) go with it, as with runc
    proc = node.kubelet.exec(ns, name, "debugger", ["sh", "-c", "echo $$; exec sleep 1000"])
    host_pid = int(proc.stdout.readline())
    deadline = time.monotonic() + 5
    while not Path(f"/proc/{host_pid}/cmdline").read_bytes().startswith(b"sleep"):  # sh is about to exec
        assert time.monotonic() < deadline
        time.sleep(0.02)
    node.delete(ns, name)
    proc.wait(5)
    assert not Path(f"/proc/{host_pid}").exists() or b"sleep" not in Path(f"/proc/{host_pid}/cmdline").read_bytes()


def test_second_delete_shortens_grace_and_same_name_reuse(node):
    p = pod([sleeper("main")])  # sleep as PID 1 ignores SIGTERM: only the SIGKILL after the grace ends it
    ns, name = node.run(p)
    node.wait(ns, name, running("main"))
    first, second = threading.Event(), threading.Event()
    node.kubelet.delete_pod(ns, name, 30, first.set)
    time.sleep(0.5)
    assert not first.is_set()
    t0 = time.monotonic()
    node.kubelet.delete_pod(ns, name, 0, second.set)
    assert first.wait(5) and second.wait(5)
    assert time.monotonic() - t0 < 3
    # a new pod of the same name (new uid) runs normally
    p2 = pod([sleeper("main")])
    p2["metadata"].update(namespace=ns, name=name)
    node.run(p2)
    st = node.wait(ns, name, lambda s: running("main")(s) and ctr_state(s, "main")["containerID"]
                   != ctr_state(node.statuses[(ns, name)][0], "main").get("containerID"))
    assert st["phase"] == "Running"
    node.delete(ns, name)


def test_active_deadline(node):
    p = pod([sleeper("main", 600)], activeDeadlineSeconds=1, restartPolicy="Never", hostPID=True)
    ns, name = node.run(p)
    st = node.wait(ns, name, lambda s: s["phase"] == "Failed", timeout=10)
    assert st["reason"] == "DeadlineExceeded"
    assert st["message"] == "Pod was active on the node longer than the specified deadline"
    node.wait(ns, name, lambda s: "terminated" in ctr_state(s, "main")["state"], timeout=10)
    node.delete(ns, name)


def _processes_with(text: str) -> set[str]:
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.add(pid)
        except OSError:
            continue
    return found


def _processes_in(namespaces: set[str]) -> set[tuple[str, str]]:
    """(pid, start time) of the processes in these network namespaces: identities that stay ours even when
    the kernel later hands the same namespace inode to someone else's new namespace."""
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/ns/net") in namespaces:
                start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
                out.add((pid, start))
        except (OSError, IndexError):
            continue
    return out


def _alive(procs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those still running (zombies hold nothing and are their reaper's business)."""
    alive = set()
    for pid, start in procs:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[19] == start and fields[0] != "Z":
                alive.add((pid, start))
        except (OSError, IndexError):
            continue
    return alive


def _root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip() for line in out.splitlines()}


def test_delete_and_stop_leave_nothing_behind(tmp_path):
    links = _root_links()
    n = Node(tmp_path)
    n.kubelet.start()
    n.kubelet.log_gc_delay = 0.2
    workdir = str(n.kubelet._workdir)
    p1 = pod([{"name": "nginx", "image": NGINX}], shareProcessNamespace=True)
    p2 = pod([sleeper("main")], terminationGracePeriodSeconds=1)
    for p in (p1, p2):
        n.run(p)
    for p in (p1, p2):
        n.wait(p["metadata"]["namespace"], p["metadata"]["name"], lambda s: s["phase"] == "Running")
    ns, name = p1["metadata"]["namespace"], p1["metadata"]["name"]
    _, out, _ = n.exec(ns, name, "nginx", ["ps", "-e", "-o", "pid=,args="])
    first = out.split(b"\n")[0]
    assert first.split()[0] == b"1" and b"nginx" not in first  # PID 1 is the pod's pause
    ours = _processes_with(workdir)
    pod_netns = {os.readlink(f"/proc/{pid}/ns/net") for pid in ours} - {os.readlink("/proc/self/ns/net")}
    assert len(pod_netns) == 3  # two pods and the bridge
    in_pods = _processes_in(pod_netns)
    assert len(in_pods) >= 8  # pauses, shims, nginx and its workers, sleep
    uid = p1["metadata"]["uid"]
    t0 = time.monotonic()
    n.delete(ns, name, grace=30)
    assert time.monotonic() - t0 < 5  # nginx stops on SIGTERM
    assert not list((tmp_path / "var/log/containers").glob(f"{name}_*"))
    time.sleep(0.5)
    assert not (tmp_path / "var/log/pods" / f"{ns}_{name}_{uid}").exists()
    n.kubelet.stop()
    n.kubelet.stop()  # idempotent
    assert _processes_with(workdir) == set()
    deadline = time.monotonic() + 5  # SIGKILLed orphans finish dying on their own
    while _alive(in_pods) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(in_pods) == set()
    assert workdir not in Path("/proc/self/mountinfo").read_text()  # nothing was ever mounted out here
    assert _root_links() - links == set()  # no interface was ever added to the host's namespace
    assert not Path(workdir).exists()
    assert not list((tmp_path / "var/log/pods").iterdir())
    assert not list((tmp_path / "var/log/containers").iterdir())


KILLED_KUBELET = """
import os, sys, time
from pathlib import Path
from tests.cluster.kubelet import Kubelet
st = {}
k = Kubelet("vm", Path(sys.argv[1]), "10.0.0.1", lambda ns, n, s: st.__setitem__(n, s))
k.start()
k.run_pod({"metadata": {"name": "a", "namespace": "x", "uid": "u1"},
           "spec": {"shareProcessNamespace": True, "containers": [{"name": "c", "image": "nginx"}]}})
k.run_pod({"metadata": {"name": "b", "namespace": "x", "uid": "u2"},
           "spec": {"hostPID": True, "containers": [{"name": "c", "image": "busybox",
                                                     "command": ["sh", "-c", "sleep 1001 & sleep 1001"]}]}})
while any(st.get(n, {}).get("phase") != "Running" for n in "ab"):
    time.sleep(0.05)
print(k._workdir, flush=True)
os._exit(9)  # no stop(): a crash or a SIGKILL
"""


def test_a_killed_kubelet_leaves_nothing_behind(tmp_path):
    res = subprocess.run([sys.executable, "-c", KILLED_KUBELET, str(tmp_path)], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 9, res.stderr
    workdir = res.stdout.strip()
    deadline = time.monotonic() + 5  # the helpers see their lifeline close and clean up
    while (_processes_with(workdir) or Path(workdir).exists() or _processes_with("sleep\x001001")) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(workdir) == set()
    assert _processes_with("sleep\x001001") == set()  # the host-PID container's processes too
    assert not Path(workdir).exists()


def _in_own_mount_namespace(argv: list[str]) -> subprocess.Popen[bytes]:
    """argv in a mount namespace of its own (unshare -m), returned once it is there."""
    proc = subprocess.Popen(["unshare", "-m", *argv])
    ours = os.stat("/proc/self/ns/mnt").st_ino
    deadline = time.monotonic() + 5
    while os.stat(f"/proc/{proc.pid}/ns/mnt").st_ino == ours:
        assert time.monotonic() < deadline, "unshare -m never left our mount namespace"
        time.sleep(0.005)
    return proc


def test_a_containers_end_kills_its_own_processes_and_never_the_next_containers():
    """The shim kills what is left in an ended container's mount namespace. The namespace of a container whose
    processes are all gone is freed, and the kernel gives its inode number to the next namespace created
    (another pod's container): the shim must not kill by that number (CI, stop 27: an exec into a debug
    container shown running said 'container not found')."""
    from tests.cluster import containers

    first = _in_own_mount_namespace(["sleep", "30"])
    pinned = containers.pin_mount_namespace(first.pid)
    assert pinned is not None
    try:
        containers.kill_mount_namespace(pinned)  # its processes go
        assert first.wait(5) == -9
        gone_ino = os.fstat(pinned).st_ino
        nxt = _in_own_mount_namespace(["sleep", "30"])
        try:
            # pinned, the ended namespace keeps its number: the next one gets another
            assert os.stat(f"/proc/{nxt.pid}/ns/mnt").st_ino != gone_ino
            containers.kill_mount_namespace(pinned)  # the shim's kill after the container ended
            assert nxt.poll() is None
        finally:
            nxt.kill()
            nxt.wait()
    finally:
        os.close(pinned)
    assert containers.pin_mount_namespace(os.getpid()) is None  # our own namespace is never a container's
