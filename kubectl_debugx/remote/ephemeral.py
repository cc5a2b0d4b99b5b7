"""The ephemeral debug container shared by capture and trace: build, admit, add or reuse, wait, stop tools.

Ephemeral containers can never be removed, so ours run a bounded sleep and the tools run in them by exec;
a tool is stopped by signalling the PID it recorded, from a second exec.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import Forbidden, NotFound, NotReady, UsageError
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.execstream import run_to_end
from kubectl_debugx.kube.pods import START_TIMEOUT, STUCK_REASONS, is_pod_security, short_psa, wait_for_pod
from kubectl_debugx.remote import profiles, specs

Say = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    namespace: str
    pod: dict[str, Any]
    container: str

    @property
    def pod_name(self) -> str:
        return str(self.pod["metadata"]["name"])


def validate_debug_options(profile: str, ttl: int, duration: float | None) -> None:
    """The checks every ephemeral-container command makes of its shared flags (each names its flag)."""
    if profile not in ("auto", *profiles.PROFILES):
        raise UsageError(f"--profile: unknown profile {profile!r}; choose auto or one of "
                         f"{', '.join(profiles.PROFILES)}")
    if ttl < 10:
        raise UsageError(f"--ttl: the debug container needs to live at least 10s, got {ttl}s")
    if duration is not None and duration >= ttl:
        raise UsageError(f"--duration ({duration:g}s) must be shorter than --ttl ({ttl}s)")


def build_container(
    target: Target,
    name: str,
    image: str,
    profile: str,
    custom: Mapping[str, Any] | None,
    ttl_seconds: int,
    pull_policy: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The ephemeral container for `profile` (+ custom), and notes worth telling the user."""
    notes: list[str] = []
    container = specs.ephemeral_container(name, image, target.container, ttl_seconds, pull_policy)
    container = profiles.apply_to_ephemeral(profile, container)
    if custom:
        container = profiles.merge_custom(container, custom)
    if profiles.pod_runs_as_non_root(target.pod) and profile != "restricted":
        sc = container.get("securityContext") or {}
        if "runAsUser" not in sc and "runAsNonRoot" not in sc:
            container = profiles.run_as_root(container)
            notes.append("the pod runs as non-root, so the debug container runs as root (runAsUser: 0) "
                         "for its capabilities to be effective")
    return container, notes


def admission_error(kube: KubeApi, target: Target, container: Mapping[str, Any]) -> ApiError | None:
    """Ask the API server, with dryRun, whether it would admit the container; the refusal if not."""
    try:
        kube.add_ephemeral_container(
            target.namespace, target.pod_name, specs.ephemeral_patch(container), dry_run=True
        )
    except ApiError as e:
        if e.status in (403, 422):
            return e
        raise
    return None


def add_or_reuse(
    kube: KubeApi, target: Target, container: dict[str, Any], min_seconds_left: float, say: Say
) -> tuple[str, dict[str, Any] | None]:
    """Reuse a matching running debugx container (returns its name and None), or add `container` without
    waiting for it (its name and the patched pod, for wait_running): several pods' containers then start
    together."""
    reused = specs.reusable_container(target.pod, container, min_seconds_left, time.time())
    if reused:
        say(f"Reusing ephemeral container {reused} in pod {target.pod_name}")
        return reused, None
    name = container["name"]
    say(f"Adding ephemeral container {name} (image {container['image']}) to pod {target.pod_name}")
    return name, kube.add_ephemeral_container(target.namespace, target.pod_name, specs.ephemeral_patch(container))


def added_after_all(kube: KubeApi, target: Target, name: str, stays: str) -> str:
    """Interrupted while the patch was on its way: whether the API server applied it (what stays), "" if not."""
    try:
        pod = kube.get_pod(target.namespace, target.pod_name)
    except Exception:  # noqa: BLE001 - cannot tell: say so rather than nothing
        return f"ephemeral container {name} may have been added to pod {target.pod_name} (interrupted while adding it)"
    names = {c.get("name") for c in (pod.get("spec") or {}).get("ephemeralContainers") or []}
    return stays if name in names else ""


def _container_state(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []:
        if status.get("name") == name:
            return dict(status.get("state") or {})
    return {}


def wait_running(kube: KubeApi, namespace: str, pod: Mapping[str, Any], name: str, image: str,
                 timeout: float = START_TIMEOUT) -> None:
    pod_name = pod["metadata"]["name"]
    if _container_state(pod, name).get("running"):
        return
    last_reason = ""

    def running(event_pod: Mapping[str, Any]) -> bool:
        nonlocal last_reason
        state = _container_state(event_pod, name)
        if state.get("running"):
            return True
        if state.get("terminated"):
            t = state["terminated"]
            why = t.get("reason") or f"exit code {t.get('exitCode')}"
            detail = (t.get("message") or "").strip()
            raise NotReady(f"debug container {name} ended before it could be used ({why}"
                           + (f": {detail})" if detail else ")"))
        waiting = state.get("waiting") or {}
        last_reason = waiting.get("reason", last_reason)
        if last_reason in STUCK_REASONS:
            message = (waiting.get("message") or "").strip()
            raise NotReady(f'debug container {name} cannot start: image "{image}": {last_reason}'
                           + (f": {message}" if message else ""))
        return False

    def deleted() -> Exception:
        return NotFound(f'pod "{pod_name}" was deleted while its debug container was starting')

    if not wait_for_pod(kube, namespace, pod, timeout, running, deleted):
        raise NotReady(f"debug container {name} did not start within {int(timeout)}s"
                       + (f" (last state: {last_reason})" if last_reason else ""))


SIGNAL_TIMEOUT = 10.0  # seconds for the exec that signals a tool (a sh builtin and cat: milliseconds)


def signal_tool(
    kube: KubeApi, target: Target, container: str, run_id: str, tool: str, signal: str = "INT", remove: bool = False
) -> None:
    """Signal the tool started with specs.tethered_command, by a second exec, bounded: a signal exec that never
    ends must not hold the run (CI, stop 28: a Ctrl-C'd cp waited 180 s on one, on the test cluster; cri-dockerd
    keeps some exec streams open for good, recordings 40-docker-*). The stop escalates by itself, and the
    tether and the container's TTL remain."""
    command = specs.signal_command(run_id, tool, signal, remove)
    with kube.exec_connection(target.namespace, target.pod_name, container, command) as conn:
        run_to_end(conn, timeout=SIGNAL_TIMEOUT)


def make_sure_stopped(kube: KubeApi, target: Target, ec: str, run_id: str, tool: str, warn: Say) -> None:
    """Whatever happened, the tool must not keep running in the pod (a killed tracer also detaches)."""
    try:
        signal_tool(kube, target, ec, run_id, tool, "KILL", remove=True)
    except Exception as e:  # noqa: BLE001 - report, but never hide the outcome of the run itself
        if isinstance(e, ApiError) and e.status == 404:
            return  # the pod is gone (a rollout replaced it), and every process of it with it
        warn(f"could not confirm that {tool} stopped in {target.pod_name}/{ec}: {e}; it ends with the "
             "container's TTL at the latest")


def tool_failure(tool: str, code: int | None, message: str, tool_said: str, image: str) -> str:
    """One line for a tool that failed: missing from the image, no shell, or the tool's own last word."""
    if code == 127 or ("not found" in tool_said and tool in tool_said):
        return f"{tool} is not in image {image}: choose an image that has it with --image"
    if "executable file not found" in message:
        return f"image {image} has no sh: choose an image with sh and {tool} with --image"
    if tool_said.startswith("debugx: "):
        return tool_said.removeprefix("debugx: ")  # our own wrapper's words (specs.tethered_command)
    if tool_said:
        return tool_said if tool_said.startswith(tool) else f"{tool}: {tool_said}"
    return f"{tool} failed ({message or f'exit code {code}'})"


def explain_forbidden(error: ApiError, profile: str, what: str) -> Forbidden:
    """One line for a Pod Security or RBAC refusal of the ephemeral container."""
    message = error.args[0]
    if is_pod_security(error):
        return Forbidden(f"Pod Security refuses the debug container with profile {profile}: "
                         f"{short_psa(message)}; {what}")
    if error.status == 403:
        return Forbidden(f"{message} (needs patch on pods/ephemeralcontainers, get and create on pods/exec)")
    return Forbidden(message)

