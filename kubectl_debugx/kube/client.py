"""The connection to the API server: typed calls on plain dicts, watches and exec upgrades (configuration is
kube/config.py, error answers kube/apierrors.py, reading watches kube/watch.py).

Objects travel as the JSON dicts the API server sends; we never build client models, which keeps start-up
cheap and the shapes identical to what `kubectl get -o json` shows.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

from kubectl_debugx.errors import NotReady, Unauthorized

# re-exported: every caller imports them from here
from kubectl_debugx.kube.api import ExecConnection as ExecConnection
from kubectl_debugx.kube.api import KubeApi as KubeApi
from kubectl_debugx.kube.apierrors import ApiError, ApiForbidden, api_error, unreachable
from kubectl_debugx.kube.config import Impersonation, KubeFlags, load_config
from kubectl_debugx.kube.podlog import LogStream, open_log_stream
from kubectl_debugx.kube.watch import watch, watch_until

CONNECT_TIMEOUT = 10.0
EXEC_PROTOCOLS = "v5.channel.k8s.io, v4.channel.k8s.io"


class Kube:
    """A connection to one cluster, resolved from kubeconfig the way kubectl does."""

    def __init__(self, flags: KubeFlags) -> None:
        from kubernetes import client  # imported here so --help never pays for it

        self.flags = flags
        self.configuration = client.Configuration()
        resolved = load_config(flags, self.configuration)
        self.namespace: str = resolved.namespace
        self.impersonation: Impersonation = resolved.impersonation
        self.configuration.retries = 0  # fail fast with one clear message instead of silent retries
        if not self.configuration.verify_ssl:
            # kubectl says nothing per request about --insecure-skip-tls-verify; urllib3 would warn on each
            import warnings

            import urllib3

            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        self.api_client = client.ApiClient(self.configuration)
        if self.impersonation.headers():
            rest = self.api_client.rest_client
            rest.pool_manager = _Impersonating(rest.pool_manager, self.impersonation.headers())
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
        """(connect, read) seconds: --request-timeout bounds both (connecting never takes more than
        CONNECT_TIMEOUT); `read` is a wait of the call's own (a watch's, a node file's) and replaces it."""
        limit = self.flags.request_timeout
        connect = CONNECT_TIMEOUT if limit is None else min(CONNECT_TIMEOUT, limit)
        return (connect, read if read is not None else limit)

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
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One API call. Returns parsed JSON, or the raw urllib3 response when `stream` is set."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": accept, "Content-Type": content_type, "User-Agent": user_agent(), **(extra_headers or {})}
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
                # a stream's own wait (a watch's quiet minutes) applies once the answer began: its headers
                # must come within the request timeout like any answer's
                _request_timeout=self._timeout(None if stream else read_timeout),
            )
        except ApiException as e:
            self._log(method, path, params, e.status, started)
            raise api_error(e.status or 0, e.body, path) from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            self._log(method, path, params, None, started)
            raise unreachable(self.host, e) from None
        self._log(method, path, params, response.status, started)
        if stream:
            if read_timeout is not None:
                _set_read_timeout(response, read_timeout)
            return response
        try:
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError) as e:  # the answer began, then the connection went
            raise unreachable(self.host, e, during=f"the answer to {method} {path} broke off") from None
        return json.loads(data) if data and accept == "application/json" else data

    # --- typed calls ----------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        limit = self.flags.request_timeout
        return dict(self.request("GET", "/version", read_timeout=5.0 if limit is None else min(5.0, limit)))

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{quote(name)}"))

    def list_pods(self, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Pods of one namespace, or of every one (None), matching the selector; follows `continue` pages."""
        return self.list_pods_at(namespace, label_selector)[0]

    def list_pods_at(self, namespace: str | None, label_selector: str | None = None
                     ) -> tuple[list[dict[str, Any]], str]:
        """list_pods and the list's resourceVersion (a paged list is one snapshot: the first page's), the
        point a watch of the same pods starts from."""
        return self.list_objects_at("/api/v1", "pods", namespace, label_selector)

    def list_objects(self, prefix: str, resource: str, namespace: str | None, label_selector: str | None = None
                     ) -> list[dict[str, Any]]:
        """Objects of any API group (`prefix`: /api/v1 or /apis/GROUP/VERSION) of one namespace or of every one
        (None), matching the selector; follows `continue` pages."""
        return self.list_objects_at(prefix, resource, namespace, label_selector)[0]

    def list_objects_at(self, prefix: str, resource: str, namespace: str | None, label_selector: str | None = None
                        ) -> tuple[list[dict[str, Any]], str]:
        """list_objects and the list's resourceVersion."""
        path = f"{prefix}/namespaces/{namespace}/{resource}" if namespace is not None else f"{prefix}/{resource}"
        items: list[dict[str, Any]] = []
        token = None
        version = ""
        while True:
            data = self.request("GET", path, {"labelSelector": label_selector, "limit": 500, "continue": token})
            items += data.get("items") or []
            version = version or str((data.get("metadata") or {}).get("resourceVersion") or "")
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return items, version

    def get_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]:
        """One namespaced object of any API group: `prefix` is /api/v1 or /apis/GROUP/VERSION."""
        return dict(self.request("GET", f"{prefix}/namespaces/{namespace}/{resource}/{quote(name)}"))

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
        return self.create_object("/api/v1", "pods", namespace, pod, dry_run)

    def create_object(self, prefix: str, resource: str, namespace: str, body: Mapping[str, Any],
                      dry_run: bool = False) -> dict[str, Any]:
        return dict(self.request("POST", f"{prefix}/namespaces/{namespace}/{resource}",
                                 {"dryRun": "All" if dry_run else None}, body=dict(body)))

    def delete_object(self, prefix: str, resource: str, namespace: str, name: str) -> dict[str, Any]:
        """Delete with its dependents: a batch/v1 Job deleted through the API keeps its pods unless
        propagationPolicy says otherwise (the server's default for Jobs is Orphan, kept for compatibility)."""
        return dict(self.request("DELETE", f"{prefix}/namespaces/{namespace}/{resource}/{quote(name)}",
                                 body={"propagationPolicy": "Background"}))

    def patch_object(self, prefix: str, resource: str, namespace: str, name: str,
                     patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386) of one object."""
        return dict(self.request("PATCH", f"{prefix}/namespaces/{namespace}/{resource}/{quote(name)}",
                                 body=dict(patch), content_type="application/merge-patch+json"))

    def delete_pod(self, namespace: str, name: str, grace_seconds: int = 0) -> dict[str, Any]:
        return dict(
            self.request(
                "DELETE", f"/api/v1/namespaces/{namespace}/pods/{quote(name)}",
                body={"gracePeriodSeconds": grace_seconds, "propagationPolicy": "Background"},
            )
        )

    def can_i(self, verb: str, resource: str, namespace: str, subresource: str = "", group: str = ""
              ) -> bool | None:
        """SelfSubjectAccessReview (`group`: the API group, "" for the core one); None when the review itself
        cannot be made."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                # as kubectl auth can-i sends them: no namespace for a cluster-scoped resource (22-ssar-*)
                "resourceAttributes": {k: v for k, v in (("namespace", namespace), ("verb", verb), ("group", group),
                                                          ("resource", resource), ("subresource", subresource))
                                       if v}
            },
        }
        try:
            answer = self.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review)
        except Unauthorized:
            raise  # no review can be made: the credentials are the problem, said as such
        except ApiForbidden as e:
            if "impersonate" in str(e):
                raise  # --as refused: every answer would be "unknown"; the refusal says why
            return None
        except ApiError:
            return None
        return bool((answer.get("status") or {}).get("allowed"))

    def can_i_all(self, reviews: Sequence[tuple[str, ...]]) -> list[bool | None]:
        """One batch of SelfSubjectAccessReviews, (verb, resource, namespace, subresource[, group]) each, asked in
        parallel (the API has no batch form); the answers in the same order."""
        from concurrent.futures import ThreadPoolExecutor, wait
        from concurrent.futures import TimeoutError as FutureTimeout

        if len(reviews) <= 1:
            return [self.can_i(*r) for r in reviews]
        # The batch as a whole is bounded by --request-timeout too (each review is, and 8 run at once: with more
        # reviews than workers a hung server would otherwise cost a timeout per round). The first failure ends
        # it: the reviews not started are dropped, those in flight end by their own timeout.
        limit = self.flags.request_timeout
        deadline = None if limit is None else time.monotonic() + limit + 0.5
        failed = threading.Event()

        def ask(review: tuple[str, ...]) -> bool | None:
            if failed.is_set():  # a worker that takes a review after a failure does not send it
                return None
            try:
                return self.can_i(*review)
            except BaseException:
                failed.set()
                raise

        pool = ThreadPoolExecutor(max_workers=min(8, len(reviews)))
        futures = []
        try:
            futures += [pool.submit(ask, r) for r in reviews]
            answers = []
            for future in futures:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                answers.append(future.result(timeout=left))
            return answers
        except FutureTimeout:
            failed.set()
            raise unreachable(self.host, f"{len(reviews)} access reviews got no answer within the request "
                              f"timeout ({limit:g}s)") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            # the reviews in flight (begun together, so ending together) end before the error is said, so that
            # their -v lines come before it; never past the batch's deadline
            wait(futures, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))

    def get_namespace(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v1/namespaces/{quote(name)}"))

    # --- watches (kube/watch.py) --------------------------------------------------------------------

    def watch_pod(
        self, namespace: str, name: str, resource_version: str, deadline: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(type, pod) events for one pod until the deadline (a monotonic time), resumed as often as it takes;
        while reading, ApiError for an error event, Unreachable when cut."""
        return watch_until(self, f"/api/v1/namespaces/{namespace}/pods", {"fieldSelector": f"metadata.name={name}"},
                           resource_version, deadline)

    def watch_pods(
        self, namespace: str | None, label_selector: str, resource_version: str, timeout: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """One watch of the pods matching the selector from `resource_version`, (type, pod) per event, until the
        server ends the stream (at `timeout` seconds or earlier). The request is made at once (its errors raise
        here); then, while reading, WatchExpired for 410 Gone (the version is compacted: list again), ApiError
        for other error events, Unreachable when cut."""
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace is not None else "/api/v1/pods"
        # Bookmarks move our resourceVersion on while nothing matches, so a resumed watch is rarely 410.
        return watch(self, path, {"labelSelector": label_selector or None}, resource_version, timeout,
                     read_timeout=timeout + 30, bookmarks=True)

    # --- exec ---------------------------------------------------------------------------------------

    def open_exec(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False,
        tty: bool = False,
    ) -> ExecConnection:
        """Open an exec WebSocket offering v5 then v4. The caller reads the frames (see execstream). With `tty`
        the command gets a terminal: its stdout and stderr are both the terminal, so stderr is not asked for
        (as kubectl exec -t), and the terminal's size is sent on channel 4 (kube/execinput.py)."""
        from websocket import WebSocketBadStatusException, WebSocketException

        params: list[tuple[str, str]] = [("command", c) for c in command]
        params += [("container", container), ("stdout", "true"), ("stderr", "false" if tty else "true")]
        if stdin:
            params.append(("stdin", "true"))
        if tty:
            params.append(("tty", "true"))
        path = f"/api/v1/namespaces/{namespace}/pods/{quote(pod)}/exec"
        url = f"{self.host}{path}?{urlencode(params)}"
        url = "wss://" + url[len("https://"):] if url.startswith("https://") else "ws://" + url[len("http://"):]
        headers = [f"sec-websocket-protocol: {EXEC_PROTOCOLS}"]
        token = self.configuration.get_api_key_with_prefix("authorization")
        if token:
            headers.append(f"authorization: {token}")
        headers += [f"{name}: {value}" for name, value in self.impersonation.headers()]
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(self.flags.request_timeout or CONNECT_TIMEOUT * 3)
        started = time.monotonic()
        try:
            ws = _websocket(self.configuration, url, headers)
        except WebSocketBadStatusException as e:
            self._log("GET", path, params, e.status_code, started)
            raise api_error(e.status_code, e.resp_body, path) from None
        except (WebSocketException, OSError, ssl.SSLError) as e:
            self._log("GET", path, params, None, started)
            raise unreachable(self.host, e) from None
        finally:
            socket.setdefaulttimeout(previous)
        self._log("GET", path, params, getattr(ws, "status", None) or 101, started)
        ws.sock.settimeout(None)
        protocol = (ws.getheaders() or {}).get("sec-websocket-protocol", "") or ""
        return ExecConnection(ws, protocol.strip())

    @contextmanager
    def exec_connection(
        self, namespace: str, pod: str, container: str, command: list[str], stdin: bool = False
    ) -> Iterator[ExecConnection]:
        """An exec for the block; closed after it. With `stdin`, the exec's stdin stays open and unwritten until
        the connection closes (the tether of specs.tethered_command: its EOF tells the remote side we are
        gone)."""
        conn = self.open_exec(namespace, pod, container, command, stdin)
        try:
            yield conn
        finally:
            conn.close()


    # --- nodes and pods' lifecycle (nodelogs) ---------------------------------------------------------

    def node_proxy_get(
        self, node: str, path: str, read_timeout: float | None = None, byte_range: str | None = None
    ) -> Any:
        """GET through the API server's node proxy (``/api/v1/nodes/NODE/proxy/PATH``; needs get on
        nodes/proxy). Returns the raw urllib3 response (errors raise ApiError): read ``.headers`` and the body
        with ``.read(n, decode_content=False)``, then ``release_conn()``. ``path`` must be percent-encoded.
        ``byte_range``: ``N-`` or ``N-M``, sent as ``Range: bytes=...`` (the kubelet's /logs/ is Go's
        http.FileServer: 206 with those bytes, 416 when the file has no byte at N)."""
        return self.request(
            "GET", f"/api/v1/nodes/{quote(node)}/proxy/{path}", accept="*/*", stream=True,
            read_timeout=read_timeout,
            extra_headers=None if byte_range is None else {"Range": f"bytes={byte_range}"},
        )

    def node_proxy_read(self, node: str, path: str, byte_range: str, read_timeout: float) -> tuple[int, bytes]:
        """The bytes of a node file in ``byte_range`` (``N-``, ``N-M``), read whole: (status, body). 206, or 200
        with the whole file from a server that ignores Range; 416 (no byte at that offset) and 404 raise
        ApiError. A connection lost while the body arrives raises Unreachable, as one lost before it does."""
        import urllib3

        response = self.node_proxy_get(node, path, read_timeout, byte_range=byte_range)
        try:
            return int(response.status), bytes(response.read(decode_content=False))
        except (urllib3.exceptions.HTTPError, OSError) as e:
            response.close()  # a half-read body must not go back to the pool with its connection
            raise unreachable(self.host, e) from None
        finally:
            response.release_conn()

    def follow_log(self, namespace: str, pod: str, container: str, tail_lines: int | None = 0) -> LogStream:
        """``pods/log?follow=true`` of one container, as plain bytes (kube/podlog.py)."""
        return open_log_stream(self, namespace, pod, container, tail_lines)

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


class _Impersonating:
    """The client's urllib3 pool manager, adding the Impersonate-* headers to every request it sends (plain
    requests and watches; exec builds its own WebSocket handshake, see _websocket). The client's call_api turns
    headers into a dict, which cannot hold one Impersonate-Group line per group: hence this layer below it."""

    def __init__(self, pool: Any, headers: list[tuple[str, str]]) -> None:
        self._pool = pool
        self._headers = headers

    def request(self, method: str, url: str, *args: Any, headers: Any = None, **kwargs: Any) -> Any:
        from urllib3 import HTTPHeaderDict

        merged = HTTPHeaderDict(headers or {})
        for name, value in self._headers:
            merged.add(name, value)
        return self._pool.request(method, url, *args, headers=merged, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def _websocket(configuration: Any, url: str, header: list[str]) -> Any:
    """The exec WebSocket, as the client's create_websocket opens it (TLS options from the configuration),
    with every header we give: create_websocket passes on only Authorization and the subprotocol."""
    from kubernetes.stream.ws_client import websocket_proxycare
    from websocket import WebSocket

    if url.startswith("wss://") and configuration.verify_ssl:
        import certifi

        sslopt: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED,
                                  "ca_certs": configuration.ssl_ca_cert or certifi.where()}
        if configuration.assert_hostname is not None:
            sslopt["check_hostname"] = configuration.assert_hostname
    else:
        sslopt = {"cert_reqs": ssl.CERT_NONE}
    if configuration.cert_file:
        sslopt["certfile"] = configuration.cert_file
    if configuration.key_file:
        sslopt["keyfile"] = configuration.key_file
    if configuration.tls_server_name:
        sslopt["server_hostname"] = configuration.tls_server_name
    ws = WebSocket(sslopt=sslopt, skip_utf8_validation=False)
    options: dict[str, Any] = {"header": header}
    if configuration.proxy or configuration.proxy_headers:
        options = websocket_proxycare(options, configuration, url, None)
    ws.connect(url, **options)
    return ws


def _set_read_timeout(response: Any, seconds: float) -> None:
    """The wait for each further chunk of a streamed answer (its headers came within the request timeout)."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def user_agent() -> str:
    from kubectl_debugx import __version__

    return f"kubectl-debugx/{__version__} ({os.uname().sysname.lower()})"
