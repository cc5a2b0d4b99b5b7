"""The one workflow of a tool run in a debug container, shared by capture and trace (and what comes next):

    resolve the target -> choose the profile -> dry-run admission -> ensure the debug container
    -> run the tool under the stop machinery -> summary

Commands supply what differs: the profile rule, the tool's argv, its stderr reader, where stdout goes and the
summary. Everything else -- how long the container must live, how a refusal is worded, what a dry run prints,
how the tool is started, stopped and made sure to be gone, what counts as its failure -- is decided here.

Signals follow one model (remote/streamrun.py): SIGINT/SIGTERM are noted, the tool is asked to stop, and the
stream is drained to its end; the command then returns 130/143 (StopState.exit_code) like any other outcome.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import DebugxError, UsageError
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.pods import is_pod_security
from kubectl_debugx.remote import access, ephemeral, specs
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.talk import Talk


@dataclass(frozen=True, kw_only=True)
class DebugOptions:
    """The debug container's flags, the same for every command that runs a tool in one."""

    image: str = specs.DEFAULT_IMAGE
    profile: str = "auto"
    custom: Mapping[str, Any] | None = None
    ttl: int = 3600
    force: bool = False
    dry_run: bool = False


def min_life(duration: float | None) -> float:
    """How long a reused debug container must still live: the run (60 s when open-ended) plus a margin."""
    return (duration or 60.0) + 30.0


@dataclass(frozen=True)
class Candidate:
    """The debug container a profile gives, its notes, and the API server's refusal of it (None: admitted)."""

    profile: str
    container: dict[str, Any]
    notes: list[str]
    refusal: ApiError | None
    reuse: str | None = None  # the running debug container a real run would reuse instead


def candidate(kube: KubeApi, target: Target, profile: str, image: str, custom: Mapping[str, Any] | None,
              ttl: int, duration: float | None) -> Candidate:
    """The container for `profile`, checked by a dry run; a matching running container will be reused, so it
    needs no admission."""
    name = specs.debug_container_name(target.pod)
    container, notes = ephemeral.build_container(target, name, image, profile, custom, ttl)
    reuse = specs.reusable_container(target.pod, container, min_life(duration), time.time())
    if reuse:
        return Candidate(profile, container, notes, None, reuse)
    return Candidate(profile, container, notes, ephemeral.admission_error(kube, target, container))


def refused(kube: KubeApi, target: Target, command: str, error: ApiError, profile: str, hint: str) -> DebugxError:
    """The one wording of a refused debug container: invalid (422), Pod Security with the hint, or RBAC with
    every permission `command` is missing (one batch of reviews, remote/access.py)."""
    if error.status == 422:
        return UsageError(f"the API server rejects the debug container: {error.args[0]}")
    if error.status == 403 and not is_pod_security(error):
        return access.refusal(kube, target.namespace, command, target.pod_name, access.NEEDS[command],
                              error.args[0])
    return ephemeral.explain_forbidden(error, profile, hint + "; nothing was created")


def admitted(kube: KubeApi, target: Target, command: str, chosen: Candidate, hint: str) -> Candidate:
    if chosen.refusal is not None:
        raise refused(kube, target, command, chosen.refusal, chosen.profile, hint)
    return chosen


def check_access(kube: KubeApi, target: Target, command: str, chosen: Candidate,
                 answers: Mapping[access.Permission, bool | None] | None = None) -> None:
    """Before anything is created: every permission the run needs, asked in one batch, all the missing ones
    named at once. Without it a user who may add a container but not exec into it would leave a debug
    container that can never be used (ephemeral containers cannot be removed); a reused one needs no patch.
    `answers`: reviews already made (doctor's batch)."""
    needs = [p for p in access.NEEDS[command] if not (chosen.reuse and p == access.PATCH_EPHEMERAL)]
    if answers is None or any(p not in answers for p in needs):
        answers = access.review(kube, target.namespace, needs)
    lacking = access.missing({p: answers[p] for p in needs})
    if lacking:
        raise access.lacking_error(command, target.namespace, target.pod_name, lacking)


def dry_run(talk: Talk, chosen: Candidate, target: Target, detail: str = "") -> int:
    """Print the container a real run would use (stdout, YAML): the running one it would reuse, as the pod has
    it, or the one it would add; say which. Nothing is created."""
    import yaml

    detail = f"; {detail}" if detail else ""
    if chosen.reuse:
        [container] = [c for c in (target.pod.get("spec") or {}).get("ephemeralContainers") or []
                       if c.get("name") == chosen.reuse]
        talk.out(yaml.safe_dump(container, sort_keys=False))
        talk.say(f"Dry run: profile {chosen.profile}{detail}; would reuse the running ephemeral container "
                 f"{chosen.reuse} of pod {target.pod_name}; nothing added")
        return 0
    talk.out(yaml.safe_dump(chosen.container, sort_keys=False))
    talk.say(f"Dry run: profile {chosen.profile}{detail}; ephemeral container not added to pod {target.pod_name}")
    return 0


def ttl_of(container: Mapping[str, Any]) -> float:
    command = container.get("command") or []
    return float(command[1]) if len(command) == 2 and str(command[1]).isdigit() else 0.0


def seconds_left(pod: Mapping[str, Any], ec: str, now: float) -> float | None:
    """How long the running debug container `ec` of `pod` still lives (its sleep), None if unknown."""
    container = next((c for c in (pod.get("spec") or {}).get("ephemeralContainers") or [] if c.get("name") == ec),
                     None)
    state = next((s.get("state") or {} for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []
                  if s.get("name") == ec), {})
    started = (state.get("running") or {}).get("startedAt")
    if container is None or not started:
        return None
    return specs.seconds_left(container, started, now)


def stays_line(ec: str, pod: str, seconds: float, now: float) -> str:
    """What a run leaves in the cluster: its debug container, idle, until its sleep (the TTL) ends."""
    until = time.strftime("%H:%M UTC", time.gmtime(now + seconds))
    return (f"ephemeral container {ec} stays in pod {pod} (ephemeral containers cannot be removed): idle, it "
            f"ends with its TTL at about {until}")
