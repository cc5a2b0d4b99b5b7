"""Pure builders for what we send to the API: ephemeral containers, their patch, node pods."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubectl-debugx"
NAME_PREFIX = "debugx-"
# One debug image for every command, overridable by --image or $KUBECTL_DEBUGX_IMAGE: a widely used public
# image holding sh, ps, tcpdump, strace, curl and tar.
DEFAULT_IMAGE = "nicolaka/netshoot:v0.13"
# apimachinery's rand.String alphabet: no vowels, so generated names never spell words.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_ALPHABET) for _ in range(length))


def container_names(pod: Mapping[str, Any]) -> set[str]:
    spec = pod.get("spec") or {}
    return {
        c["name"]
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    }


def debug_container_name(pod: Mapping[str, Any], suffix: Callable[[], str] = random_suffix) -> str:
    """`debugx-xxxxx`, unique among every container of the pod (like kubectl's computeDebugContainerName)."""
    taken = container_names(pod)
    while True:
        name = NAME_PREFIX + suffix()
        if name not in taken:
            return name


def ephemeral_container(
    name: str, image: str, target: str, ttl_seconds: int, pull_policy: str | None = None
) -> dict[str, Any]:
    """An ephemeral container whose own process is a bounded sleep: tools run in it by exec, and it ends by
    itself because ephemeral containers can never be removed."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": ["sleep", str(ttl_seconds)],
        "targetContainerName": target,
        "terminationMessagePolicy": "File",
        "stdin": False,
        "tty": False,
    }
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    return container


def ephemeral_patch(container: Mapping[str, Any]) -> dict[str, Any]:
    """Strategic merge patch body adding one ephemeral container (the list merges by name)."""
    return {"spec": {"ephemeralContainers": [dict(container)]}}


def default_container(pod: Mapping[str, Any]) -> str:
    """The container `kubectl exec` picks: the default-container annotation, else the first one."""
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container"
    )
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if annotated and annotated in names:
        return annotated
    return names[0]


def default_pull_policy(image: str) -> str:
    """The imagePullPolicy the API server fills in when none is given: Always for `:latest` or no tag."""
    if "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "IfNotPresent" if tag and tag != "latest" else "Always"


def _comparable(container: Mapping[str, Any]) -> tuple[Any, ...]:
    image = str(container.get("image") or "")
    return (
        image,
        container.get("targetContainerName"),
        container.get("securityContext") or {},
        container.get("imagePullPolicy") or default_pull_policy(image),
    )


def reusable_container(
    pod: Mapping[str, Any], wanted: Mapping[str, Any], min_seconds_left: float, now: float
) -> str | None:
    """Name of a running debugx ephemeral container matching `wanted` (image, target, security settings)
    that will live at least `min_seconds_left` more, or None."""
    statuses = {
        s["name"]: s for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []
    }
    for container in (pod.get("spec") or {}).get("ephemeralContainers") or []:
        name = container.get("name", "")
        if not name.startswith(NAME_PREFIX) or _comparable(container) != _comparable(wanted):
            continue
        running = ((statuses.get(name) or {}).get("state") or {}).get("running")
        if not running:
            continue
        if _seconds_left(container, running.get("startedAt"), now) >= min_seconds_left:
            return name
    return None


def _seconds_left(container: Mapping[str, Any], started_at: str | None, now: float) -> float:
    from datetime import datetime

    command = container.get("command") or []
    if len(command) != 2 or command[0] != "sleep" or not command[1].isdigit() or not started_at:
        return 0.0
    started = datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
    return started + int(command[1]) - now


def pid_file(run_id: str) -> str:
    return f"/tmp/debugx-{run_id}.pid"


def pid_recording_command(run_id: str, argv: Iterable[str]) -> list[str]:
    """`sh -c` that records its PID, then execs argv. argv follows as positional parameters, so no shell
    ever interprets user input (filters, expressions, names)."""
    return ["sh", "-c", f'echo $$ > {pid_file(run_id)} && exec "$@"', "sh", *argv]


def signal_command(run_id: str, tool: str, signal: str = "INT", remove: bool = False) -> list[str]:
    """Signal the process recorded by pid_recording_command, only while it is still `tool`: in a shared PID
    namespace a recycled PID may belong to the user's application."""
    path = pid_file(run_id)
    # /proc/PID/comm is the program's name after exec: only cat and shell builtins, as in any image with sh.
    script = (
        f'p="$(cat {path} 2>/dev/null)"; '
        f'if [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = "$1" ]; '
        f'then kill -{signal} "$p"; fi'
    )
    if remove:
        script += f"; rm -f {path}"
    return ["sh", "-c", script + "; true", "sh", tool]


def node_pod(
    name: str,
    namespace: str,
    node: str,
    image: str,
    host_paths: Mapping[str, str],
    deadline_seconds: int,
    command: list[str],
) -> dict[str, Any]:
    """A short-lived pod pinned to `node` (no scheduler), tolerating every taint, that never restarts and is
    killed by `deadline_seconds` at the latest, mounting each host path read-only at the same path under
    /host, and nothing else (no service account token)."""
    volumes = []
    mounts = []
    for volume_name, host_path in sorted(host_paths.items()):
        volumes.append({"name": volume_name, "hostPath": {"path": host_path, "type": "Directory"}})
        mounts.append({"name": volume_name, "mountPath": "/host" + host_path, "readOnly": True})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline_seconds,
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            # It reads files; it has no business with the API server or the namespace's services.
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [
                {
                    "name": "debugger",
                    "image": image,
                    "command": command,
                    "volumeMounts": mounts,
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": volumes,
        },
    }
