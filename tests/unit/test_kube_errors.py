"""Error answers of the API server (bodies as recorded from a real v1.33 server) become our errors; kubeconfig
errors worded like kubectl's; -v=N request lines that never show a credential."""

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubectl_debugx.errors import DebugxError, ExitCode, Forbidden, NotFound, NotReady, UsageError
from kubectl_debugx.kube import config
from kubectl_debugx.kube.apierrors import (
    ApiBadRequest,
    ApiConflict,
    ApiError,
    ApiForbidden,
    ApiNotFound,
    ApiServerError,
    api_error,
)
from kubectl_debugx.kube.client import Kube
from kubectl_debugx.kube.config import KubeFlags, context_names
from kubectl_debugx.remote import ephemeral

NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": 'pods "nosuchpod" not found', "reason": "NotFound",
             "details": {"name": "nosuchpod", "kind": "pods"}, "code": 404}
RBAC = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'pods "nginx" is forbidden: User "system:serviceaccount:rec:limited" cannot patch resource '
                   '"pods/ephemeralcontainers" in API group "" in the namespace "rec"',
        "reason": "Forbidden", "details": {"name": "nginx", "kind": "pods"}, "code": 403}
PSA = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
       "message": 'pods "nginx" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
                  '(container "debugx-psa-a" must not include "NET_ADMIN", "NET_RAW" in '
                  'securityContext.capabilities.add)',
       "reason": "Forbidden", "details": {"name": "nginx", "kind": "pods"}, "code": 403}


@pytest.mark.parametrize(
    ("status", "body", "kind", "base", "code"),
    [(404, NOT_FOUND, ApiNotFound, NotFound, ExitCode.NOT_FOUND),
     (403, RBAC, ApiForbidden, Forbidden, ExitCode.FORBIDDEN),
     (403, PSA, ApiForbidden, Forbidden, ExitCode.FORBIDDEN),
     (400, {"message": "bad patch", "reason": "BadRequest"}, ApiBadRequest, UsageError, ExitCode.USAGE),
     (422, {"message": "Pod \"nginx\" is invalid", "reason": "Invalid"}, ApiBadRequest, UsageError, ExitCode.USAGE),
     (409, {"message": 'pods "x" already exists', "reason": "AlreadyExists"}, ApiConflict, UsageError,
      ExitCode.USAGE),
     (500, {"message": "boom"}, ApiServerError, NotReady, ExitCode.NOT_READY),
     (502, {"message": "bad gateway"}, ApiServerError, NotReady, ExitCode.NOT_READY),
     (503, {"message": "error trying to reach service: EOF"}, ApiServerError, NotReady, ExitCode.NOT_READY),
     (504, {"message": "timeout"}, ApiServerError, NotReady, ExitCode.NOT_READY),
     (410, {"message": "too old resource version", "reason": "Expired"}, ApiError, DebugxError, ExitCode.ERROR),
     (501, {"message": "not implemented"}, ApiError, DebugxError, ExitCode.ERROR)],
)
def test_status_bodies_translate_to_our_errors(status, body, kind, base, code):
    error = api_error(status, json.dumps(body).encode())
    assert (type(error), error.code, str(error), error.args, error.status, error.body, error.reason) == (
        kind, code, body["message"], (body["message"],), status, body, body.get("reason", "")
    )
    # Both an ApiError (callers check .status) and the matching error of errors.py (callers catch Forbidden...).
    assert isinstance(error, ApiError) and isinstance(error, base)


def test_only_the_error_classes_carry_exit_codes():
    assert [(kind.__name__, kind.code) for kind in
            (ApiError, ApiBadRequest, ApiForbidden, ApiNotFound, ApiConflict, ApiServerError)] == [
        ("ApiError", ExitCode.ERROR), ("ApiBadRequest", UsageError.code), ("ApiForbidden", Forbidden.code),
        ("ApiNotFound", NotFound.code), ("ApiConflict", UsageError.code), ("ApiServerError", NotReady.code),
    ]


def test_an_api_403_is_caught_as_forbidden():
    try:
        raise api_error(403, json.dumps(RBAC).encode())
    except Forbidden as e:
        caught: Forbidden = e
    assert isinstance(caught, ApiError)
    assert (type(caught), caught.status, caught.reason, str(caught), caught.code) == (
        ApiForbidden, 403, "Forbidden", RBAC["message"], ExitCode.FORBIDDEN
    )


def test_an_answer_without_body_or_status_is_a_plain_api_error():
    error = api_error(0, None)
    assert (type(error), str(error), error.status, error.body, error.reason, error.code) == (
        ApiError, "the server answered HTTP 0", 0, {}, "", ExitCode.ERROR
    )


def test_a_plain_text_body_is_kept_as_the_message():
    error = api_error(500, b'container not found ("debugx-done1")\n')
    assert (type(error), error.args, error.status, error.body, error.code) == (
        ApiServerError, ('container not found ("debugx-done1")',), 500,
        {"message": 'container not found ("debugx-done1")'}, ExitCode.NOT_READY,
    )


def test_refusals_are_explained_in_one_line():
    psa = ephemeral.explain_forbidden(api_error(403, json.dumps(PSA).encode()), "netadmin", "try X")
    assert psa.args[0] == (
        'Pod Security refuses the debug container with profile netadmin: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "debugx-psa-a" must not include "NET_ADMIN", "NET_RAW" in '
        "securityContext.capabilities.add); try X"
    )
    rbac = ephemeral.explain_forbidden(api_error(403, json.dumps(RBAC).encode()), "netadmin", "try X")
    assert rbac.args[0] == str(RBAC["message"]) + (
        " (needs patch on pods/ephemeralcontainers, get and create on pods/exec)"
    )
    assert psa.code == rbac.code == ExitCode.FORBIDDEN



# --- not found names the namespace that was looked in ------------------------------------------------------

RECORDINGS = Path(__file__).resolve().parents[1] / "cluster" / "recordings"


def recorded_error(case: str) -> ApiError:
    recording = json.loads((RECORDINGS / f"{case}.json").read_text())
    response = recording["response"]
    return api_error(response["status"], json.dumps(response["body"]).encode(), recording["request"]["path"])


@pytest.mark.parametrize(
    ("case", "message"),
    [("05-get-missing-pod", 'pods "nosuchpod" not found in namespace "rec"'),
     ("05-get-pod-missing-namespace", 'pods "nginx" not found in namespace "nosuchns"'),
     ("05-patch-ec-missing-pod", 'pods "nosuchpod" not found in namespace "rec"'),
     ("20-get-deployment-missing", 'deployments.apps "nosuch" not found in namespace "rec2-work"'),
     ("20-get-deployment-missing-namespace", 'deployments.apps "web" not found in namespace "rec2-nosuchns"')],
)
def test_not_found_names_the_namespace_of_the_request(case, message):
    error = recorded_error(case)
    assert (type(error), str(error), error.code) == (ApiNotFound, message, ExitCode.NOT_FOUND)
    # The server's own Status is kept as it came.
    assert error.body["message"] == message.split(" in namespace ")[0]


def test_not_found_outside_a_namespace_is_the_servers_message():
    node = api_error(404, json.dumps({"message": 'nodes "vm9" not found', "reason": "NotFound"}), "/api/v1/nodes/vm9")
    proxied = api_error(404, b"404 page not found\n", "/api/v1/nodes/vm/proxy/logs/pods/")
    namespace = api_error(404, json.dumps({"message": 'namespaces "x" not found'}), "/api/v1/namespaces/x")
    other = api_error(404, json.dumps({"message": "the server could not find the requested resource"}),
                      "/api/v1/namespaces/rec/pods/web/ephemeralcontainers")
    assert [str(e) for e in (node, proxied, namespace, other)] == [
        'nodes "vm9" not found', "404 page not found", 'namespaces "x" not found',
        "the server could not find the requested resource",
    ]


# --- kubeconfig: what was looked up, worded like kubectl ---------------------------------------------------

TOKEN = "FAKE-TOKEN-dGhpcyBpcyBzZWNyZXQ"  # noqa: S105 - a test credential that must never be printed


def kubeconfig(path: Path, server: str = "https://127.0.0.1:6443", current: str | None = "dev",
               namespace: str = "shop") -> Path:
    text = f"""apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {{server: "{server}", insecure-skip-tls-verify: true}}
contexts:
- name: dev
  context: {{cluster: c1, user: u1, namespace: {namespace}}}
- name: other
  context: {{cluster: c1, user: u1}}
users:
- name: u1
  user: {{token: {TOKEN}}}
"""
    if current is not None:
        text += f"current-context: {current}\n"
    path.write_text(text)
    return path


@pytest.fixture
def no_cluster_env(monkeypatch, tmp_path):
    """No KUBECONFIG, HOME without .kube, not in a pod."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", str(tmp_path / "no-sa"))
    return tmp_path


def usage_error(flags: KubeFlags) -> str:
    with pytest.raises(UsageError) as e:
        Kube(flags)
    assert e.value.code == ExitCode.USAGE
    assert TOKEN not in str(e.value)
    return str(e.value)


def test_unknown_context_is_worded_like_kubectl(no_cluster_env):
    config = kubeconfig(no_cluster_env / "config")
    assert usage_error(KubeFlags(kubeconfig=str(config), context="nosuch")) == 'context "nosuch" does not exist'


def test_current_context_naming_no_context(no_cluster_env):
    config = kubeconfig(no_cluster_env / "config", current="gone")
    assert usage_error(KubeFlags(kubeconfig=str(config))) == (
        f'context "gone" does not exist (the current context of {config})'
    )


def test_no_current_context_names_the_files(no_cluster_env, monkeypatch):
    first = kubeconfig(no_cluster_env / "a", current=None)
    second = kubeconfig(no_cluster_env / "b", current=None)
    monkeypatch.setenv("KUBECONFIG", f"{first}:{no_cluster_env / 'missing'}:{second}")
    assert usage_error(KubeFlags()) == (
        f"no current context in kubeconfig {first}, {second}; use --context NAME "
        "(or kubectl config use-context NAME)"
    )
    assert Kube(KubeFlags(context="other")).namespace == "default"


def test_missing_kubeconfig_flag(no_cluster_env):
    assert usage_error(KubeFlags(kubeconfig="/x/y")) == "--kubeconfig: /x/y: no such file"


def test_kubeconfig_env_pointing_nowhere(no_cluster_env, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/tmp/nonexistent")
    assert usage_error(KubeFlags()) == (
        "no kubeconfig found (looked at /tmp/nonexistent); set KUBECONFIG or use --kubeconfig"
    )
    monkeypatch.setenv("KUBECONFIG", "/tmp/nonexistent:/tmp/nonexistent2")
    assert usage_error(KubeFlags(context="dev")) == (
        "no kubeconfig found (looked at /tmp/nonexistent, /tmp/nonexistent2); set KUBECONFIG or use --kubeconfig"
    )


def test_no_kubeconfig_at_all_names_the_default_path(no_cluster_env):
    assert usage_error(KubeFlags()) == (
        f"no kubeconfig found (looked at {no_cluster_env}/home/.kube/config); set KUBECONFIG or use --kubeconfig"
    )
    assert context_names(None) == []


def test_invalid_yaml_names_the_file_and_never_quotes_it(no_cluster_env):
    config = no_cluster_env / "config"
    config.write_text(f"users:\n- name: u1\n  user: {{token: {TOKEN}\n")
    message = usage_error(KubeFlags(kubeconfig=str(config)))
    assert re.fullmatch(rf"invalid kubeconfig {config}: not valid YAML \(.+ at line \d+, column \d+\)", message)


def test_the_namespace_comes_from_the_flag_then_the_context(no_cluster_env, monkeypatch):
    config = kubeconfig(no_cluster_env / "config")
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert Kube(KubeFlags()).namespace == "shop"
    assert Kube(KubeFlags(namespace="n1")).namespace == "n1"
    assert Kube(KubeFlags(context="other")).namespace == "default"
    assert context_names(None) == ["dev", "other"]


def test_in_cluster_configuration_without_kubeconfig(no_cluster_env, monkeypatch):
    sa = no_cluster_env / "sa"
    sa.mkdir()
    (sa / "token").write_text(TOKEN)
    (sa / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (sa / "namespace").write_text("team-a\n")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", str(sa))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    kube = Kube(KubeFlags())
    assert (kube.host, kube.namespace) == ("https://10.96.0.1:443", "team-a")
    assert Kube(KubeFlags(namespace="n1")).namespace == "n1"
    # Not in a pod: the kubeconfig error as before.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert usage_error(KubeFlags()).startswith("no kubeconfig found (looked at ")


# --- -v=N: one line per request, never a credential -------------------------------------------------------


class FakeApiServer(BaseHTTPRequestHandler):
    seen_authorization: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's name
        FakeApiServer.seen_authorization.append(self.headers.get("Authorization", ""))
        if self.path.startswith("/api/v1/namespaces/shop/pods/web/exec"):
            key = self.headers["Sec-WebSocket-Key"]
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                      .digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.send_header("Sec-WebSocket-Protocol", "v5.channel.k8s.io")
            self.end_headers()
            self.close_connection = True
        elif self.path == "/api/v1/namespaces/shop/pods/web":
            self._json(200, {"kind": "Pod", "metadata": {"name": "web"}})
        elif self.path.startswith("/api/v1/namespaces/shop/pods?"):
            data = json.dumps({"type": "ADDED", "object": {"metadata": {"name": "web"}}}).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._json(404, {**NOT_FOUND, "message": 'pods "nosuchpod" not found'})


@pytest.fixture
def api_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeApiServer.seen_authorization = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_verbose_prints_each_request_and_never_the_token(no_cluster_env, api_server, capsys):
    config = kubeconfig(no_cluster_env / "config", server=api_server)
    kube = Kube(KubeFlags(kubeconfig=str(config), verbosity=6))
    assert kube.get_pod("shop", "web")["metadata"]["name"] == "web"
    with pytest.raises(ApiNotFound, match='^pods "nosuchpod" not found in namespace "shop"$'):
        kube.get_pod("shop", "nosuchpod")
    events = kube.watch_pod("shop", "web", "7", deadline=time.monotonic() + 1.5)
    assert next(events) == ("ADDED", {"metadata": {"name": "web"}})
    events.close()
    kube.open_exec("shop", "web", "app", ["tcpdump", "-i", "any"]).close()
    out, err = capsys.readouterr()
    assert out == ""
    lines = re.sub(r" in \d+ milliseconds$", " in N milliseconds", err, flags=re.MULTILINE).splitlines()
    assert lines == [
        f"I GET {api_server}/api/v1/namespaces/shop/pods/web 200 OK in N milliseconds",
        f"I GET {api_server}/api/v1/namespaces/shop/pods/nosuchpod 404 Not Found in N milliseconds",
        f"I GET {api_server}/api/v1/namespaces/shop/pods?watch=true&fieldSelector=metadata.name%3Dweb"
        "&resourceVersion=7&timeoutSeconds=1&allowWatchBookmarks=false 200 OK in N milliseconds",
        f"I GET {api_server}/api/v1/namespaces/shop/pods/web/exec?command=tcpdump&command=-i&command=any"
        "&container=app&stdout=true&stderr=true 101 Switching Protocols in N milliseconds",
    ]
    # The token was sent with every request, and shown in none of the lines.
    assert FakeApiServer.seen_authorization[:2] == [f"Bearer {TOKEN}"] * 2
    assert TOKEN not in err and "Bearer" not in err and "authorization" not in err.lower()


def test_quiet_by_default_and_unreachable_is_one_line(no_cluster_env, api_server, capsys):
    config = kubeconfig(no_cluster_env / "config", server=api_server)
    Kube(KubeFlags(kubeconfig=str(config))).get_pod("shop", "web")
    assert capsys.readouterr() == ("", "")
    dead = kubeconfig(no_cluster_env / "dead", server="http://127.0.0.1:9")
    kube = Kube(KubeFlags(kubeconfig=str(dead), verbosity=1))
    with pytest.raises(DebugxError) as e:
        kube.get_pod("shop", "web")
    assert e.value.code == ExitCode.UNREACHABLE
    err = capsys.readouterr().err
    assert re.fullmatch(r"I GET http://127\.0\.0\.1:9/api/v1/namespaces/shop/pods/web \(no answer\) in \d+ "
                        r"milliseconds\n", err), err
    assert TOKEN not in err
