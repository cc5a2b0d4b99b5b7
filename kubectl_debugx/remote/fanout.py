"""The pipeline every command that runs a tool beside pods goes through, for N >= 1 pods (a bare POD is a list of
one): each step done for every pod before the next starts, so that the all-or-nothing parts stay all or nothing.

    resolve (skipped pods said, --max-pods) -> targets (the container checked in every pod) -> admission
    (profile per namespace, one access-review batch, a dry run of EVERY pod's container): `admit`
    -> dry run (what would be added, as YAML) or the debug containers, added or reused, waited for together
    and said to stay on every way out (remote/containers.py)
    -> the tools, all read by one loop, per-pod outcomes and the exit code (remote/toolrun.py)

The commands keep only what is theirs: the tool's argv, the output (one pod's pcap or trace file, or a merged
pcapng, prefixed lines or a folder) and the summary; which output is what the user asked (-o, --follow) and how
many pods there are, never how the target was spelled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import NotFound
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.workloads import Resolution, TargetRef, check_max_pods, resolve
from kubectl_debugx.remote import session, specs
from kubectl_debugx.remote.containers import each
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.talk import Talk


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


def one_target(kube: KubeApi, namespace: str, pod: str, container: str | None, say: Callable[[str], None]
               ) -> Target:
    """The one pod of cp and doctor, through the same resolution and container check as every target."""
    return targets(resolve(kube, namespace, TargetRef("pod", pod)), container, say)[0]


def dry_run_all(talk: Talk, pods: list[Target], chosen: list[session.Candidate],
                details: list[str] | None = None) -> int:
    """What a real run would add (or reuse) on each pod, as YAML documents; nothing is created."""
    for i, (target, candidate) in enumerate(zip(pods, chosen, strict=True)):
        if i:
            talk.out("---\n")
        session.dry_run(talk, candidate, target, details[i] if details else "")
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


@dataclass
class Admitted:
    """The pods of a run and the container decided for each, before anything is created."""

    resolution: Resolution
    pods: list[Target]
    chosen: list[session.Candidate]
    admission: Admission


def admit(resolution: Resolution, container: str | None, admission: Admission, say: Callable[[str], None]
          ) -> Admitted:
    """The pipeline's steps up to admission, after `resolve_pods` (between them a command decides its output
    from the number of pods)."""
    pods = targets(resolution, container, say)
    return Admitted(resolution, pods, admit_all(admission, pods), admission)
