"""capture --ring N --max-size SIZE end to end: steady numbered HTTP requests through the built executable, then
every file kept checked with capinfos and tshark (valid, at most SIZE, the newest holding the latest requests),
the summary's counts against the files, and nothing left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_debugx import summary as schema

from .helpers import debugx, debugx_containers, ephemeral_names, processes, start_debugx, tshark_count, tshark_fields
from .test_workloads import REPLICAS, deployment, no_tool_left, wait_for_lines  # noqa: F401 (a fixture)

pytestmark = pytest.mark.e2e
SIZE = 1_000_000  # --max-size 1MB: K, M, G are powers of 1000 (options.parse_size), as tcpdump -C counts
FILES = 3
REQUESTS = 1500  # about 5 kB captured each (a 4 kB header): 7.5 MB, 7 files or more of 1 MB
PAD = "x" * 4000


def send_numbered(e2e, namespace: str, pod: str, container: str | None, ips: list[str]) -> None:
    """REQUESTS requests /r1 … /rN in this order, from one curl (keep-alive, one connection per IP), the
    i-th to ips[i % len(ips)]."""
    config = "".join(f'url = "http://{ips[i % len(ips)]}/r{i}"\noutput = "/dev/null"\n'
                     for i in range(1, REQUESTS + 1))
    where = ["-c", container] if container else []
    e2e.kubectl("exec", "-i", "-n", namespace, pod, *where, "--", "curl", "-s", "-H", f"X-Pad: {PAD}", "-K", "-",
                input=config, timeout=300)


def numbers(path: Path) -> list[int]:
    return [int(uri[2:]) for uri in tshark_fields(str(path), "http.request", "http.request.uri")]


def check_ring(out: Path, stdout: bytes, stderr: bytes, interfaces: int) -> dict:
    """Exactly FILES valid files of at most SIZE, the newest with the last request, older files with older
    requests only; the summary's counts match the files and add up; returns the summary."""
    names = [out.name, *(f"{out.stem}.{i}{out.suffix}" for i in range(1, FILES))]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(names), stderr
    summary = json.loads(stdout)
    assert schema.check("capture", summary) == [], summary
    assert summary["filesWritten"] >= 6, summary  # at least 5 rotations
    assert summary["filesDropped"] == summary["filesWritten"] - FILES
    kept = summary["ringFiles"]
    assert [k["file"] for k in kept] == [str(out.parent / n) for n in names]
    assert sum(k["packets"] for k in kept) + summary["packetsDropped"] == summary["packetsWritten"]
    per_file = []
    for entry in kept:
        path = Path(entry["file"])
        assert path.stat().st_size == entry["bytes"] <= SIZE
        info = subprocess.run(["capinfos", "-M", "-c", "-I", str(path)], capture_output=True, text=True, timeout=60)
        assert info.returncode == 0, info.stderr
        assert tshark_count(str(path)) == entry["packets"]
        if out.suffix == ".pcapng":  # every file carries the interface of every pod, named NAMESPACE/POD
            assert len(set(tshark_fields(str(path), "frame", "frame.interface_name"))) <= interfaces
            assert f"Number of interfaces in file: {interfaces}" in info.stdout, info.stdout
        per_file.append(numbers(path))
    newest, middle, oldest = per_file
    assert newest and newest[-1] == REQUESTS
    assert oldest and middle and max(oldest) < min(middle) <= max(middle) < min(newest)
    return summary


@pytest.mark.parametrize("name", ["web.pcapng", "web.pcap"])
def test_ring_of_one_pod_keeps_the_newest_three_files(e2e, web, tmp_path: Path, name):
    namespace, pod, traffic = web
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / name
    proc = start_debugx(e2e, "capture", pod, "-n", namespace, "--ring", str(FILES), "--max-size", "1MB",
                        "-f", "tcp port 80", "-o", str(out), "--summary", "json", stdout=subprocess.PIPE)
    wait_for_lines(proc, "listening on", 1)
    send_numbered(e2e, namespace, pod, traffic, ["127.0.0.1"])
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    summary = check_ring(out, stdout, stderr, 1)
    assert (summary["stoppedBy"], summary["droppedByKernel"]) == ("SIGINT", 0)
    assert f"ring of 3 files of at most 1.0 MB: {summary['filesWritten']} written" in stderr.decode()
    for ec in debugx_containers(e2e, namespace, pod):
        assert "tcpdump" not in processes(e2e, namespace, pod, ec)


def test_ring_of_a_deployment_every_file_a_pcapng_with_every_pod(e2e, deployment, tmp_path: Path):  # noqa: F811
    namespace, pods = deployment
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "web.pcapng"
    proc = start_debugx(e2e, "capture", "deploy/web", "-n", namespace, "--ring", str(FILES), "--max-size", "1MB",
                        "-f", "tcp port 80", "-o", str(out), "--summary", "json", stdout=subprocess.PIPE)
    wait_for_lines(proc, "listening on", REPLICAS)
    send_numbered(e2e, namespace, "client", None, sorted(pods.values()))
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    summary = check_ring(out, stdout, stderr, REPLICAS)
    newest = subprocess.run(["tshark", "-r", str(out), "-Y", "http.request", "-T", "fields",
                             "-e", "frame.interface_name"], capture_output=True, text=True, check=True).stdout
    assert set(newest.split()) == {f"{namespace}/{name}" for name in pods}  # requests on every pod's interface
    assert summary["stoppedBy"] == "SIGINT"
    no_tool_left(e2e, namespace, "tcpdump")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--ring", "3", "-o", "{tmp}/x.pcap"], 2, "error: --ring needs --max-size: the size of each file"),
        (["--ring", "1", "--max-size", "1M", "-o", "{tmp}/x.pcap"], 2, "error: --ring: must be at least 2 files"),
        (["--ring", "3", "--max-size", "1M", "-o", "-"], 2, "error: --ring and -o - cannot be combined"),
        (["--ring", "3", "--max-size", "1M", "--wireshark"], 2, "error: --ring and --wireshark cannot be combined"),
        (["--ring", "3", "--max-size", "1M", "-o", "{tmp}/old.pcap"], 8,
         "error: {tmp}/old.2.pcap already exists: use --force to overwrite it"),
    ],
)
def test_ring_refusals_create_nothing(e2e, nginx_pod, tmp_path: Path, args, code, message):
    namespace, pod = nginx_pod
    (tmp_path / "old.2.pcap").write_bytes(b"an earlier run's")
    before = ephemeral_names(e2e, namespace, pod)
    bare = tmp_path / "bare"  # no wireshark on PATH: the ring refusal comes first all the same
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bare)}
    result = debugx(e2e, "capture", pod, "-n", namespace, *[a.format(tmp=tmp_path) for a in args], env=env,
                    cwd=tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert stderr.startswith(message.format(tmp=tmp_path)) and stderr.count("\n") == 1, stderr
    assert ephemeral_names(e2e, namespace, pod) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare", "old.2.pcap"]
