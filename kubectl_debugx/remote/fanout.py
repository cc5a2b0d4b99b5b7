"""The one workflow of remote/session.py across several pods (a workload or a selector): the same steps, each
done for every pod before the next one starts, so that the all-or-nothing parts stay all or nothing.

    targets (container checked in every pod) -> profile per namespace + dry-run admission of EVERY pod
    -> add all debug containers, then wait for them together -> one exec per pod, all read by ONE loop
    (kube.execstream.pump_many: no thread or process per pod) under one stop model -> per-pod outcomes

A pod that fails once its tool runs (deleted, stream cut, tool error) ends alone: its `on_end` says why and
the others go on. Stopping (Ctrl-C, SIGTERM, --duration, a limit) asks every tool still running at once, after
the same grace as one pod (remote/streamrun.stop_ticker).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubectl_debugx.errors import NotFound
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.workloads import Resolution, TargetRef, check_max_pods, resolve
from kubectl_debugx.remote import session, specs
from kubectl_debugx.remote.containers import each
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.talk import Talk

DELETED = "the pod was deleted"  # failure()'s word for a pod that went away (a rollout replaced it)


def resolve_pods(kube: KubeApi, ref: TargetRef, max_pods: int, say: Callable[[str], None],
                 follow: bool = False) -> Resolution:
    """The running pods of the target, the skipped ones said, refused when more than --max-pods. Following,
    none is fine: the run waits for the first (a Deployment scaled to 0, pods still Pending)."""
    resolution = resolve(kube, kube.namespace, ref, empty_ok=follow)
    for line in resolution.skip_lines():
        say(line)
    check_max_pods(resolution, max_pods)
    if not resolution.pods:
        say(f"No pod of {ref.display} is running yet: waiting for pods to join (--follow); Ctrl-C to stop")
    return resolution


def prefixed(say: Callable[[str], None], pod: str) -> Callable[[str], None]:
    """A pod's tool talk, its lines prefixed with the pod's name."""
    return lambda line: say(f"{pod}: {line}")


def dry_run_all(talk: Talk, pods: list[Target], chosen: list[session.Candidate]) -> int:
    """What a real run would add (or reuse) on each pod, as YAML documents; nothing is created."""
    for i, (target, candidate) in enumerate(zip(pods, chosen, strict=True)):
        if i:
            talk.out("---\n")
        session.dry_run(talk, candidate, target)
    return 0


def targets(resolution: Resolution, container: str | None, say: Callable[[str], None]) -> list[Target]:
    """Every running pod of the resolution with the container to target, picked as `kubectl exec` does;
    a -c missing from any pod stops everything before anything is created."""
    out = []
    for pod in resolution.pods:
        names = [c["name"] for c in pod["spec"]["containers"]]
        name = pod["metadata"]["name"]
        chosen = container or specs.default_container(pod)
        if chosen not in names:
            raise NotFound(f'container "{chosen}" not found in pod "{name}" (containers: {", ".join(names)})')
        out.append(Target(pod["metadata"]["namespace"], pod, chosen))
    if container is None:
        many = {", ".join(c["name"] for c in t.pod["spec"]["containers"]) for t in out
                if len(t.pod["spec"]["containers"]) > 1}
        for listing in sorted(many):
            say(f'Defaulted container "{out[0].container}" out of: {listing}')
    return out


class Admission:
    """The profile is chosen once per namespace (its Pod Security level is the namespace's), on its first pod,
    with every missing permission named at once; every other pod's container is then checked by a dry run with
    that profile. Shared by the first pods and those that join later (--follow): a namespace already decided
    is not asked again."""

    def __init__(self, kube: KubeApi, command: str, choose: Callable[[Target], session.Candidate], image: str,
                 custom: Any, ttl: int, duration: float | None, hint: str) -> None:
        self.kube, self.command, self.choose, self.hint = kube, command, choose, hint
        self.image, self.custom, self.ttl, self.duration = image, custom, ttl, duration
        self.chosen: dict[str, session.Candidate] = {}
        self.firsts: dict[str, Target] = {}
        self.lock = threading.Lock()

    def decide(self, target: Target) -> session.Candidate:
        """The namespace's choice (made on this pod when it is the namespace's first)."""
        with self.lock:
            if target.namespace not in self.chosen:
                chosen = self.choose(target)
                session.check_access(self.kube, target, self.command, chosen)
                self.chosen[target.namespace], self.firsts[target.namespace] = chosen, target
            return self.chosen[target.namespace]

    def check(self, target: Target) -> session.Candidate:
        first = self.decide(target)
        if target is self.firsts[target.namespace]:
            return first
        candidate = session.admitted(self.kube, target, self.command, session.candidate(
            self.kube, target, first.profile, self.image, self.custom, self.ttl, self.duration), self.hint)
        return session.Candidate(candidate.profile, candidate.container, [], None, candidate.reuse)


def admit_all(admission: Admission, pods: list[Target]) -> list[session.Candidate]:
    """Admission (above) of every pod; any refusal raises before anything is created on any pod."""
    for target in pods:
        admission.decide(target)
    return each(admission.check, pods)
