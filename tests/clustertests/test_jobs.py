"""batch/v1 Jobs as a real cluster runs them (what nodelogs' node Job relies on): the status follows the pod
(active, then Complete with completionTime or Failed), ttlSecondsAfterFinished deletes the finished Job and its
pod, and a DELETE through the API orphans the pods unless a propagationPolicy says otherwise.

Through kubectl and the REST API only, so they run on a real cluster (DEBUGX_E2E_KUBECONFIG) as on the test one.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.helpers import wait_until

pytestmark = pytest.mark.e2e
ORPHAN_WARNING = ("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
                  "to remove them or set propagationPolicy=Orphan to suppress this warning")


def create_job(e2e, namespace: str, name: str, script: str, **spec) -> dict:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
           "spec": {"backoffLimit": 0, **spec, "template": {"spec": {
               "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
               "containers": [{"name": "main", "image": e2e.image, "command": ["sh", "-c", script]}]}}}}
    return json.loads(e2e.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(job)).stdout)


def get_job(e2e, namespace: str, name: str) -> dict | None:
    res = e2e.kubectl("get", "job", "-n", namespace, name, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def job_pods(e2e, namespace: str, uid: str) -> list[dict]:
    out = e2e.kubectl("get", "pods", "-n", namespace, "-l", f"controller-uid={uid}", "-o", "json").stdout
    return json.loads(out)["items"]


def condition_types(job: dict) -> list[str]:
    return [c["type"] for c in (job.get("status") or {}).get("conditions") or []]


def test_a_jobs_status_follows_its_pod_to_complete(e2e, namespace):
    job = create_job(e2e, namespace, "ok", "sleep 3")
    uid = job["metadata"]["uid"]
    wait_until(lambda: (get_job(e2e, namespace, "ok") or {}).get("status", {}).get("active") == 1, "active 1")
    [pod] = job_pods(e2e, namespace, uid)
    assert pod["metadata"]["labels"]["job-name"] == "ok"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == uid
    done = wait_until(lambda: (j := get_job(e2e, namespace, "ok")) and "Complete" in condition_types(j) and j,
                      "the Job's Complete condition", 60)
    status = done["status"]
    assert condition_types(done) == ["SuccessCriteriaMet", "Complete"]
    assert {c["reason"] for c in status["conditions"]} == {"CompletionsReached"}
    assert (status.get("active"), status["succeeded"], status.get("failed")) == (None, 1, None)
    assert status["completionTime"] >= status["startTime"]
    assert get_job(e2e, namespace, "ok")["status"]["completionTime"] == status["completionTime"]  # stays


def test_a_job_whose_pod_fails_fails_after_its_backoff_limit(e2e, namespace):
    create_job(e2e, namespace, "bad", "exit 3")
    failed = wait_until(lambda: (j := get_job(e2e, namespace, "bad")) and "Failed" in condition_types(j) and j,
                        "the Job's Failed condition", 60)
    assert condition_types(failed) == ["FailureTarget", "Failed"]
    assert {c["reason"] for c in failed["status"]["conditions"]} == {"BackoffLimitExceeded"}
    assert (failed["status"]["failed"], failed["status"].get("completionTime")) == (1, None)


def test_ttl_seconds_after_finished_deletes_the_job_and_its_pod(e2e, namespace):
    job = create_job(e2e, namespace, "brief", "sleep 1", ttlSecondsAfterFinished=0)
    uid = job["metadata"]["uid"]
    wait_until(lambda: job_pods(e2e, namespace, uid), "the Job's pod")
    wait_until(lambda: get_job(e2e, namespace, "brief") is None, "the finished Job's deletion", 60)
    wait_until(lambda: not job_pods(e2e, namespace, uid), "its pod's deletion", 60)


def delete_through_the_api(e2e, namespace: str, name: str, body: dict | None) -> list[str]:
    """DELETE the Job as a client of the REST API does (kubectl always sends a policy); the Warning headers."""
    response = e2e.api_client().call_api(
        f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", "DELETE", body=body,
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=False)
    response, status, headers = response
    assert status == 200
    return [value for key, value in headers.items() if key.lower() == "warning"]


def test_deleting_a_job_through_the_api_orphans_its_pods_unless_told(e2e, namespace):
    kept = create_job(e2e, namespace, "kept", "sleep 600")
    gone = create_job(e2e, namespace, "gone", "sleep 600")
    for job in (kept, gone):
        wait_until(lambda job=job: job_pods(e2e, namespace, job["metadata"]["uid"]), "the Job's pod")

    warnings = delete_through_the_api(e2e, namespace, "kept", None)
    assert any(ORPHAN_WARNING in w for w in warnings), warnings
    wait_until(lambda: get_job(e2e, namespace, "kept") is None, "the Job's deletion")
    orphan = wait_until(lambda: [p for p in job_pods(e2e, namespace, kept["metadata"]["uid"])
                                 if not p["metadata"].get("ownerReferences")], "its pod, orphaned")
    assert orphan[0]["status"]["phase"] in ("Pending", "Running")
    assert not orphan[0]["metadata"].get("deletionTimestamp")

    assert delete_through_the_api(e2e, namespace, "gone", {"propagationPolicy": "Background"}) == []
    wait_until(lambda: not job_pods(e2e, namespace, gone["metadata"]["uid"]), "the Background deletion of its pod",
               60)
    e2e.kubectl("delete", "pod", "-n", namespace, orphan[0]["metadata"]["name"], "--wait=false")
