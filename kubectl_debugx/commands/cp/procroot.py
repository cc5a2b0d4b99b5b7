"""Pure builders of cp: the debug container for the target's user, and paths inside the target's root
(/proc/PID/root) resolved without ever following a symlink out of it, with the commands that read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_debugx.errors import Forbidden, NotFound, UsageError
from kubectl_debugx.kube.workloads import SPELLINGS
from kubectl_debugx.remote import specs

TOOL = "tar"
READ_ALL_PROFILE = "sysadmin"  # what reads a file the target's own user cannot


@dataclass(frozen=True)
class Source:
    target: str  # POD or TYPE/NAME
    path: str  # absolute, as the container sees it
    namespace: str | None = None  # NAMESPACE/POD:PATH, kubectl cp's form


def parse_source(source: str, local: str = "") -> Source:
    """`POD:/path`, `TYPE/NAME:/path` (a workload's first pod) or kubectl cp's `NAMESPACE/POD:/path`; the path is
    absolute, as the container sees it. LOCAL POD:PATH (a copy into the container) is named as such."""
    if ":" not in source and ":" in local:
        raise UsageError(f"cp copies out of containers: {source} {local} would copy into one, which is not "
                         "supported yet (use kubectl cp where the image has tar)")
    pod, sep, path = source.partition(":")
    if not sep or not pod or not path:
        raise UsageError(f"the source must be POD:/PATH, got {source!r}")
    if not path.startswith("/"):
        raise UsageError(f"the path in {source!r} must be absolute (as the container sees it): {pod}:/{path}?")
    if "\0" in path or "\n" in path:
        raise UsageError("the path cannot hold a NUL or newline character")
    first, slash, name = pod.partition("/")
    if slash and name and "/" not in name and first.lower() not in SPELLINGS:
        return Source(name, path, first)  # not a kind we target: kubectl cp's NAMESPACE/POD
    return Source(pod, path)


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


def proc_root(pid: int) -> str:
    return f"/proc/{pid}/root"


def normalize(path: str) -> list[str]:
    """Path components as seen from the container's root: `..` above the root stays at the root."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return parts


# One exec answers, for every prefix given, what it is: L<target> (symlink), D, F<size> (size empty where the
# image has no stat: the progress line then has no percentage) or N (missing/unreadable).
STAT_SCRIPT = ('for p; do if [ -L "$p" ]; then printf "L%s\\0" "$(readlink "$p")"; '
               'elif [ -d "$p" ]; then printf "D\\0"; '
               'elif [ -e "$p" ]; then printf "F%s\\0" "$(stat -c %s "$p" 2>/dev/null)"; '
               'else printf "N\\0"; fi; done')


def stat_command(pid: int, parts: list[str]) -> list[str]:
    root = proc_root(pid)
    prefixes = [root + "/"] + [root + "/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    return ["sh", "-c", STAT_SCRIPT, "sh", *prefixes]


@dataclass(frozen=True)
class Resolved:
    parts: list[str] | None  # the path with every directory on the way a real directory; None: look again
    kind: str = ""  # D, F, L (the item itself; a symlink is copied as a link)
    again: list[str] | None = None  # the path with one symlink replaced, to ask about again
    size: int | None = None  # bytes of a file item, when known


def resolve_step(parts: list[str], answers: list[str], path: str, uid: int) -> Resolved:
    """Follow the first symlink on the way to the item *inside the target's root* (an absolute target is
    from that root, not the debug container's); the item itself is not followed."""
    if not answers or answers[0] != "D":
        raise Forbidden(f"cannot read the container's filesystem as uid {uid}: the kernel refuses /proc/PID/root "
                        f"of its main process to that user; --profile {READ_ALL_PROFILE} would read it")
    for i, answer in enumerate(answers[1:]):
        last = i == len(parts) - 1
        shown = "/" + "/".join(parts[: i + 1])
        if answer == "N":
            raise NotFound(f"{shown} does not exist in the container (or its directory cannot be searched as "
                           f"uid {uid}; --profile {READ_ALL_PROFILE} would tell)" + (f" (resolving {path})"
                                                                                     if shown != path else ""))
        if last:
            size = answer[1:]
            return Resolved(parts, answer[0], size=int(size) if answer[0] == "F" and size.isdigit() else None)
        if answer.startswith("L"):
            link = answer[1:]
            base = "" if link.startswith("/") else "/".join(parts[:i])
            return Resolved(None, again=normalize(base + "/" + link + "/" + "/".join(parts[i + 1:])))
        if answer != "D":
            raise NotFound(f"{shown} is not a directory, so {path} does not exist in the container")
    return Resolved(parts, "D")


def tar_argv(pid: int, parts: list[str]) -> list[str]:
    """tar -c of the item, from its parent inside the target's root; never dereferencing (-h is not given),
    one file system boundary kept as the container sees it (no --one-file-system: volume mounts are part of
    the view). `./NAME` so that no name is read as an option."""
    root = proc_root(pid)
    if not parts:
        return [TOOL, "-C", root + "/", "-cf", "-", "."]
    parent = root + "/" + "/".join(parts[:-1])
    return [TOOL, "-C", parent, "-cf", "-", "./" + parts[-1]]


def sha256_argv(pid: int, parts: list[str], files: list[str]) -> list[str]:
    base = proc_root(pid) + ("/" + "/".join(parts) if parts else "")
    return ["sha256sum", "--", *[base + ("/" + f if f else "") for f in files]]
