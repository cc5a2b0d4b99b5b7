"""Records round 3 of the contract corpus (tests/cluster/recordings/30-*.json) from a real cluster: what the
test cluster must copy for issue 20. Run against the lab (../shared/lab), never in CI:

    KUBECONFIG=... python -m tests.cluster.record_round3 DEBUG_IMAGE NGINX_IMAGE DISTROLESS_IMAGE

Cases (namespace rec3, deleted at the end):
- 30-expansion-*: a pod whose command and args hold `$$`, `$(VAR)` of its env, an unknown `$(NOPE)`, `$$(A)` and
  an unterminated `$(A`; printed by `printf '%s\\n'` in single quotes, so the log shows what the kubelet passed.
- 30-gid-*: a distroless pod (runAsUser 65532, no runAsGroup) and ephemeral containers of the debug image as
  65532 without and with runAsGroup 65532: the Gid lines of /proc/1/status and /proc/self/status, and whether
  /proc/1/root can be listed.
- 30-nginx-workers: how many `nginx: worker process` the nginx image runs, and nproc.
- 30-job-deadline-*: a Job whose pod's image cannot be pulled, its activeDeadlineSeconds lowered and raised by a
  merge PATCH: when the Job fails (DeadlineExceeded), when its pod and the Job (ttlSecondsAfterFinished 0) are gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

NS = "rec3"
OUT = Path(__file__).parent / "recordings"
EXPAND_SCRIPT = "printf '%s\\n' '1[$$]' '2[$(A)]' '3[$(B)]' '4[$(NOPE)]' '5[$$(A)]' '6[$(A]' '7[$x]' \"$@\""
GID_SCRIPT = ('for f in /proc/1/status /proc/self/status; do while read -r k r e s fs; do '
              '[ "$k" = Gid: ] && echo "$f Gid: $r $e $s $fs"; done < "$f"; done; '
              'ls /proc/1/root/ >/dev/null 2>&1; echo "ls /proc/1/root/: exit $?"')


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=check)


def create(body: dict) -> dict:
    out = kubectl("create", "-f", "-", "-o", "json", stdin=json.dumps(body))
    return json.loads(out.stdout)


def save(case: str, what: str, **rest: object) -> None:
    (OUT / f"{case}.json").write_text(json.dumps({"case": case, "what": what, **rest}, indent=2) + "\n")
    print("recorded", case, file=sys.stderr)


def wait(cond, what: str, timeout: float = 120):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.5)
    raise TimeoutError(what)


def pod(name: str) -> dict:
    return json.loads(kubectl("get", "pod", "-n", NS, name, "-o", "json").stdout)


def running(name: str, container: str | None = None) -> dict | None:
    p = pod(name)
    statuses = (p.get("status") or {}).get("containerStatuses" if container is None
                                           else "ephemeralContainerStatuses") or []
    ok = [s for s in statuses if (container is None or s["name"] == container) and "running" in s["state"]]
    return p if ok else None


def expansion(debug: str) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "expand", "namespace": NS},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": debug, "command": ["sh", "-c", EXPAND_SCRIPT, "sh"],
                                     "args": ["8[$(A)]", "9[$$]", "10[$(A)$(B)]", "11[$]", "12[$$$(A)]"],
                                     "env": [{"name": "A", "value": "a"}, {"name": "B", "value": "$(A)-b"}]}]}}
    created = create(body)
    wait(lambda: pod("expand")["status"].get("phase") == "Succeeded", "expand to finish")
    log = kubectl("logs", "-n", NS, "expand").stdout.splitlines()
    save("30-expansion-create-pod", "POST a pod whose command/args hold $$, $(A), $(B) (env, itself $(A)-b), "
         "$(NOPE), $$(A), $(A unterminated", request={"method": "POST", "path": f"/api/v1/namespaces/{NS}/pods",
                                                      "body": body},
         response={"status": 201, "body": created})
    save("30-expansion-log", "the pod's log: printf '%s\\n' of every word, single-quoted, so exactly what the "
         "kubelet passed after expansion", output=log)


def gid(debug: str, distroless: str) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gid", "namespace": NS},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": distroless,
                                     "command": ["python3", "-c", "import time; time.sleep(3600)"],
                                     "securityContext": {"runAsUser": 65532, "runAsNonRoot": True}}]}}
    create(body)
    got = wait(lambda: running("gid"), "gid running")
    save("30-gid-pod-running", "GET the distroless pod (runAsUser 65532, no runAsGroup) once running: does its "
         "status name the user (user.linux)?", response={"status": 200, "body": got})
    facts = {}
    for name, sc in (("e1", {"runAsUser": 65532}), ("e2", {"runAsUser": 65532, "runAsGroup": 65532})):
        ec = {"name": name, "image": debug, "command": ["sleep", "3600"], "targetContainerName": "app",
              "securityContext": sc}
        kubectl("patch", "pod", "gid", "-n", NS, "--subresource", "ephemeralcontainers", "--type", "strategic",
                "-p", json.dumps({"spec": {"ephemeralContainers": [ec]}}))
        wait(lambda n=name: running("gid", n), f"{name} running")
        out = kubectl("exec", "-n", NS, "gid", "-c", name, "--", "sh", "-c", GID_SCRIPT, check=False)
        save(f"30-gid-{name}", f"ephemeral container {name} (debug image, securityContext {json.dumps(sc)}, target "
             "app): the Gid lines of the target's main process and its own, then whether /proc/1/root opens",
             request={"container": name, "securityContext": sc, "command": ["sh", "-c", GID_SCRIPT]},
             output=out.stdout.splitlines(), exit_code=out.returncode)
        facts[name] = out.stdout
    print(json.dumps(facts, indent=1), file=sys.stderr)


def nginx_workers(nginx: str, debug: str) -> None:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": NS},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "nginx", "image": nginx}]}}
    create(body)
    wait(lambda: running("web"), "web running")
    ec = {"name": "ps", "image": debug, "command": ["sleep", "3600"], "targetContainerName": "nginx"}
    kubectl("patch", "pod", "web", "-n", NS, "--subresource", "ephemeralcontainers", "--type", "strategic",
            "-p", json.dumps({"spec": {"ephemeralContainers": [ec]}}))
    wait(lambda: running("web", "ps"), "ps running")
    time.sleep(1)  # nginx forks its workers right after it starts
    ps = kubectl("exec", "-n", NS, "web", "-c", "ps", "--", "ps", "-eo", "args").stdout.splitlines()
    nproc = kubectl("exec", "-n", NS, "web", "-c", "ps", "--", "nproc", check=False).stdout.strip()
    conf = kubectl("exec", "-n", NS, "web", "-c", "ps", "--", "sh", "-c",
                   "grep worker_processes /proc/1/root/etc/nginx/nginx.conf", check=False).stdout.strip()
    save("30-nginx-workers", f"the processes of an {nginx} pod (ps -eo args in an ephemeral container sharing its "
         "PID namespace) and the node's CPUs", output=ps,
         facts={"workers": sum(1 for line in ps if line.startswith("nginx: worker process")), "nproc": nproc,
                "worker_processes": conf})


def job_deadline() -> None:
    def job(name: str, deadline: int) -> dict:
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS},
                "spec": {"backoffLimit": 0, "activeDeadlineSeconds": deadline, "ttlSecondsAfterFinished": 0,
                         "template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                               "containers": [{"name": "c", "image": "localhost/nosuch:v1",
                                                               "command": ["sleep", "3600"]}]}}}}

    for name, first, patched in (("lowered", 600, 8), ("raised", 5, 600)):
        started = time.monotonic()
        created = create(job(name, first))
        patch = {"spec": {"activeDeadlineSeconds": patched}}
        answer = kubectl("patch", "job", name, "-n", NS, "--type", "merge", "-p", json.dumps(patch), "-o", "json")
        save(f"30-job-deadline-{name}-patch", f"PATCH (merge) Job {name}: activeDeadlineSeconds {first} -> {patched} "
             "while its pod cannot pull its image",
             request={"method": "PATCH", "path": f"/apis/batch/v1/namespaces/{NS}/jobs/{name}",
                      "headers": {"content-type": "application/merge-patch+json"}, "body": patch},
             response={"status": 200, "body": json.loads(answer.stdout)}, created=created)
        timeline = []
        last = None
        until = started + (40 if patched < first else 15)
        while time.monotonic() < until:
            j = kubectl("get", "job", name, "-n", NS, "-o", "json", check=False)
            pods = json.loads(kubectl("get", "pods", "-n", NS, "-l", f"job-name={name}", "-o", "json").stdout)
            state = {"job": None if j.returncode else
                     [(c["type"], c.get("reason")) for c in json.loads(j.stdout)["status"].get("conditions") or []],
                     "pods": [(p["metadata"]["name"], p["status"].get("phase"),
                               [((s.get("state") or {}).get("waiting") or {}).get("reason")
                                for s in p["status"].get("containerStatuses") or []],
                               bool(p["metadata"].get("deletionTimestamp"))) for p in pods["items"]]}
            if state != last:
                timeline.append({"at_s": round(time.monotonic() - started, 1), **state})
                last = state
            if state["job"] is None and not state["pods"]:
                break
            time.sleep(0.5)
        save(f"30-job-deadline-{name}-timeline", f"Job {name} after the PATCH: every change of its conditions and "
             "pods, seconds after its creation, until it is gone (or the observation ends)", timeline=timeline)
        kubectl("delete", "job", name, "-n", NS, "--ignore-not-found", "--cascade=background", check=False)


def main() -> None:
    debug, nginx, distroless = sys.argv[1:4]
    kubectl("create", "namespace", NS)
    try:
        expansion(debug)
        gid(debug, distroless)
        nginx_workers(nginx, debug)
        job_deadline()
    finally:
        kubectl("delete", "namespace", NS, "--wait=false", check=False)


if __name__ == "__main__":
    main()
