"""The only module that talks to Kubernetes: configuration, typed calls on plain dicts, error translation.

Objects travel as the JSON dicts the API server sends; we never build client models, which keeps start-up
cheap and the shapes identical to what `kubectl get -o json` shows.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from kubectl_debugx.errors import DebugxError, Forbidden, NotFound, NotReady, Unreachable, UsageError

CONNECT_TIMEOUT = 10.0
EXEC_PROTOCOLS = "v5.channel.k8s.io, v4.channel.k8s.io"
# A service account's files in a pod (in-cluster configuration, as kubectl finds it).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class KubeFlags:
    """kubectl's connection flags, as given on the command line."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: float | None = None
    verbosity: int = 0


class ApiError(DebugxError):
    """An error answer of the API server, kept with its Status so callers can refine the message.

    The client raises the subclass that matches the status, which is also the matching error of
    kubectl_debugx.errors (an ApiForbidden is a Forbidden): the exit code comes from that class, never from
    here. A status without a subclass stays a plain ApiError, an unexpected error."""

    def __init__(self, message: str, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or "")


class ApiBadRequest(ApiError, UsageError):
    """400 BadRequest and 422 Invalid: what we sent was refused as it is."""


class ApiForbidden(ApiError, Forbidden):
    """403: RBAC or an admission (Pod Security) refused."""


class ApiNotFound(ApiError, NotFound):
    """404: the object, or the API path itself, does not exist."""


class ApiConflict(ApiError, UsageError):
    """409: AlreadyExists or Conflict."""


class ApiServerError(ApiError, NotReady):
    """500, 502, 503 and 504: the server or what it proxies to cannot answer now."""


_API_ERRORS: dict[int, type[ApiError]] = {
    400: ApiBadRequest, 422: ApiBadRequest, 403: ApiForbidden, 404: ApiNotFound, 409: ApiConflict,
    500: ApiServerError, 502: ApiServerError, 503: ApiServerError, 504: ApiServerError,
}


def _status_message(status: int, body: Mapping[str, Any], fallback: str) -> str:
    return str(body.get("message") or fallback or f"the server answered HTTP {status}").strip()


_NAMESPACED_PATH = re.compile(r"^/api(?:s/[^/]+)?/[^/]+/namespaces/([^/]+)/")
_NOT_FOUND_MESSAGE = re.compile(r'^[\w.-]+ "[^"]*" not found$')


def api_error(status: int, raw: bytes | str | None, path: str = "") -> ApiError:
    """Translate an error answer into the ApiError subclass of its status (the one place that does so).

    ``path`` is the request's path: the server's not-found message (``pods "web" not found``) does not say
    in which namespace it looked, so when the path names one it is added, kubectl's wording kept first."""
    try:
        body = json.loads(raw or b"{}")
        if not isinstance(body, dict):
            body = {"message": str(body)}
    except ValueError:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
        body = {"message": text.strip()}
    message = _status_message(status, body, "")
    namespaced = _NAMESPACED_PATH.match(path)
    if status == 404 and namespaced and _NOT_FOUND_MESSAGE.match(message):
        message += f' in namespace "{namespaced.group(1)}"'
    return _API_ERRORS.get(status, ApiError)(message, status, body)


def _unreachable(host: str, error: BaseException) -> Unreachable:
    reason = getattr(error, "reason", None) or error
    text = str(reason).split(": ", 1)[-1] if ": " in str(reason) else str(reason)
    return Unreachable(f"cannot reach the API server at {host}: {text}")


class KubeApi(Protocol):
    """What the commands use of a cluster connection: Kube, or a test's fake of it."""

    namespace: str

    def version(self) -> dict[str, Any]: ...

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]: ...

    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def get_node(self, name: str) -> dict[str, Any]: ...

    def add_ephemeral_container(
        self, namespace: str, pod: str, patch: Mapping[str, Any], dry_run: bool = False
    ) -> dict[str, Any]: ...

    def create_pod(self, namespace: str, pod: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]: ...

    def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> dict[str, Any]: ...

    def can_i(self, verb: str, resource: str, namespace: str, subresource: str = "") -> bool | None: ...

    def watch_pod(
        self, namespace: str, name: str, resource_version: str, deadline: float
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def open_exec(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False
    ) -> ExecConnection: ...

    def exec_connection(
        self, namespace: str, pod: str, container: str, command: list[str]
    ) -> AbstractContextManager[ExecConnection]: ...

    def node_proxy_get(self, node: str, path: str, read_timeout: float | None = None) -> Any: ...

    def wait_pod_gone(self, namespace: str, name: str, uid: str | None, deadline: float) -> bool: ...


class Kube:
    """A connection to one cluster, resolved from kubeconfig the way kubectl does."""

    def __init__(self, flags: KubeFlags) -> None:
        from kubernetes import client  # imported here so --help never pays for it

        self.flags = flags
        self.configuration = client.Configuration()
        self.namespace: str = load_config(flags, self.configuration)
        self.configuration.retries = 0  # fail fast with one clear message instead of silent retries
        self.api_client = client.ApiClient(self.configuration)
        self.host: str = self.configuration.host

    # --- plain requests -------------------------------------------------------------------------------

    def _log(
        self, method: str, path: str, params: list[tuple[str, Any]], status: int | None, started: float
    ) -> None:
        """With -v=N (N >= 1), one line per request on stderr, like kubectl -v=6: method, URL (its query
        holds only what we ask for; credentials travel in headers, which are never shown), status, time."""
        if self.flags.verbosity < 1:
            return
        url = f"{self.host}{path}" + (f"?{urlencode(params)}" if params else "")
        if status is None:
            answer = "(no answer)"
        else:
            try:
                answer = f"{status} {HTTPStatus(status).phrase}"
            except ValueError:
                answer = str(status)
        elapsed = round((time.monotonic() - started) * 1000)
        sys.stderr.write(f"I {method} {url} {answer} in {elapsed} milliseconds\n")
        sys.stderr.flush()

    def _timeout(self, read: float | None = None) -> tuple[float, float | None]:
        return (CONNECT_TIMEOUT, read if read is not None else self.flags.request_timeout)

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        stream: bool = False,
        read_timeout: float | None = None,
    ) -> Any:
        """One API call. Returns parsed JSON, or the raw urllib3 response when `stream` is set."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": accept, "Content-Type": content_type, "User-Agent": user_agent()}
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        started = time.monotonic()
        try:
            response = self.api_client.call_api(
                path,
                method,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=self._timeout(read_timeout),
            )
        except ApiException as e:
            self._log(method, path, params, e.status, started)
            raise api_error(e.status or 0, e.body, path) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            self._log(method, path, params, None, started)
            raise _unreachable(self.host, e) from None
        self._log(method, path, params, response.status, started)
        if stream:
            return response
        data = response.data
        return json.loads(data) if data and accept == "application/json" else data

    # --- typed calls ----------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        return dict(self.request("GET", "/version", read_timeout=5.0))

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{quote(name)}"))

    def list_pods(self, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        data = self.request("GET", f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": label_selector})
        return list(data.get("items") or [])

    def get_node(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/nodes/{quote(name)}"))

    def add_ephemeral_container(
        self, namespace: str, pod: str, patch: Mapping[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        try:
            return dict(
                self.request(
                    "PATCH",
                    f"/api/v1/namespaces/{namespace}/pods/{quote(pod)}/ephemeralcontainers",
                    {"dryRun": "All" if dry_run else None},
                    body=dict(patch),
                    content_type="application/strategic-merge-patch+json",
                )
            )
        except ApiError as e:
            # kubectl's check: a 404 that names no object means the subresource itself is missing.
            if e.status == 404 and not (e.body.get("details") or {}).get("name"):
                raise NotReady(
                    "ephemeral containers are disabled for this cluster "
                    "(the API server has no pods/ephemeralcontainers)"
                ) from None
            raise

    def create_pod(self, namespace: str, pod: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
        return dict(
            self.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", {"dryRun": "All" if dry_run else None},
                body=dict(pod),
            )
        )

    def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> dict[str, Any]:
        return dict(
            self.request(
                "DELETE", f"/api/v1/namespaces/{namespace}/pods/{quote(name)}",
                body={"gracePeriodSeconds": grace_seconds, "propagationPolicy": "Background"},
            )
        )

    def can_i(self, verb: str, resource: str, namespace: str, subresource: str = "") -> bool | None:
        """SelfSubjectAccessReview; None when the review itself cannot be made."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace, "verb": verb, "resource": resource, "subresource": subresource,
                }
            },
        }
        try:
            answer = self.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review)
        except ApiError:
            return None
        return bool((answer.get("status") or {}).get("allowed"))

    def watch_pod(
        self, namespace: str, name: str, resource_version: str, deadline: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, pod) events for one pod until the deadline (a monotonic time)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            response = self.request(
                "GET",
                f"/api/v1/namespaces/{namespace}/pods",
                {
                    "watch": "true",
                    "fieldSelector": f"metadata.name={name}",
                    "resourceVersion": resource_version,
                    "timeoutSeconds": max(1, int(remaining)),
                    "allowWatchBookmarks": "false",
                },
                stream=True,
                read_timeout=remaining + 5,
            )
            try:
                for event in _json_lines(response):
                    kind = event.get("type", "")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:  # resourceVersion too old: restart from the current state
                            resource_version = ""
                            break
                        raise api_error(int(obj.get("code") or 500), json.dumps(obj).encode(),
                                        f"/api/v1/namespaces/{namespace}/pods")
                    resource_version = (obj.get("metadata") or {}).get("resourceVersion", resource_version)
                    yield kind, obj
            finally:
                response.release_conn()

    # --- exec ---------------------------------------------------------------------------------------

    def open_exec(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False
    ) -> ExecConnection:
        """Open an exec WebSocket offering v5 then v4. The caller reads the frames (see execstream)."""
        from kubernetes.stream.ws_client import create_websocket
        from websocket import WebSocketBadStatusException, WebSocketException

        params: list[tuple[str, str]] = [("command", c) for c in command]
        params += [("container", container), ("stdout", "true"), ("stderr", "true")]
        if stdin:
            params.append(("stdin", "true"))
        path = f"/api/v1/namespaces/{namespace}/pods/{quote(pod)}/exec"
        url = f"{self.host}{path}?{urlencode(params)}"
        url = "wss://" + url[len("https://"):] if url.startswith("https://") else "ws://" + url[len("http://"):]
        headers = {"sec-websocket-protocol": EXEC_PROTOCOLS}
        token = self.configuration.get_api_key_with_prefix("authorization")
        if token:
            headers["authorization"] = token
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.flags.request_timeout or CONNECT_TIMEOUT * 3)
        started = time.monotonic()
        try:
            ws = create_websocket(self.configuration, url, headers)
        except WebSocketBadStatusException as e:
            self._log("GET", path, params, e.status_code, started)
            raise api_error(e.status_code, e.resp_body, path) from None
        except (WebSocketException, OSError, ssl.SSLError) as e:
            self._log("GET", path, params, None, started)
            raise _unreachable(self.host, e) from None
        finally:
            socket.setdefaulttimeout(previous)
        self._log("GET", path, params, getattr(ws, "status", None) or 101, started)
        ws.sock.settimeout(None)
        protocol = (ws.getheaders() or {}).get("sec-websocket-protocol", "") or ""
        return ExecConnection(ws, protocol.strip())

    @contextmanager
    def exec_connection(
        self, namespace: str, pod: str, container: str, command: list[str]
    ) -> Iterator[ExecConnection]:
        conn = self.open_exec(namespace, pod, container, command)
        try:
            yield conn
        finally:
            conn.close()


    # --- nodes and pods' lifecycle (nodelogs) ---------------------------------------------------------

    def node_proxy_get(self, node: str, path: str, read_timeout: float | None = None) -> Any:
        """GET through the API server's node proxy (``/api/v1/nodes/NODE/proxy/PATH``; needs get on
        nodes/proxy). Returns the raw urllib3 response (errors raise ApiError): read ``.headers`` and the body
        with ``.read(n, decode_content=False)``, then ``release_conn()``. ``path`` must be percent-encoded."""
        return self.request(
            "GET", f"/api/v1/nodes/{quote(node)}/proxy/{path}", accept="*/*", stream=True,
            read_timeout=read_timeout,
        )

    def wait_pod_gone(self, namespace: str, name: str, uid: str | None, deadline: float) -> bool:
        """Poll until the pod (that one: same uid when given) no longer exists; False if the deadline
        (a monotonic time) passed first."""
        while True:
            try:
                pod = self.get_pod(namespace, name)
            except ApiError as e:
                if e.status == 404:
                    return True
                raise
            if uid and (pod.get("metadata") or {}).get("uid") != uid:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


@dataclass
class ExecConnection:
    ws: Any  # websocket.WebSocket
    protocol: str

    def close(self) -> None:
        # Closing a broken socket must never mask the real outcome.
        with suppress(Exception):
            self.ws.close(timeout=1)


def _json_lines(response: Any) -> Iterator[dict[str, Any]]:
    buffer = b""
    for chunk in response.stream(65536, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)


def kubeconfig_paths(explicit: str | None = None) -> list[str]:
    """The kubeconfig files kubectl reads: --kubeconfig alone, else KUBECONFIG's list, else ~/.kube/config."""
    if explicit:
        return [os.path.expanduser(explicit)]
    listed = [os.path.expanduser(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [os.path.expanduser(os.path.join("~", ".kube", "config"))]


def _read_kubeconfig(paths: list[str]) -> Any:
    """The merged kubeconfig (a ConfigNode whose .value is the dict) of the files that exist, in order.

    Errors name the file and never quote its content (a YAML error's snippet could show a token)."""
    import yaml
    from kubernetes.config.kube_config import KubeConfigMerger

    where = ", ".join(paths)
    try:
        merged = KubeConfigMerger(os.pathsep.join(paths)).config
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        name = getattr(mark, "name", "") or where
        raise UsageError(f"invalid kubeconfig {name}: not valid YAML ({getattr(e, 'problem', '') or 'syntax'}{at})"
                         ) from None
    except OSError as e:
        raise UsageError(f"cannot read kubeconfig {e.filename or where}: {e.strerror or e}") from None
    except (AttributeError, TypeError, KeyError):
        raise UsageError(f"invalid kubeconfig {where}: not a kubeconfig (a mapping with clusters, contexts, "
                         "users)") from None
    except Exception as e:  # noqa: BLE001 - the client's ConfigException: its first line names what is wrong
        raise UsageError(f"invalid kubeconfig {where}: {str(e).splitlines()[0]}") from None
    if merged is None or not isinstance(merged.value, dict):
        raise UsageError(f"invalid kubeconfig {where}: no configuration in it")
    return merged


def _entries(items: Any) -> list[Mapping[str, Any]]:
    """The named entries of a merged kubeconfig list (the merger wraps each in a ConfigNode)."""
    values = (getattr(item, "value", item) for item in items or [])
    return [v for v in values if isinstance(v, Mapping)]


def load_config(flags: KubeFlags, configuration: Any) -> str:
    """Fill the client configuration the way kubectl resolves it; returns the namespace to use.

    --kubeconfig names the one file; else KUBECONFIG's files, else ~/.kube/config; with none of them, in a
    pod with a service account, the in-cluster configuration. Errors say which files were looked at and
    never show a credential."""
    from kubernetes.config.kube_config import KubeConfigLoader

    if flags.kubeconfig and not os.path.exists(os.path.expanduser(flags.kubeconfig)):
        raise UsageError(f"--kubeconfig: {flags.kubeconfig}: no such file")
    looked = kubeconfig_paths(flags.kubeconfig)
    found = [p for p in looked if os.path.exists(p)]
    if not found:
        if not flags.context and in_cluster_possible():
            return _load_in_cluster(flags, configuration)
        raise UsageError(f"no kubeconfig found (looked at {', '.join(looked)}); set KUBECONFIG or use --kubeconfig")
    merged = _read_kubeconfig(found)
    where = ", ".join(found)
    contexts = {str(c.get("name")): c for c in _entries(merged.value.get("contexts"))}
    current = merged.value.get("current-context") or ""
    chosen = flags.context or current
    if not chosen:
        raise UsageError(f"no current context in kubeconfig {where}; use --context NAME "
                         "(or kubectl config use-context NAME)")
    if chosen not in contexts:
        extra = "" if flags.context else f" (the current context of {where})"
        raise UsageError(f'context "{chosen}" does not exist{extra}')
    try:
        KubeConfigLoader(config_dict=merged, active_context=chosen, config_base_path=None).load_and_set(
            configuration)
    except OSError as e:
        raise UsageError(f"cannot read {e.filename or 'a file named in kubeconfig'}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - ConfigException; its first line names the key, never its value
        raise UsageError(f"invalid kubeconfig {where}: {str(e).splitlines()[0]}") from None
    context_ns = (contexts[chosen].get("context") or {}).get("namespace")
    return flags.namespace or context_ns or "default"


def in_cluster_possible(environ: Mapping[str, str] = os.environ) -> bool:
    """kubectl's test: the service's address in the environment and a service account token file."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST") and environ.get("KUBERNETES_SERVICE_PORT")
                and os.path.isfile(os.path.join(SERVICE_ACCOUNT_DIR, "token")))


def _load_in_cluster(flags: KubeFlags, configuration: Any) -> str:
    from kubernetes.config.incluster_config import InClusterConfigLoader

    try:
        InClusterConfigLoader(os.path.join(SERVICE_ACCOUNT_DIR, "token"),
                              os.path.join(SERVICE_ACCOUNT_DIR, "ca.crt")).load_and_set(configuration)
    except Exception as e:  # noqa: BLE001 - ConfigException: which file or variable is missing
        raise UsageError(f"no kubeconfig found, and the in-cluster configuration cannot be used: "
                         f"{str(e).splitlines()[0]}") from None
    namespace = os.environ.get("POD_NAMESPACE", "")
    if not namespace:
        with suppress(OSError), open(os.path.join(SERVICE_ACCOUNT_DIR, "namespace")) as f:
            namespace = f.read().strip()
    return flags.namespace or namespace or "default"


def context_names(kubeconfig: str | None) -> list[str]:
    """The contexts of the kubeconfig (KUBECONFIG or ~/.kube/config when None), for completing --context."""
    found = [p for p in kubeconfig_paths(kubeconfig) if os.path.exists(p)]
    if not found:
        return []
    return sorted(str(c["name"]) for c in _entries(_read_kubeconfig(found).value.get("contexts")) if "name" in c)


def user_agent() -> str:
    from kubectl_debugx import __version__

    return f"kubectl-debugx/{__version__} ({os.uname().sysname.lower()})"
