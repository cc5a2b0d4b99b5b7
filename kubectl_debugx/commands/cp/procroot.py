"""Pure builders of cp: the debug container for the target's user, and paths inside the target's root
(/proc/PID/root) resolved without ever following a symlink out of it, with the commands that read them."""

from __future__ import annotations

from dataclasses import dataclass

# the target's user and the debug container that reads as it: shared with the shell (commands/asuser.py)
from kubectl_debugx.commands.asuser import (  # noqa: F401 - re-exported: cp's names since cp had them first
    debug_container_for_user,
    gid_to_match,
    ids_command,
    must_run_as_non_root,
    security_context_for,
    target_user,
)
from kubectl_debugx.errors import Forbidden, NotFound, UsageError
from kubectl_debugx.kube.workloads import SPELLINGS

TOOL = "tar"
READ_ALL_PROFILE = "sysadmin"  # what reads a file the target's own user cannot


@dataclass(frozen=True)
class Source:
    target: str  # POD or TYPE/NAME
    path: str  # absolute, as the container sees it
    namespace: str | None = None  # NAMESPACE/POD:PATH, kubectl cp's form


def is_upload(source: str, dest: str) -> bool:
    """`cp LOCAL POD:/path` (or `cp - POD:/path`) copies into the container: the first argument names no pod
    and the second does (as kubectl cp tells the directions)."""
    return ":" not in source and ":" in dest


def parse_source(source: str) -> Source:
    """`POD:/path`, `TYPE/NAME:/path` (a workload's first pod) or kubectl cp's `NAMESPACE/POD:/path`; the path is
    absolute, as the container sees it. The same form names where an upload goes."""
    pod, sep, path = source.partition(":")
    if not sep or not pod or not path:
        raise UsageError(f"the source must be POD:/PATH, got {source!r}")
    if not path.startswith("/"):
        raise UsageError(f"the path in {source!r} must be absolute (as the container sees it): {pod}:/{path}?")
    if "\0" in path or "\n" in path:
        raise UsageError("the path cannot hold a NUL or newline character")
    first, slash, name = pod.partition("/")
    # a namespace's name has no dot (a DNS label): `deployment.apps/web` is a kind with its group
    if slash and name and "/" not in name and "." not in first and first.lower() not in SPELLINGS:
        return Source(name, path, first)  # not a kind we target: kubectl cp's NAMESPACE/POD
    return Source(pod, path)


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


def through_link(parts: list[str], i: int, link: str) -> list[str]:
    """`parts` with its component `i`, a symlink to `link`, replaced by where it points *inside the target's
    root*: an absolute link is from that root (under /proc/PID/root it would resolve in the debug container's
    own filesystem), and `..` never climbs above it (normalize). Download and upload resolve paths by it."""
    base = "" if link.startswith("/") else "/".join(parts[:i])
    return normalize(base + "/" + link + "/" + "/".join(parts[i + 1:]))


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
            return Resolved(None, again=through_link(parts, i, answer[1:]))
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
