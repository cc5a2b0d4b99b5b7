"""Round-3 contract (recordings 30-*, made on the lab with tests/cluster/record_round3.py): the real behaviours
the e2e suite found missing in the test cluster (issue 20), replayed through kubectl so they run on the test
cluster and on a real one alike.

- 30-expansion-*: the kubelet expands `$(VAR)` of the container's env and reads `$$` as `$` in command and args;
  an unknown or unterminated reference stays as written. The pod's log must be the recorded one, line for line.
- 30-gid-*: a container that sets runAsUser without runAsGroup gets its image's /etc/passwd gid (distroless
  `nonroot` 65532; the debug image has no entry for 65532: gid 0), and the kernel lets only a process of the
  same uid *and* gid open /proc/1/root: the probe's output must be the recorded one, line for line.
- 30-nginx-workers: the nginx image runs as many workers as recorded.
- 30-job-deadline-*: a Job's activeDeadlineSeconds changes while it runs (merge PATCH): lowered, the Job fails
  (FailureTarget, DeadlineExceeded) at the new deadline and goes with its pod (ttlSecondsAfterFinished 0);
  raised, it outlives the first one.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.cluster.record_round3 import GID_SCRIPT
from tests.e2e.helpers import wait_until

from .test_contract import ALL_CASES

pytestmark = pytest.mark.e2e


def _case(name: str) -> dict:
    return next(c for c in ALL_CASES if c["case"] == name)


def _distroless(e2e) -> str:
    import os

    image = os.environ.get("DEBUGX_E2E_DISTROLESS_IMAGE")
    if image:
        return image
    if e2e.cluster is None:
        pytest.skip("set DEBUGX_E2E_DISTROLESS_IMAGE to replay the gid cases on a real cluster")
    return "gcr.io/distroless/python3-debian12"


def _create(e2e, body: dict) -> dict:
    return json.loads(e2e.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(body)).stdout)


def _pod(e2e, namespace: str, name: str) -> dict:
    return json.loads(e2e.kubectl("get", "pod", "-n", namespace, name, "-o", "json").stdout)


def _running(e2e, namespace: str, name: str, container: str, key: str = "containerStatuses") -> bool:
    statuses = _pod(e2e, namespace, name).get("status", {}).get(key) or []
    return any(s["name"] == container and "running" in s["state"] for s in statuses)


def test_expansion_of_command_and_args_as_recorded(e2e, namespace):
    body = json.loads(json.dumps(_case("30-expansion-create-pod")["request"]["body"]))
    body["metadata"]["namespace"] = namespace
    body["spec"]["containers"][0]["image"] = e2e.image
    _create(e2e, body)
    wait_until(lambda: _pod(e2e, namespace, "expand")["status"].get("phase") == "Succeeded", "the pod ends", 60)
    log = e2e.kubectl("logs", "-n", namespace, "expand").stdout.splitlines()
    assert log == _case("30-expansion-log")["output"]


def test_primary_gid_from_the_image_and_procroot_needs_uid_and_gid_as_recorded(e2e, namespace):
    app = {"name": "app", "image": _distroless(e2e), "command": ["python3", "-c", "import time; time.sleep(3600)"],
           "securityContext": {"runAsUser": 65532, "runAsNonRoot": True}}
    _create(e2e, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gid", "namespace": namespace},
                  "spec": {"terminationGracePeriodSeconds": 0, "containers": [app]}})
    wait_until(lambda: _running(e2e, namespace, "gid", "app"), "the distroless pod runs", 60)
    for name in ("e1", "e2"):
        case = _case(f"30-gid-{name}")
        assert case["request"]["command"][2] == GID_SCRIPT
        ec = {"name": name, "image": e2e.image, "command": ["sleep", "3600"], "targetContainerName": "app",
              "securityContext": case["request"]["securityContext"]}
        e2e.kubectl("patch", "pod", "gid", "-n", namespace, "--subresource", "ephemeralcontainers", "--type",
                    "strategic", "-p", json.dumps({"spec": {"ephemeralContainers": [ec]}}))
        wait_until(lambda n=name: _running(e2e, namespace, "gid", n, "ephemeralContainerStatuses"),
                   f"{name} runs", 60)
        out = e2e.kubectl("exec", "-n", namespace, "gid", "-c", name, "--", "sh", "-c", GID_SCRIPT, check=False)
        assert out.stdout.splitlines() == case["output"], (name, out.stdout, out.stderr)


def test_nginx_runs_as_many_workers_as_recorded(e2e, nginx_pod):
    namespace, pod = nginx_pod
    recorded = _case("30-nginx-workers")["facts"]["workers"]
    ec = {"name": "ps", "image": e2e.image, "command": ["sleep", "3600"], "targetContainerName": "nginx"}
    e2e.kubectl("patch", "pod", pod, "-n", namespace, "--subresource", "ephemeralcontainers", "--type",
                "strategic", "-p", json.dumps({"spec": {"ephemeralContainers": [ec]}}))
    wait_until(lambda: _running(e2e, namespace, pod, "ps", "ephemeralContainerStatuses"), "ps runs", 60)

    def workers() -> int:
        ps = e2e.kubectl("exec", "-n", namespace, pod, "-c", "ps", "--", "ps", "-eo", "args").stdout
        return sum(1 for line in ps.splitlines() if line.startswith("nginx: worker process"))

    wait_until(lambda: workers() == recorded, f"{recorded} nginx workers", 30)


def _job(namespace: str, name: str, deadline: int) -> dict:
    recorded = _case(f"30-job-deadline-{name}-patch")["created"]
    spec = recorded["spec"]
    container = spec["template"]["spec"]["containers"][0]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"backoffLimit": spec["backoffLimit"], "activeDeadlineSeconds": deadline,
                     "ttlSecondsAfterFinished": spec["ttlSecondsAfterFinished"],
                     "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": container["name"], "image": container["image"],
                                                           "command": container["command"]}]}}}}


def _job_state(e2e, namespace: str, name: str) -> tuple[list | None, list]:
    job = e2e.kubectl("get", "job", name, "-n", namespace, "-o", "json", check=False)
    pods = json.loads(e2e.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={name}", "-o", "json").stdout)
    conditions = None if job.returncode else [(c["type"], c.get("reason")) for c in
                                              json.loads(job.stdout)["status"].get("conditions") or []]
    return conditions, pods["items"]


@pytest.mark.parametrize("name", ["lowered", "raised"])
def test_job_deadline_changed_while_it_runs_as_recorded(e2e, namespace, name):
    case = _case(f"30-job-deadline-{name}-patch")
    first = case["created"]["spec"]["activeDeadlineSeconds"]
    patch = case["request"]["body"]
    started = time.monotonic()
    _create(e2e, _job(namespace, name, first))
    answer = json.loads(e2e.kubectl("patch", "job", name, "-n", namespace, "--type", "merge", "-p",
                                    json.dumps(patch), "-o", "json").stdout)
    assert answer["spec"]["activeDeadlineSeconds"] == case["response"]["body"]["spec"]["activeDeadlineSeconds"]
    timeline = _case(f"30-job-deadline-{name}-timeline")["timeline"]
    if name == "lowered":
        # recorded: FailureTarget/DeadlineExceeded at 7.8 s (deadline 8), the pod and the Job gone by 8.6 s
        failed_at = next(t["at_s"] for t in timeline if t["job"])
        assert ["FailureTarget", "DeadlineExceeded"] in next(t["job"] for t in timeline if t["job"])
        wait_until(lambda: _job_state(e2e, namespace, name) == (None, []), "the Job and its pod gone",
                   failed_at + 10)
        assert time.monotonic() - started >= patch["spec"]["activeDeadlineSeconds"] - 1
    else:
        # recorded: still active, its pod waiting for its image, at 14.5 s (first deadline 5 s)
        last = timeline[-1]
        wait_until(lambda: time.monotonic() - started > first + 5, "past the first deadline", first + 10)
        conditions, pods = _job_state(e2e, namespace, name)
        assert conditions == last["job"] == [] and len(pods) == len(last["pods"]) == 1, (conditions, pods)
