"""The debug container that reads the target's filesystem as the target's own user, shared by cp and shell.

A process opens another's /proc/PID/root only with equal real, effective and saved uid AND gid, or with
CAP_SYS_PTRACE (docs: tests/cluster/recordings/README.md, "/proc/PID/root"; recordings 26-*, 30-gid-*, 32-*).
So the least privilege that reads a non-root target's files is its own uid and gid, no capability at all:
Pod Security restricted admits it. The pod spec may not name the gid (the image's /etc/passwd gives it), so it is
learned from /proc/PID/status once a first debug container runs, and a matching one is added (or reused).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from kubectl_debugx.errors import UsageError
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.execstream import run_to_end
from kubectl_debugx.remote import containers, ephemeral, session, specs
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.profiles import merge_custom
from kubectl_debugx.talk import Talk


def target_user(pod: Mapping[str, Any], container: str) -> tuple[int | None, int | None]:
    """(uid, gid) the target container runs as, from its securityContext over the pod's, else from its status
    (`user.linux`, Kubernetes 1.31+); None where unknown (the image's USER)."""
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    ctr: Mapping[str, Any] = next((c for c in spec.get("containers") or [] if c.get("name") == container), {})
    sc = ctr.get("securityContext") or {}
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    gid = sc.get("runAsGroup", psc.get("runAsGroup"))
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        linux = ((status.get("user") or {}).get("linux") or {}) if status.get("name") == container else {}
        if "uid" in linux and uid in (None, linux["uid"]):
            # the runtime's own word; without it (containerd < 2.0) a gid the spec leaves out is learned from
            # /proc/PID/status once a debug container runs (cp._match_gid)
            uid, gid = linux["uid"], gid if gid is not None else linux.get("gid")
    return (None if uid is None else int(uid)), (None if gid is None else int(gid))


def must_run_as_non_root(pod: Mapping[str, Any], container: str) -> bool:
    """runAsNonRoot of the container over the pod's: the kubelet refuses to start it as root."""
    spec = pod.get("spec") or {}
    ctr: Mapping[str, Any] = next((c for c in spec.get("containers") or [] if c.get("name") == container), {})
    value = (ctr.get("securityContext") or {}).get("runAsNonRoot",
                                                   (spec.get("securityContext") or {}).get("runAsNonRoot"))
    return bool(value)


def security_context_for(uid: int, gid: int | None) -> dict[str, Any]:
    """The debug container's securityContext to read as `uid`: no capability, no privilege escalation,
    RuntimeDefault seccomp; Pod Security restricted admits it when uid != 0 (baseline always). As root the
    runtime's default capabilities are kept: the kernel lets a reader without CAP_SYS_PTRACE into
    /proc/PID/root only if it holds every capability the target holds."""
    sc: dict[str, Any] = {"runAsUser": uid}
    if gid is not None:
        sc["runAsGroup"] = gid
    if uid != 0:
        sc["runAsNonRoot"] = True
        sc["capabilities"] = {"drop": ["ALL"]}
    sc["allowPrivilegeEscalation"] = False
    sc["seccompProfile"] = {"type": "RuntimeDefault"}
    return sc


def debug_container_for_user(name: str, image: str, target: str, ttl: int, uid: int,
                             gid: int | None) -> dict[str, Any]:
    container = specs.ephemeral_container(name, image, target, ttl)
    container["securityContext"] = security_context_for(uid, gid)
    return container


# What a refusal of the debug container says (cp and shell: the same container, read as the target's user).
ADMISSION_HINT = ("the debug container runs as the target's user with no capability, which Pod Security "
                  "restricted admits; check the namespace's policy")

# The real, effective and saved gids of the target's main process and of the debug container itself, from the
# `Gid:` lines of /proc/PID/status (mode 0444: readable by anyone in the PID namespace); sh builtins only.
IDS_SCRIPT = 'for f in "/proc/$1/status" /proc/self/status; do while read -r k r e s _; do ' \
             '[ "$k" = Gid: ] && echo "$r $e $s"; done < "$f"; done'


def ids_command(pid: int) -> list[str]:
    return ["sh", "-c", IDS_SCRIPT, "sh", str(pid)]


def gid_to_match(out: str) -> int | None:
    """The gid the debug container must run as to read the target's /proc/PID/root, None when it already
    does. The kernel lets a reader without CAP_SYS_PTRACE in only when its uid and gid equal the target's
    real, effective and saved ones (recordings 30-gid-*: 65532:0 is refused, 65532:65532 reads)."""
    lines = [line.split() for line in out.splitlines() if line.strip()]
    if len(lines) != 2 or any(len(ids) != 3 or not all(i.isdigit() for i in ids) for ids in lines):
        return None  # unreadable: the path lookup then says what the kernel refuses
    target, own = lines
    # a target whose gids differ (a setgid program) cannot be matched at all: its effective one is the best try
    return None if target[1] == own[1] else int(target[1])


def choose_profile(kube: KubeApi, target: Target, command: str, profile: str, image: str,
                   custom: Mapping[str, Any] | None, ttl: int, say: Callable[[str], None]
                   ) -> tuple[session.Candidate, int]:
    """The debug container `command` uses, admitted by a dry run (doctor asks the same), and the uid it reads
    as: with --profile auto, the target's own user and no capability; else the named profile."""
    if (target.pod.get("spec") or {}).get("shareProcessNamespace"):
        # PID 1 is then the pause process, and nothing in the API says which PID is the target's main process
        raise UsageError(f"pod {target.pod_name} shares one PID namespace among its containers "
                         f"(shareProcessNamespace): {command} cannot tell which process is the target's; not "
                         "supported yet")
    uid, gid = target_user(target.pod, target.container)
    if profile != "auto":
        chosen = session.candidate(kube, target, profile, image, custom, ttl, None)
    else:
        if uid is None and must_run_as_non_root(target.pod, target.container):
            raise UsageError(f"container {target.container} runs as its image's USER, a non-root uid the pod spec "
                             "does not name: give it with --custom '{\"securityContext\": {\"runAsUser\": UID}}'")
        if uid is None:
            # Most images run as root when the pod names no user; root without CAP_SYS_PTRACE reads a root
            # target's /proc/PID/root (recordings 26-*) and is refused on any other user's: said then.
            uid, gid = 0, None
            say(f"The pod spec names no user for container {target.container}: reading as root, its image's "
                "usual user")
        name = specs.debug_container_name(target.pod)
        container = debug_container_for_user(name, image, target.container, ttl, uid, gid)
        if custom:
            container = merge_custom(container, custom)
        reuse = specs.reusable_container(target.pod, container, session.min_life(None), time.time())
        refusal = None if reuse else ephemeral.admission_error(kube, target, container)
        # named by the uid it runs as: --custom may set another than the target's (it once said `as uid 0`
        # and then read as 65532)
        used = (container.get("securityContext") or {}).get("runAsUser", uid)
        chosen = session.Candidate(f"as uid {used}", container, [], refusal, reuse)
    chosen = session.admitted(kube, target, command, chosen, ADMISSION_HINT)
    reader = (chosen.container.get("securityContext") or {}).get("runAsUser", uid if uid is not None else 0)
    return chosen, int(reader)


def match_gid(kube: KubeApi, target: Target, ec: str, chosen: session.Candidate, pid: int, image: str, ttl: int,
              command: str, talk: Talk) -> str:
    """The debug container that runs as the target's uid *and gid*. When the pod names no runAsGroup, the
    runtime takes each container's gid from its own image's /etc/passwd (distroless `nonroot` -> 65532, a uid
    the debug image does not list -> 0; recordings 30-gid-*), so it is learned from /proc/PID/status once the
    first container runs; if it differs, a container with that gid is added (or a matching one reused)."""
    sc = chosen.container.get("securityContext") or {}
    if "runAsGroup" in sc:
        return ec
    with kube.exec_connection(target.namespace, target.pod_name, ec, ids_command(pid)) as conn:
        out, _err, _outcome = run_to_end(conn)
    gid = gid_to_match(out.decode(errors="replace"))
    if gid is None:
        return ec
    uid = int(sc.get("runAsUser", 0))
    talk.say(f"Container {target.container} runs as gid {gid} (its image's; the pod spec names none), debug "
             f"container {ec} as another: the kernel lets only the same uid and gid read /proc/PID/root")
    target = replace(target, pod=kube.get_pod(target.namespace, target.pod_name))
    container = debug_container_for_user(specs.debug_container_name(target.pod), image, target.container, ttl,
                                         uid, gid)
    reuse = specs.reusable_container(target.pod, container, session.min_life(None), time.time())
    refusal = None if reuse else ephemeral.admission_error(kube, target, container)
    matched = session.admitted(kube, target, command, session.Candidate(f"as uid {uid} gid {gid}", container, [],
                                                                        refusal, reuse), ADMISSION_HINT)
    return containers.start(kube, target, matched, None, talk)
