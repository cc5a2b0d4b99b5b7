"""The real kubectl's create and apply commands (issue 22 item 10: a cluster to play with), and `./build.sh cluster`.

`kubectl create deployment/role/rolebinding` POST protobuf bodies and `kubectl apply` of a changed object is a
GET and a PATCH (strategic merge, with the last-applied annotation), `--server-side` a PATCH of
application/apply-patch+yaml: the test cluster answered them 415 and 405 before tests/cluster/protobuf.py and
patch.py. These run on a real cluster too (DEBUGX_E2E_KUBECONFIG), except the tests of the test cluster's own
command line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")


def _get(e2e, namespace: str, kind: str, name: str) -> dict:
    return json.loads(e2e.kubectl("-n", namespace, "get", kind, name, "-o", "json").stdout)


@needs_kubectl
def test_create_deployment_role_rolebinding(e2e, namespace: str) -> None:
    e2e.kubectl("-n", namespace, "create", "deployment", "web", f"--image={e2e.nginx_image}", "--port=80")
    e2e.kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=60s")
    deploy = _get(e2e, namespace, "deployment", "web")
    assert deploy["metadata"]["labels"] == {"app": "web"}
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    [container] = deploy["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"], container["ports"]) == (
        "nginx", e2e.nginx_image, [{"containerPort": 80, "protocol": "TCP"}])
    pods = json.loads(e2e.kubectl("-n", namespace, "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]

    e2e.kubectl("-n", namespace, "create", "role", "reader", "--verb=get,list", "--resource=pods,deployments.apps")
    assert _get(e2e, namespace, "role", "reader")["rules"] == [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]}]
    e2e.kubectl("-n", namespace, "create", "rolebinding", "reader", "--role=reader", "--user=bob",
                f"--serviceaccount={namespace}:default")
    binding = _get(e2e, namespace, "rolebinding", "reader")
    assert (binding["subjects"], binding["roleRef"]) == (
        [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"},
         {"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
    again = e2e.kubectl("-n", namespace, "create", "role", "reader", "--verb=get", "--resource=pods", check=False)
    assert again.returncode == 1 and "AlreadyExists" in again.stderr


def _role(namespace: str, verbs: list[str]) -> str:
    return json.dumps({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                       "metadata": {"name": "applied", "namespace": namespace},
                       "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]})


@needs_kubectl
def test_apply_of_changed_role_binding_and_deployment(e2e, namespace: str) -> None:
    for verbs in (["get"], ["get", "list"]):
        out = e2e.kubectl("apply", "-f", "-", input=_role(namespace, verbs)).stdout
        role = _get(e2e, namespace, "role", "applied")
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}], out
        assert json.loads(role["metadata"]["annotations"][LAST_APPLIED])["rules"][0]["verbs"] == verbs
    assert "role.rbac.authorization.k8s.io/applied configured" in out

    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "applied", "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "applied"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "ann"}]}
    e2e.kubectl("apply", "-f", "-", input=json.dumps(binding))
    binding["subjects"] = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}]
    e2e.kubectl("apply", "-f", "-", input=json.dumps(binding))
    assert _get(e2e, namespace, "rolebinding", "applied")["subjects"] == binding["subjects"]

    # Server-side apply: the applied rules replace the stored ones (a list without a merge key is atomic).
    e2e.kubectl("apply", "--server-side", "-f", "-", input=_role(namespace, ["watch"]))
    assert _get(e2e, namespace, "role", "applied")["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["watch"]}]

    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {
                  "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                      {"name": "nginx", "image": e2e.nginx_image, "env": [{"name": "A", "value": "1"}]}]}}}}
    e2e.kubectl("apply", "-f", "-", input=json.dumps(deploy))
    deploy["spec"]["replicas"] = 2
    deploy["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "2"}]
    e2e.kubectl("apply", "-f", "-", input=json.dumps(deploy))
    e2e.kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=90s")
    stored = _get(e2e, namespace, "deployment", "web")
    assert stored["spec"]["replicas"] == 2
    assert stored["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]


def _local(e2e) -> None:
    if e2e.cluster is None:
        pytest.skip("the local test cluster's own command line")


@needs_kubectl
def test_play_mode_says_how_to_use_it_and_ctrl_c_leaves_nothing(e2e) -> None:
    """`./build.sh cluster` runs `python -m tests.cluster --play dist`: its instructions work as printed, and
    SIGINT to its process group (a terminal's Ctrl-C) stops it and removes everything it made."""
    _local(e2e)
    from tests.conftest import MARKER_ENV, _leak_snapshot

    marker = f"play-{uuid.uuid4().hex[:8]}"
    before = _leak_snapshot(marker)
    proc = subprocess.Popen([sys.executable, "-m", "tests.cluster", "--play", "dist"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, MARKER_ENV: marker})
    try:
        assert proc.stdout is not None
        lines = []
        while not any(line.startswith("Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            assert line, f"the cluster ended early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.rstrip("\n"))
        text = "\n".join(lines)
        kubeconfig = Path(re.search(r"^  export KUBECONFIG=(\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
        assert f'export PATH="{ROOT / "dist"}:$PATH"' in text
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), MARKER_ENV: marker}
        for command in ("kubectl create deployment web --image=nginx",
                        "kubectl rollout status deployment/web --timeout=60s"):
            assert f"  {command.split(' --timeout')[0]}" in text
            done = subprocess.run(command.split(), env=env, capture_output=True, text=True, timeout=90)
            assert done.returncode == 0, done.stderr
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not kubeconfig.parent.exists()

    def leaks() -> dict[str, set[str]]:
        after = _leak_snapshot(marker)
        return {k: after[k] - before[k] for k in after if after[k] - before[k]}

    deadline = time.monotonic() + 10
    while leaks() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leaks() == {}


def test_offline_build_sh_cluster_needs_root() -> None:
    """Checked before building: one `error:` line, exit 2 (as root, run as nobody to see it)."""
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    done = subprocess.run([*prefix, str(ROOT / "build.sh"), "cluster"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: ./build.sh cluster needs root") and done.stderr.count("\n") == 1
