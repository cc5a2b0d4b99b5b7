"""Docker contract (recordings 30-docker-*, a v1.33 node running dockerd 20.10.24 behind cri-dockerd 0.3.15,
json-file max-size=1m max-file=3; README-30-docker.md beside them): the test cluster's Docker mode
(DEBUGX_TEST_RUNTIME=docker, tests/cluster/dockermode.py) against what was recorded. Each test replays its
cases through kubectl and the node proxy, so it runs on a real Docker node too; the node's own files (symlinks,
Docker's folder) are checked on the test cluster only, as the recording's ls saw them. Skipped (one line) when
the node's runtime is not Docker.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import wait_until

from .test_contract import ALL_CASES
from .test_node_proxy_ranges import proxy_get

pytestmark = pytest.mark.e2e

HEX64 = re.compile(r"[0-9a-f]{64}")
JSON_LINE = re.compile(rb'\{"log":"(?:[^"\\]|\\.)*","stream":"(?:stdout|stderr)","time":"\d{4}-\d\d-\d\dT\d\d:\d\d:'
                       rb'\d\d(?:\.\d{1,9})?Z"\}')
# 30-docker-c15: 40000 "tick NNNNNNN 000..." lines; .2 and .1 hold 6102 and 6103 of them (1000060, 1000152 bytes)
TICK_PAD = 120


def _case(name: str) -> dict:
    return next(c for c in ALL_CASES if c["case"] == name)


@pytest.fixture
def docker(e2e: Any) -> Any:
    runtime = e2e.kubectl("get", "nodes", "-o", "jsonpath={.items[0].status.nodeInfo.containerRuntimeVersion}").stdout
    if not runtime.startswith("docker://"):
        pytest.skip(f"the node's runtime is {runtime or 'unknown'}, not Docker (DEBUGX_TEST_RUNTIME=docker)")
    return e2e


def _pod(e2e: Any, namespace: str, name: str) -> dict:
    return json.loads(e2e.kubectl("get", "pod", "-n", namespace, name, "-o", "json").stdout)


def _node_get(e2e: Any, node: str, rel: str) -> bytes:
    return e2e.kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/logs/pods/{rel}").stdout.encode()


def test_node_runtime_version_as_recorded(docker):
    recorded = _case("30-docker-00-get-node-vm")["response"]["body"]["status"]["nodeInfo"]
    node = json.loads(docker.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]["status"]["nodeInfo"]
    if docker.cluster is not None:  # a real node may run another Docker; the test cluster emulates the lab's
        assert node["containerRuntimeVersion"] == recorded["containerRuntimeVersion"]
    assert node["containerRuntimeVersion"].startswith("docker://")


def test_container_ids_images_and_the_log_symlink_as_recorded(docker, nginx_pod):
    """30-docker-a01, b07 (IDs, image names), b02/b08 (N.log -> /var/lib/docker/containers/ID/ID-json.log), b04
    (json-file lines; dirs 0710, file 0640), a04 (/.dockerenv), c01-c04 (the node proxy follows the link)."""
    recorded = _case("30-docker-a01-get-pod-nginx")["response"]["body"]
    rec_status = recorded["status"]["containerStatuses"][0]
    assert rec_status["image"] == recorded["spec"]["containers"][0]["image"]  # as the pod names it
    namespace, name = nginx_pod
    pod = _pod(docker, namespace, name)
    status = pod["status"]["containerStatuses"][0]
    for key, rec in (("containerID", rec_status["containerID"]), ("imageID", rec_status["imageID"])):
        assert re.sub(HEX64, "H", status[key]) == re.sub(HEX64, "H", rec), (key, status[key], rec)
    assert status["image"] == pod["spec"]["containers"][0]["image"]
    cid = status["containerID"].split("://")[1]
    pod_dir = f"{namespace}_{name}_{pod['metadata']['uid']}"
    assert b'<a href="0.log">0.log</a>' in _node_get(docker, pod["spec"]["nodeName"], f"{pod_dir}/nginx/")
    body = _node_get(docker, pod["spec"]["nodeName"], f"{pod_dir}/nginx/0.log")
    recorded_body = _case("30-docker-c04-nodeproxy-logs-0log")["response"]["body"].encode()
    for data in (recorded_body, body):
        lines = data.splitlines()
        assert lines and all(JSON_LINE.fullmatch(line) for line in lines), lines[:3]
    assert "/.dockerenv" in _case("30-docker-a04-exec-dbg1-proc1-root")["stdout"].replace(" .dockerenv", " /.dockerenv")
    docker.kubectl("exec", "-n", namespace, name, "-c", "nginx", "--", "test", "-e", "/.dockerenv")
    if docker.cluster is None:
        return
    link = Path(docker.cluster.node_root) / "var/log/pods" / pod_dir / "nginx/0.log"
    recorded_ls = _case("30-docker-b02-node-ls-nginx-log-dir")["stdout"]
    rec_target = re.search(r"0\.log -> (\S+)", recorded_ls)[1]  # type: ignore[index]
    assert re.sub(HEX64, "H", str(link.readlink())) == re.sub(HEX64, "H", rec_target)
    assert str(link.readlink()) == f"/var/lib/docker/containers/{cid}/{cid}-json.log"
    folder = Path(docker.cluster.node_root) / "var/lib/docker/containers" / cid
    assert oct(folder.stat().st_mode & 0o777) == "0o710"
    assert oct((folder / f"{cid}-json.log").stat().st_mode & 0o777) == "0o640"


def test_range_on_the_symlinked_log_as_recorded(docker, nginx_pod):
    """30-docker-c06: 206 and Content-Range through the symlink."""
    facts = _case("30-docker-c06-nodeproxy-range")["facts"]
    namespace, name = nginx_pod
    pod = _pod(docker, namespace, name)
    rel = f"{namespace}_{name}_{pod['metadata']['uid']}/nginx/0.log"
    size = len(_node_get(docker, pod["spec"]["nodeName"], rel))
    status, headers, _ = proxy_get(docker, f"/api/v1/nodes/{pod['spec']['nodeName']}/proxy/logs/pods/{rel}", "10-")
    assert (status, facts["response_status"]) == (206, 206)
    assert headers["content-range"] == f"bytes 10-{size - 1}/{size}"
    assert re.fullmatch(r"bytes \d+-\d+/\d+", facts["content_range"])


def test_docker_rotates_by_size_and_the_kubelet_never_does(docker, namespace, make_pod):
    """30-docker-c15: after 40000 lines, ID-json.log.2, .1 and the live file hold contiguous numbers, each rotated
    file just past 1 MB (rotation before a write at or past max-size); the pod's folder lists only 0.log
    (c17: the node proxy serves the live file only, c16: and kubectl logs its lines; c18: no kubelet rotation)."""
    recorded = _case("30-docker-c15-rotation-files")["stdout"]
    sizes = [int(s) for s in re.findall(r" (\d+) \S+ \S+ \+0000 [0-9a-f]{64}-json\.log\.\d", recorded)]
    assert sizes and all(1_000_000 <= s < 1_000_000 + 200 for s in sizes), sizes
    script = (f"pad=$(head -c {TICK_PAD} /dev/zero | tr '\\0' 0); k=1; while [ $k -le 40000 ]; do "
              "printf 'tick %07d %s\\n' $k $pad; k=$((k+1)); done; exec sleep 3600")
    make_pod(namespace, "ticker", image=docker.image, command=["sh", "-c", script])
    pod = _pod(docker, namespace, "ticker")
    rel = f"{namespace}_ticker_{pod['metadata']['uid']}/main/"
    node = pod["spec"]["nodeName"]

    def last_line_served() -> bytes | None:
        body = _node_get(docker, node, rel + "0.log")
        return body if b"tick 0040000 " in body else None

    live = wait_until(last_line_served, "the 40000th line", 120)
    assert b'<a href="0.log">0.log</a>' in _node_get(docker, node, rel)
    assert b"0.log." not in _node_get(docker, node, rel)  # the kubelet never rotated
    first_live = int(re.search(rb"tick (\d+)", live)[1])  # type: ignore[index]
    assert first_live > 1  # Docker rotated: the node proxy serves the live file only (c17)
    # c16: kubectl logs decodes the live json-file only: "lines=3387 first=tick 0036614 last=tick 0040000"
    assert re.fullmatch(r"lines=(\d+) first=tick (\d{7}) last=tick 0040000\n",
                        _case("30-docker-c16-kubectl-logs-after-rotation")["stdout"])
    logged = docker.kubectl("logs", "-n", namespace, "ticker").stdout.splitlines()
    assert [int(line.split()[1]) for line in logged] == list(range(first_live, 40001))
    if docker.cluster is None:
        return
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("://")[1]
    folder = Path(docker.cluster.node_root) / "var/lib/docker/containers" / cid
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"], names
    numbers: list[int] = []
    for suffix in (".2", ".1", ""):
        data = (folder / f"{cid}-json.log{suffix}").read_bytes()
        if suffix:
            assert 1_000_000 <= len(data) < 1_000_000 + 300, (suffix, len(data))
        numbers += [int(n) for n in re.findall(rb"tick (\d+)", data)]
    assert numbers == list(range(numbers[0], 40001)) and numbers[0] > 1


def test_exec_streams_of_a_deleted_pod_as_recorded(docker, namespace, make_pod):
    """40-docker-exec-stream-*: after `kubectl delete pod` (grace 2 s) an exec into a regular container ends with
    137 as on containerd, and an exec into an ephemeral container (kubectl debug --target) stays open and
    silent, its processes gone: still open 90 s later when recorded, checked here for 5 s after the pod is gone.
    Why the product checks a silent stream's pod (remote/toolrun.py)."""
    regular = _case("40-docker-exec-stream-of-a-deleted-pod")["facts"]
    ephemeral = _case("40-docker-exec-stream-in-an-ephemeral-container-of-a-deleted-pod")["facts"]
    assert (regular["silent"]["exit_code"], regular["ticking"]["exit_code"]) == (137, 137)
    assert ephemeral["silent"]["still_open_90s_after_delete"] and ephemeral["ticking"]["still_open_90s_after_delete"]
    assert ephemeral["ticking"]["lines_after_delete"] == 0
    make_pod(namespace, "victim", image=docker.image, command=["sleep", "3600"], terminationGracePeriodSeconds=2)
    docker.kubectl("debug", "-n", namespace, "victim", f"--image={docker.image}", "--target=main",
                   "--container=dbg", "--profile=general", "--", "sleep", "3600")
    wait_until(lambda: (_pod(docker, namespace, "victim")["status"].get("ephemeralContainerStatuses") or [{}])[0]
               .get("state", {}).get("running"), "the ephemeral container running", 60)

    def exec_in(container: str) -> subprocess.Popen[bytes]:
        argv = docker._kubectl_argv(docker.context, ("exec", "-i", "-n", namespace, "victim", "-c", container,
                                                     "--", "sh", "-c", "echo started; while true; do echo tick; "
                                                     "sleep 1; done"))
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=docker.env())

    procs = {"main": exec_in("main"), "dbg": exec_in("dbg")}
    try:
        for proc in procs.values():
            assert proc.stdout is not None and proc.stdout.readline() == b"started\n"
        docker.kubectl("delete", "pod", "-n", namespace, "victim", "--wait=false")
        assert procs["main"].wait(60) == 137
        assert b"command terminated with exit code 137" in procs["main"].stderr.read()  # type: ignore[union-attr]
        wait_until(lambda: docker.kubectl("get", "pod", "-n", namespace, "victim", check=False).returncode != 0,
                   "the pod gone", 60)
        gone = time.monotonic()
        while time.monotonic() - gone < 5:
            assert procs["dbg"].poll() is None, "the ephemeral container's exec ended"
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
