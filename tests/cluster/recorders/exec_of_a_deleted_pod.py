"""Recorder of round 4 (recordings/40-docker-*, README-40-docker.md): what an exec stream does when its pod is
deleted. Run against the lab (Docker mode: ~/k8s-lab/up-docker.sh), once per kind of container:

    python3 -m tests.cluster.recorders.exec_of_a_deleted_pod OUT_DIR 40-docker regular
    python3 -m tests.cluster.recorders.exec_of_a_deleted_pod OUT_DIR 40-docker ephemeral

Two execs (one silent `exec sleep 3600`, one printing a line a second) into the pod's container, or into an
ephemeral container added by `kubectl debug --target` as debugx runs its tools; then `kubectl delete pod
--wait=false` (grace 2 s); each exec's end (exit code, seconds after the delete) or still open 90 s later.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

KUBECTL = ["kubectl", "--kubeconfig", "/tmp/e2e.kubeconfig"]
IMAGE = "localhost/debug:v1"
OPEN_FOR = 90.0  # seconds after the delete before an exec still open is recorded as such
SCRIPTS = {"silent": "echo started; exec sleep 3600", "ticking": "while true; do echo tick; sleep 1; done"}


def sh(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KUBECTL, *args], input=stdin, capture_output=True, text=True)


class Exec:
    def __init__(self, namespace: str, container: str, script: str) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*KUBECTL, "exec", "-i", "-n", namespace, "victim", "-c", container, "--",
                                      "sh", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines: list[float] = []
        self.ended: float | None = None
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            self.lines.append(time.monotonic())

    def _wait(self) -> None:
        self.proc.wait()
        self.ended = time.monotonic()

    def facts(self, deleted: float) -> dict[str, object]:
        still_open = self.ended is None
        if still_open:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stderr is not None
        after = [t for t in self.lines if t >= deleted]
        return {"exit_code": None if still_open else self.proc.returncode,
                "ended_after_delete_s": None if still_open else round(self.ended - deleted, 2),
                "stderr": self.proc.stderr.read().decode().strip()[:500],
                "lines_before_delete": len(self.lines) - len(after), "lines_after_delete": len(after),
                "last_line_after_delete_s": round(after[-1] - deleted, 2) if after else None,
                "still_open_90s_after_delete": still_open}


def record(out: Path, prefix: str, kind: str) -> dict[str, object]:
    namespace = f"rec-exec-{kind}"
    sh("create", "ns", namespace)
    while sh("get", "sa", "default", "-n", namespace).returncode != 0:
        time.sleep(1)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim", "namespace": namespace},
           "spec": {"terminationGracePeriodSeconds": 2, "containers": [
               {"name": "main", "image": IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}}
    sh("apply", "-f", "-", stdin=json.dumps(pod))
    sh("wait", "--for=condition=Ready", "pod/victim", "-n", namespace, "--timeout=120s")
    container = "main"
    if kind == "ephemeral":
        container = "dbg"
        sh("debug", "-n", namespace, "victim", f"--image={IMAGE}", "--image-pull-policy=Never", "--target=main",
           "--container=dbg", "--profile=general", "--", "sleep", "3600")
        while not sh("get", "pod", "victim", "-n", namespace, "-o",
                     "jsonpath={.status.ephemeralContainerStatuses[0].state.running}").stdout:
            time.sleep(0.5)
    execs = {name: Exec(namespace, container, script) for name, script in SCRIPTS.items()}
    time.sleep(4)
    deleted = time.monotonic()
    sh("delete", "pod", "victim", "-n", namespace, "--wait=false")
    gone = None
    while time.monotonic() - deleted < OPEN_FOR:
        if gone is None and sh("get", "pod", "victim", "-n", namespace).returncode != 0:
            gone = round(time.monotonic() - deleted, 2)
        if gone is not None and all(e.ended is not None for e in execs.values()):
            break
        time.sleep(0.25)
    name = ("exec-stream-in-an-ephemeral-container-of-a-deleted-pod" if kind == "ephemeral"
            else "exec-stream-of-a-deleted-pod")
    where = "kubectl debug --target=main --container=dbg (sleep 3600), then " if kind == "ephemeral" else ""
    case = {"case": f"{prefix}-{name}",
            "what": f"{where}kubectl exec -i into {container} (one exec silent: sleep 3600; one printing a line a "
                    "second), then kubectl delete pod --wait=false (grace 2 s): does each exec stream end, when, "
                    "with what",
            "command": f"kubectl exec -i -n {namespace} victim -c {container} -- sh -c '{SCRIPTS['silent']}' & "
                       f"kubectl exec -i ... -c {container} -- sh -c '{SCRIPTS['ticking']}' & sleep 4; "
                       "kubectl delete pod victim --wait=false",
            "facts": {"runtime": sh("get", "nodes", "-o", "jsonpath={.items[0].status.nodeInfo."
                                    "containerRuntimeVersion}").stdout,
                      "terminationGracePeriodSeconds": 2, "pod_gone_after_delete_s": gone,
                      **{n: e.facts(deleted) for n, e in execs.items()}}}
    (out / f"{case['case']}.json").write_text(json.dumps(case, indent=1))
    sh("delete", "ns", namespace, "--wait=false")
    return case


if __name__ == "__main__":
    print(json.dumps(record(Path(sys.argv[1]), sys.argv[2], sys.argv[3]), indent=1))  # noqa: T201
