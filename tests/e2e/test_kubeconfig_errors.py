"""Errors worded like kubectl's, naming what was looked up (kubeconfig files, context, namespace), and -v=N
request lines that never show a credential: the built executable, with and without a cluster."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import debugx, executable

pytestmark = pytest.mark.e2e
REQUEST_LINE = re.compile(r"^I (GET|POST|PATCH|DELETE|PUT) https?://\S+ (\d{3} [A-Za-z ]+|\(no answer\)) "
                          r"in \d+ milliseconds$")


def run_alone(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    """The executable with no cluster: HOME without .kube, no KUBECONFIG unless given, not in a pod."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environ.update(HOME=str(home), **env)
    result = subprocess.run([executable(), *args], capture_output=True, timeout=60, env=environ)
    return result.returncode, result.stderr.decode()


def test_unknown_context(tmp_path):
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\nkind: Config\nclusters: []\nusers: []\n"
                      "contexts:\n- name: dev\n  context: {cluster: c, user: u}\ncurrent-context: dev\n")
    assert run_alone(tmp_path, "capture", "web", "--kubeconfig", str(config), "--context", "nosuch") == (
        2, 'error: context "nosuch" does not exist\n'
    )
    assert run_alone(tmp_path, "trace", "web", "--context", "nosuch", KUBECONFIG=str(config)) == (
        2, 'error: context "nosuch" does not exist\n'
    )


def test_missing_kubeconfig_flag(tmp_path):
    assert run_alone(tmp_path, "capture", "web", "--kubeconfig", "/x/y") == (
        2, "error: --kubeconfig: /x/y: no such file\n"
    )


def test_kubeconfig_env_pointing_nowhere(tmp_path):
    assert run_alone(tmp_path, "capture", "web", KUBECONFIG="/tmp/nonexistent") == (
        2, "error: no kubeconfig found (looked at /tmp/nonexistent); set KUBECONFIG or use --kubeconfig\n"
    )
    assert run_alone(tmp_path, "nodelogs", "web", KUBECONFIG="/tmp/nonexistent:/tmp/nonexistent2") == (
        2, "error: no kubeconfig found (looked at /tmp/nonexistent, /tmp/nonexistent2); set KUBECONFIG or use "
           "--kubeconfig\n"
    )


def test_no_kubeconfig_at_all(tmp_path):
    assert run_alone(tmp_path, "capture", "web") == (
        2, f"error: no kubeconfig found (looked at {tmp_path}/home/.kube/config); set KUBECONFIG or use "
           "--kubeconfig\n"
    )


def test_unknown_namespace(e2e, tmp_path):
    result = debugx(e2e, "capture", "web", "-n", "debugx-no-such-ns", "-o", str(tmp_path / "x.pcap"))
    assert (result.returncode, result.stderr.decode()) == (
        3, 'error: pods "web" not found in namespace "debugx-no-such-ns"\n'
    )
    assert not (tmp_path / "x.pcap").exists()


def test_unknown_pod_names_the_namespace(e2e, namespace, tmp_path):
    result = debugx(e2e, "trace", "nosuchpod", "-n", namespace)
    assert (result.returncode, result.stderr.decode()) == (
        3, f'error: pods "nosuchpod" not found in namespace "{namespace}"\n'
    )


def credentials(kubeconfig: Path) -> list[str]:
    """Every secret the kubeconfig holds (tokens, passwords, client keys and certificates, also decoded)."""
    found: list[str] = []
    for user in (yaml.safe_load(kubeconfig.read_text()) or {}).get("users") or []:
        entry: dict[str, Any] = user.get("user") or {}
        for key in ("token", "password", "client-key-data", "client-certificate-data"):
            value = entry.get(key)
            if value:
                found.append(str(value))
                if key.endswith("-data"):
                    found += [line for line in base64.b64decode(value).decode().splitlines()
                              if line and not line.startswith("-----")]
        for key in ("client-key", "tokenFile"):
            if entry.get(key):
                text = Path(entry[key]).read_text()
                found += [line for line in text.splitlines() if line and not line.startswith("-----")]
    return found


def test_verbose_shows_requests_and_no_credential(e2e, nginx_pod, tmp_path):
    namespace, pod = nginx_pod
    out = tmp_path / "x.pcap"
    result = debugx(e2e, "capture", pod, "-n", namespace, "-o", str(out), "--duration", "1s", "-v=6")
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    requests = [line for line in stderr.splitlines() if line.startswith("I ")]
    assert requests and all(REQUEST_LINE.match(line) for line in requests), requests
    host = re.escape(requests[0].split()[2].split("/api")[0])
    expected = [
        rf"I GET {host}/api/v1/namespaces/{namespace}/pods/{pod} 200 OK in \d+ milliseconds",
        rf"I PATCH {host}/api/v1/namespaces/{namespace}/pods/{pod}/ephemeralcontainers 200 OK in \d+ milliseconds",
        rf"I GET {host}/api/v1/namespaces/{namespace}/pods\?watch=true&fieldSelector=metadata.name%3D{pod}&\S+ "
        r"200 OK in \d+ milliseconds",
        rf"I GET {host}/api/v1/namespaces/{namespace}/pods/{pod}/exec\?command=\S+ 101 Switching Protocols "
        r"in \d+ milliseconds",
    ]
    for pattern in expected:
        assert any(re.fullmatch(pattern, line) for line in requests), (pattern, requests)
    secrets = credentials(e2e.kubeconfig)
    assert [s for s in secrets if s in stderr] == []
    # no credential header (the API group authorization.k8s.io of the access reviews is a path, not one)
    assert not re.search(r"bearer|authorization(?!\.k8s\.io/)", stderr, re.IGNORECASE)

    missing = debugx(e2e, "capture", "nosuchpod", "-n", namespace, "-o", str(tmp_path / "y.pcap"), "-v=6")
    lines = missing.stderr.decode().splitlines()
    assert missing.returncode == 3
    # The pod's 404, then one GET per kind a "did you mean" could name (none exists here), then the error.
    asked = [line.split()[2].split(f"/namespaces/{namespace}/")[1] for line in lines[:-1] if line.startswith("I GET")]
    assert asked[-5:] == ["pods/nosuchpod", "deployments/nosuchpod", "statefulsets/nosuchpod",
                          "daemonsets/nosuchpod", "services/nosuchpod"], lines
    assert re.fullmatch(rf"I GET {host}/api/v1/namespaces/{namespace}/pods/nosuchpod 404 Not Found in \d+ "
                        r"milliseconds", lines[-6]), lines
    assert lines[-1] == f'error: pods "nosuchpod" not found in namespace "{namespace}"'
