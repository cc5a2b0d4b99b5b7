"""kubectl's global flags: where they may stand on the line, what they override in the kubeconfig, the
impersonation headers, an exec credential plugin's failure, and --request-timeout over a batch of reviews."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import typer

from kubectl_debugx.cli.main import kubectl_argv, main, route_logging
from kubectl_debugx.cli.workflow import app, connection
from kubectl_debugx.errors import ExitCode, Unauthorized, Unreachable, UsageError
from kubectl_debugx.flags import Flags
from kubectl_debugx.kube import client as client_module
from kubectl_debugx.kube import config
from kubectl_debugx.kube.apierrors import api_error
from kubectl_debugx.kube.client import Kube
from kubectl_debugx.kube.config import DEFAULT_REQUEST_TIMEOUT, Impersonation, KubeFlags

TOKEN = "FAKE-TOKEN-Z2xvYmFsLWZsYWdz"  # noqa: S105 - a test credential that must never be printed


@pytest.fixture
def group() -> Any:
    return typer.main.get_command(app)


@pytest.mark.parametrize(("argv", "expected"), [
    (["-n", "shop", "capture", "web"], ["capture", "--namespace", "shop", "web"]),
    (["--v=6", "version"], ["version", "--v=6"]),
    (["-n=shop", "capture", "web", "-c=app"], ["capture", "--namespace=shop", "web", "-c", "app"]),
    (["--as", "jane", "--as-group=dev", "--as-group", "ops", "-s", "https://h:6443", "--insecure-skip-tls-verify",
      "doctor", "web"],
     ["doctor", "--as", "jane", "--as-group=dev", "--as-group", "ops", "--server", "https://h:6443",
      "--insecure-skip-tls-verify", "web"]),
    (["-nshop", "-q", "gc"], ["gc", "--namespace=shop", "--quiet"]),
    # moved in the long form: after trace, -s is strace's string size (the lab's e2e found it read as --server)
    (["-s", "https://h:6443", "trace", "web", "-s", "64"], ["trace", "--server", "https://h:6443", "web", "-s", "64"]),
    # after the command: only -X=VALUE is rewritten, and never after --
    (["trace", "web", "-n=shop", "--", "-n=x"], ["trace", "web", "-n", "shop", "--", "-n=x"]),
    # a value that looks like -X=V is a value
    (["capture", "web", "-f", "-n=x", "-n=y"], ["capture", "web", "-f", "-n=x", "-n", "y"]),
    # -q takes no value: -q=... is left for click to judge
    (["gc", "-q=1"], ["gc", "-q=1"]),
    # not a global flag before the command, or no command: left for click to refuse
    (["-c", "app", "capture", "web"], ["-c", "app", "capture", "web"]),
    (["-n", "shop"], ["-n", "shop"]),
    (["--help"], ["--help"]),
])
def test_kubectl_argv(group, argv, expected):
    assert kubectl_argv(argv, group) == expected


def test_flags_before_the_command_reach_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert main(["--kubeconfig", str(tmp_path / "none"), "-n=shop", "capture", "web"]) == ExitCode.USAGE
    assert capsys.readouterr().err == f"error: --kubeconfig: {tmp_path / 'none'}: no such file\n"


def test_connection_carries_every_flag_and_the_default_timeout():
    flags = Flags(namespace="ns", context="c", kubeconfig="k", as_="jane", as_group=("dev", "ops"), as_uid="42",
                  token=TOKEN, server="https://h:6443", user="u2", cluster="c2", insecure_skip_tls_verify=True,
                  certificate_authority="ca.crt", client_certificate="me.crt", client_key="me.key",
                  tls_server_name="api.example", verbosity=6)
    assert connection(flags) == KubeFlags(
        kubeconfig="k", context="c", namespace="ns", request_timeout=DEFAULT_REQUEST_TIMEOUT, verbosity=6,
        as_="jane", as_group=("dev", "ops"), as_uid="42", token=TOKEN, server="https://h:6443", user="u2",
        cluster="c2", insecure_skip_tls_verify=True, certificate_authority="ca.crt", client_certificate="me.crt",
        client_key="me.key", tls_server_name="api.example")
    assert [connection(Flags(request_timeout=t)).request_timeout for t in ("0", "1s", "2", "1m")] == [
        None, 1.0, 2.0, 60.0]
    assert TOKEN not in repr(flags) and TOKEN not in repr(connection(flags))


# --- the kubeconfig and the flags over it -------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_DIR", str(tmp_path / "no-sa"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_kubeconfig(path: Path, plugin: Path | None = None) -> Path:
    for name in ("ca1.crt", "u2.crt", "u2.key", "me.crt", "me.key", "other/ca.crt"):
        (path.parent / name).parent.mkdir(exist_ok=True)
        (path.parent / name).write_text("-----BEGIN CERTIFICATE-----\n")
    exec_user = (f"- name: sso\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                 f"      command: {plugin}\n      interactiveMode: Never\n" if plugin else "")
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {{server: "https://10.0.0.1:6443", certificate-authority: ca1.crt, tls-server-name: one}}
- name: c2
  cluster: {{server: "https://10.0.0.2:6443", insecure-skip-tls-verify: true}}
contexts:
- name: dev
  context: {{cluster: c1, user: u1, namespace: shop}}
- name: sso
  context: {{cluster: c2, user: sso}}
users:
- name: u1
  user: {{token: {TOKEN}, as: boss, as-groups: [admins]}}
- name: u2
  user: {{client-certificate: u2.crt, client-key: u2.key}}
{exec_user}current-context: dev
""")
    return path


def seen(kube: Kube) -> tuple[Any, ...]:
    c = kube.configuration
    return (c.host, c.ssl_ca_cert, c.verify_ssl, c.tls_server_name, c.cert_file, c.key_file,
            c.api_key.get("authorization"), kube.namespace, kube.impersonation)


def test_the_context_alone(env):
    kubeconfig = str(write_kubeconfig(env / "config"))
    assert seen(Kube(KubeFlags(kubeconfig=kubeconfig))) == (
        "https://10.0.0.1:6443", str(env / "ca1.crt"), True, "one", None, None, f"Bearer {TOKEN}", "shop",
        Impersonation("boss", ("admins",)))


def test_cluster_and_user_flags_pick_other_entries(env):
    kubeconfig = str(write_kubeconfig(env / "config"))
    assert seen(Kube(KubeFlags(kubeconfig=kubeconfig, cluster="c2", user="u2"))) == (
        "https://10.0.0.2:6443", None, False, None, str(env / "u2.crt"), str(env / "u2.key"), None, "shop",
        Impersonation())


def test_connection_flags_override_the_kubeconfig(env):
    kubeconfig = str(write_kubeconfig(env / "config"))
    flags = KubeFlags(kubeconfig=kubeconfig, server="https://api.example:443/", token="flag-token",
                      insecure_skip_tls_verify=True, tls_server_name="two", client_certificate="me.crt",
                      client_key="me.key", as_="jane", as_group=("dev", "ops"), as_uid="42")
    assert seen(Kube(flags)) == (
        "https://api.example:443", None, False, "two", str(env / "me.crt"), str(env / "me.key"), "Bearer flag-token",
        "shop", Impersonation("jane", ("dev", "ops"), "42"))
    flags = KubeFlags(kubeconfig=kubeconfig, cluster="c2", certificate_authority="other/ca.crt")
    assert seen(Kube(flags))[:3] == ("https://10.0.0.2:6443", str(env / "other/ca.crt"), True)


def test_server_and_token_without_any_kubeconfig(env):
    assert seen(Kube(KubeFlags(server="https://10.0.0.9:6443", token="t", namespace="n"))) == (
        "https://10.0.0.9:6443", None, True, None, None, None, "Bearer t", "n", Impersonation())


@pytest.mark.parametrize(("flags", "message"), [
    (KubeFlags(user="nosuch"), 'user "nosuch" does not exist in kubeconfig {config}'),
    (KubeFlags(cluster="nosuch"), 'cluster "nosuch" does not exist in kubeconfig {config}'),
    (KubeFlags(as_group=("dev",)), "--as-group and --as-uid need --as: impersonating groups or a uid without a "
                                    "user is refused by the API server"),
    (KubeFlags(insecure_skip_tls_verify=True, certificate_authority="ca"),
     "--certificate-authority and --insecure-skip-tls-verify exclude each other (kubectl: specifying a root "
     "certificates file with the insecure flag is not allowed)"),
    (KubeFlags(server="10.0.0.1:6443"), "-s/--server: '10.0.0.1:6443' is not a URL (https://HOST:PORT)"),
])
def test_refused_flags(env, flags, message):
    kubeconfig = write_kubeconfig(env / "config")
    with pytest.raises(UsageError) as e:
        Kube(KubeFlags(**{**flags.__dict__, "kubeconfig": str(kubeconfig)}))
    assert str(e.value) == message.format(config=kubeconfig)


# --- exec credential plugins --------------------------------------------------------------------------------


def plugin(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_failing_exec_plugin_is_one_error_with_its_message_and_exit_code(env, capfd):
    script = plugin(env / "sso-login", "echo 'token expired: run sso login' >&2\necho more >&2\nexit 2\n")
    kubeconfig = str(write_kubeconfig(env / "config", script))
    route_logging(0)
    with pytest.raises(Unauthorized) as e:
        Kube(KubeFlags(kubeconfig=kubeconfig, context="sso"))
    assert (str(e.value), e.value.code, capfd.readouterr().err) == (
        f"getting credentials: exec: executable {script} failed with exit code 2: token expired: run sso login "
        "more", ExitCode.UNAUTHORIZED, "")
    with pytest.raises(Unauthorized) as e:
        Kube(KubeFlags(kubeconfig=kubeconfig, context="sso", user="sso"))
    missing = str(env / "nosuch")
    write_kubeconfig(env / "config", Path(missing))
    with pytest.raises(Unauthorized) as e:
        Kube(KubeFlags(kubeconfig=kubeconfig, context="sso"))
    assert str(e.value) == f"getting credentials: exec: executable {missing} not found"


def test_an_exec_plugin_gives_the_token_and_token_flag_skips_it(env):
    ran = env / "ran"
    script = plugin(env / "sso-login", f"touch {ran}\necho '{{\"apiVersion\": \"client.authentication.k8s.io/v1\", "
                                       f"\"kind\": \"ExecCredential\", \"status\": {{\"token\": \"from-plugin\"}}}}'\n")
    kubeconfig = str(write_kubeconfig(env / "config", script))
    assert seen(Kube(KubeFlags(kubeconfig=kubeconfig, context="sso")))[6] == "Bearer from-plugin"
    ran.unlink()
    assert seen(Kube(KubeFlags(kubeconfig=kubeconfig, context="sso", token="t")))[6] == "Bearer t"
    assert not ran.exists()  # client-go: a token means the plugin is not run


def test_401_is_worded_like_kubectl_with_its_own_exit_code():
    error = api_error(401, b'{"kind": "Status", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}')
    assert (str(error), error.code) == ("you must be logged in to the server (Unauthorized)", ExitCode.UNAUTHORIZED)


def test_client_logging_only_with_v(capfd):
    route_logging(0)
    logging.error("exec: process returned 2")
    logging.getLogger("urllib3.connectionpool").warning("Connection pool is full")
    assert capfd.readouterr().err == ""
    route_logging(1)
    logging.getLogger("urllib3.connectionpool").warning("Connection pool is full")
    logging.getLogger("urllib3.connectionpool").debug("a response body")
    route_logging(0)
    assert capfd.readouterr().err == "I urllib3.connectionpool: Connection pool is full\n"


# --- impersonation headers ---------------------------------------------------------------------------------


def test_impersonation_headers_one_line_per_group():
    assert Impersonation("jane", ("dev", "ops"), "42").headers() == [
        ("Impersonate-User", "jane"), ("Impersonate-Group", "dev"), ("Impersonate-Group", "ops"),
        ("Impersonate-Uid", "42")]
    assert Impersonation().headers() == []


def test_every_request_of_the_pool_carries_them():
    sent: list[Any] = []

    class Pool:
        def request(self, method: str, url: str, **kwargs: Any) -> str:
            sent.append((method, url, list(kwargs["headers"].items()), kwargs["timeout"]))
            return "answer"

    pool = client_module._Impersonating(Pool(), Impersonation("jane", ("dev", "ops")).headers())
    assert pool.request("GET", "https://h/api", headers={"Accept": "application/json"}, timeout=3) == "answer"
    assert sent == [("GET", "https://h/api", [("Accept", "application/json"), ("Impersonate-User", "jane"),
                                              ("Impersonate-Group", "dev"), ("Impersonate-Group", "ops")], 3)]


# --- --request-timeout -----------------------------------------------------------------------------------


def test_timeouts_of_a_request(env):
    kubeconfig = str(write_kubeconfig(env / "config"))
    assert [Kube(KubeFlags(kubeconfig=kubeconfig, request_timeout=t))._timeout(r)
            for t, r in ((1.0, None), (30.0, None), (None, None), (1.0, 120.0))] == [
        (1.0, 1.0), (10.0, 30.0), (10.0, None), (1.0, 120.0)]


def test_the_batch_of_reviews_is_bounded_by_the_timeout(env, monkeypatch):
    kubeconfig = str(write_kubeconfig(env / "config"))
    kube = Kube(KubeFlags(kubeconfig=kubeconfig, request_timeout=0.5))
    asked: list[tuple[str, ...]] = []

    def slow(*review: str) -> bool:  # an answer every 0.5 s: 20 reviews, 8 at a time, would take 1.5 s
        asked.append(review)
        time.sleep(0.5)
        return True

    monkeypatch.setattr(kube, "can_i", slow)
    started = time.monotonic()
    with pytest.raises(Unreachable) as e:
        kube.can_i_all([("get", f"r{i}", "ns", "") for i in range(20)])
    assert time.monotonic() - started < 1.3
    assert str(e.value) == ("cannot reach the API server at https://10.0.0.1:6443: 20 access reviews got no answer "
                            "within the request timeout (0.5s)")

    def unreachable(*review: str) -> bool:
        asked.append(review)
        time.sleep(0.2)
        raise Unreachable("read timed out")

    asked.clear()
    monkeypatch.setattr(kube, "can_i", unreachable)
    with pytest.raises(Unreachable):
        kube.can_i_all([("get", f"r{i}", "ns", "") for i in range(20)])
    time.sleep(0.5)
    assert len(asked) == 8  # the first round failed: the other 12 were never sent
