"""Generic pod helpers on plain dicts: waiting for a pod to reach a state, and reading Pod Security refusals.

Shared by the ephemeral debug container (remote/ephemeral.py) and the node pod of nodelogs (commands/nodelogs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kubectl_debugx.kube.client import ApiError, KubeApi

START_TIMEOUT = 120.0  # seconds for an image pull and start on a busy node
# Waiting reasons that do not clear by themselves: waiting longer only hides the problem.
STUCK_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerError",
     "CreateContainerConfigError", "RunContainerError"}
)


def pod_events(
    kube: KubeApi, namespace: str, pod: Mapping[str, Any], deadline: float
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, pod) as the pod changes until the deadline: a watch, or a get every second for users who may
    get pods but not watch them."""
    name = pod["metadata"]["name"]
    try:
        yield from kube.watch_pod(namespace, name, pod["metadata"].get("resourceVersion", ""), deadline)
    except ApiError as e:
        if e.status != 403:
            raise
        while time.monotonic() < deadline:
            time.sleep(1.0)
            yield "MODIFIED", kube.get_pod(namespace, name)


def wait_for_pod(
    kube: KubeApi,
    namespace: str,
    pod: Mapping[str, Any],
    timeout: float,
    done: Callable[[Mapping[str, Any]], bool],
    deleted: Callable[[], Exception],
) -> bool:
    """Watch (or poll) the pod until ``done(pod)``: True; False when ``timeout`` seconds pass first.

    ``done`` sees each new version of the pod (not ``pod`` itself: the caller has looked at it already) and
    raises to end the wait for a state that will not clear; a deletion raises ``deleted()``."""
    deadline = time.monotonic() + timeout
    for kind, event_pod in pod_events(kube, namespace, pod, deadline):
        if kind == "DELETED":
            raise deleted()
        if done(event_pod):
            return True
    return False


def is_pod_security(error: ApiError) -> bool:
    """Whether the refusal comes from Pod Security admission (rather than RBAC or validation)."""
    return error.status == 403 and "violates PodSecurity" in error.args[0]


def short_psa(message: str) -> str:
    """The part of a Pod Security refusal that says what violates which level."""
    start = message.find("violates PodSecurity")
    return message[start:] if start >= 0 else message
