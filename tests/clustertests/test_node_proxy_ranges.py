"""The kubelet's /logs/ through the node proxy honours byte ranges as Go's http.FileServer (ServeContent)
does: what nodelogs --follow relies on to read a growing log file from an offset. Runs on the test cluster
and on a real one (DEBUGX_E2E_KUBECONFIG) alike: the same answers are expected from both.

Go's ServeContent: ``Accept-Ranges: bytes`` on every file; ``Range: bytes=N-`` and ``bytes=N-M`` give 206 with
``Content-Range: bytes N-END/SIZE`` (M past the end is cut to it); a first byte at or past the end gives 416
``invalid range: failed to overlap`` with ``Content-Range: bytes */SIZE``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import wait_until

pytestmark = pytest.mark.e2e

LINES = "".join(f"line {i:03d}\n" for i in range(1, 41))


def proxy_get(e2e: Any, path: str, byte_range: str | None = None) -> tuple[int, dict[str, str], bytes]:
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": "*/*", **({"Range": f"bytes={byte_range}"} if byte_range else {})}
    try:
        response = e2e.api_client().call_api(path, "GET", header_params=headers, auth_settings=["BearerToken"],
                                           _preload_content=False, _return_http_data_only=True)
    except ApiException as e:
        return e.status, {k.lower(): v for k, v in (e.headers or {}).items()}, (e.body or b"")
    body = response.read(decode_content=False)
    return response.status, {k.lower(): v for k, v in response.headers.items()}, body


def test_ranges_of_a_log_file(e2e, namespace: str, make_pod) -> None:
    script = f"printf '{LINES}'; exec sleep 3600"
    make_pod(namespace, "ranges", image=e2e.image, command=["sh", "-c", script])
    pod = e2e.api().read_namespaced_pod("ranges", namespace)
    base = (f"/api/v1/nodes/{pod.spec.node_name}/proxy/logs/pods/{namespace}_ranges_{pod.metadata.uid}/"
            f"{pod.spec.containers[0].name}/")

    def whole() -> bytes:
        status, headers, body = proxy_get(e2e, base + "0.log")
        assert status == 200 and headers.get("accept-ranges") == "bytes", (status, headers)
        return body

    wait_until(lambda: whole().count(b"\n") == 40, "the 40 lines in 0.log")
    data = whole()
    size = len(data)

    status, headers, body = proxy_get(e2e, base + "0.log", "10-")
    assert (status, headers.get("content-range"), body) == (206, f"bytes 10-{size - 1}/{size}", data[10:])
    status, headers, body = proxy_get(e2e, base + "0.log", "0-63")
    assert (status, headers.get("content-range"), body) == (206, f"bytes 0-63/{size}", data[:64])
    status, headers, body = proxy_get(e2e, base + "0.log", f"{size - 5}-{size + 100}")
    assert (status, headers.get("content-range"), body) == (206, f"bytes {size - 5}-{size - 1}/{size}", data[-5:])
    for start in (size, size + 1000):
        status, headers, body = proxy_get(e2e, base + "0.log", f"{start}-")
        assert (status, headers.get("content-range")) == (416, f"bytes */{size}")
        assert body == b"invalid range: failed to overlap\n"
    status, _, _ = proxy_get(e2e, base + "9.log", "0-")
    assert status == 404
