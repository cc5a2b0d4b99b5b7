"""Pure builders of cp's upload (`cp LOCAL TARGET:/path`): where the item lands, what may be replaced, and every
command run in the debug container to write it.

Where (as `cp -r` and kubectl cp): PATH names the item when it does not exist (its folder must); when PATH is a
directory the item goes inside it under LOCAL's name. Every symlink on the way, PATH's own included, is followed
*inside the target's root* (resolve_dest_step): an absolute link under /proc/PID/root would resolve in the debug
container's own filesystem, so the path is rewritten here and asked about again, never handed to the kernel.

How, in the destination folder (a real directory by then): the tar stream is extracted into a fresh temporary
folder `.debugx-upload-RUNID` (mkdir: it cannot be a symlink planted there), so tar only ever meets what our own
stream creates, and our stream never holds a name below one of its own symlinks (formats/tarsend.py). The
digests are then checked there, and each item is renamed into place (`mv -T`: rename(2), which replaces a file or
a symlink itself and never writes through one); a folder that does not exist yet is renamed whole. Only then is
anything under a final name: a failure or Ctrl-C before leaves the folder as it was, the temporary folder removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubectl_debugx.commands.cp.procroot import READ_ALL_PROFILE, proc_root, through_link
from kubectl_debugx.errors import Forbidden, NotFound, OutputError, RemoteFailed

TEMP_PREFIX = ".debugx-upload-"
BATCH = 200  # names per command: far below ARG_MAX for any path length the kernel allows
TOOL = "tar"


@dataclass(frozen=True)
class DestStep:
    """One answer of the destination's lookup: `parts` resolved (every symlink followed inside the root) with the
    kind of its last component (D directory, F anything else that exists, N missing), or `again` to look up."""

    parts: list[str] | None
    kind: str = ""
    again: list[str] | None = None


def resolve_dest_step(parts: list[str], answers: list[str], path: str, uid: int) -> DestStep:
    """From procroot.STAT_SCRIPT's answers for the root and each prefix of `parts`: follow the first symlink
    (PATH's own last component included: a link to a folder is that folder, as for cp) inside the root; a missing
    last component is where a new item goes, a missing folder before it is an error."""
    if not answers or answers[0] != "D":
        raise Forbidden(f"cannot write the container's filesystem as uid {uid}: the kernel refuses /proc/PID/root "
                        f"of its main process to that user; --profile {READ_ALL_PROFILE} would write it")
    for i, answer in enumerate(answers[1:]):
        last = i == len(parts) - 1
        shown = "/" + "/".join(parts[: i + 1])
        if answer.startswith("L"):
            return DestStep(None, again=through_link(parts, i, answer[1:]))
        if answer == "N":
            if last:
                return DestStep(parts, "N")
            raise NotFound(f"folder {shown} does not exist in the container (or cannot be searched as uid {uid})"
                           + (f" (resolving {path})" if path.rstrip("/") != shown else ""))
        if last:
            return DestStep(parts, "D" if answer == "D" else "F")
        if answer != "D":
            raise NotFound(f"{shown} is not a directory in the container, so {path} cannot be written")
    return DestStep(parts, "D")


@dataclass(frozen=True)
class Placement:
    """Where the upload lands: the real folder (inside the root) and the item's name in it (None for a tar
    stream from stdin: its own top-level names)."""

    folder: list[str]
    name: str | None
    exists: str = "N"  # what is at folder/name now: N (nothing), D (a directory), F (anything else)

    def shown(self) -> str:
        return "/" + "/".join([*self.folder, *([self.name] if self.name else [])])


def place(resolved: DestStep, local_name: str | None) -> Placement | list[str]:
    """Where LOCAL (named `local_name`; None for a stream from stdin) goes, given PATH resolved: a Placement, or
    the parts of folder/NAME to resolve next when PATH is a directory (what is there decides)."""
    parts = resolved.parts or []
    if local_name is None:
        if resolved.kind != "D":
            shown = "/" + "/".join(parts)
            if resolved.kind == "N":
                raise NotFound(f"folder {shown} does not exist in the container (a tar stream is extracted into a "
                               "folder)")
            raise OutputError(f"{shown} is not a directory in the container (a tar stream is extracted into a "
                              "folder)")
        return Placement(parts, None, "D")
    if resolved.kind == "D":
        return [*parts, local_name]
    return Placement(parts[:-1], parts[-1], resolved.kind)


def check_placement(placement: Placement, local_kind: str, force: bool) -> None:
    """Refuse before anything is sent: what would be replaced without --force, a file over a directory or a
    directory over a file (cp refuses both). `local_kind`: D directory, F file, L symlink."""
    shown = placement.shown()
    if placement.exists == "N" or placement.name is None:
        return
    if placement.exists == "D" and local_kind != "D":
        raise OutputError(f"{shown} is a directory in the container: cannot replace it with a "
                          f"{'symlink' if local_kind == 'L' else 'file'}")
    if placement.exists == "F" and local_kind == "D":
        raise OutputError(f"{shown} exists in the container and is not a directory")
    if not force:
        raise OutputError(f"{shown} exists in the container: use --force to overwrite")


# --- commands in the debug container ----------------------------------------------------------------------


def folder_path(pid: int, folder: Sequence[str]) -> str:
    return proc_root(pid) + "/" + "/".join(folder) if folder else proc_root(pid) + "/"


def temp_path(pid: int, folder: Sequence[str], run_id: str) -> str:
    return folder_path(pid, folder).rstrip("/") + "/" + TEMP_PREFIX + run_id


# The temporary folder made (private, 0700, and new: mkdir fails if anything, a symlink included, has the name;
# a read-only root or a folder the user cannot write is said here, before anything is written), then tar -x of
# stdin into it: no owner from the stream (-o: the files are the writing user's, the target's; as root GNU tar
# would otherwise take the stream's), modes and mtimes kept. One exec for both: each costs ~40 ms.
EXTRACT_SCRIPT = 'mkdir -m 700 -- "$1" && exec tar -x -o -f - -C "$1"'


def extract_argv(temp: str) -> list[str]:
    return ["sh", "-c", EXTRACT_SCRIPT, "sh", temp]


# openssl's sha256 where the image has it (netshoot does): 3.5x coreutils' sha256sum here (200 MB in 0.16 s, not
# 0.57 s), and the pass over the written files is most of what the upload adds to the transfer. `-r` prints
# `HEX *PATH`, the name where sha256sum's `HEX  PATH` has it (tarcopy.parse_sha256sum reads both); it does not
# escape a newline in a name, so such names go to sha256sum, which does.
SUM_SCRIPT = ('if command -v openssl >/dev/null 2>&1; then exec openssl dgst -sha256 -r "$@"; fi; '
              'exec sha256sum -- "$@"')


def sha256_argv(temp: str, names: Sequence[str]) -> list[str]:
    paths = [temp + "/" + n for n in names]
    if any("\n" in n for n in names):
        return ["sha256sum", "--", *paths]
    return ["sh", "-c", SUM_SCRIPT, "sh", *paths]


# The ranges of the larger files (formats/tarsend.RANGE each), each read by dd and summed by openssl or sha256sum,
# as many at once as the container has CPUs (at most 8): `FILE RANGE DIGEST` per line, FILE and RANGE counted
# from 0 in the order given. $1 is 1 to wait for each range to be written, $2 the range in MiB, then PATH SIZE per
# file. Waiting, it runs beside the tar that writes the files (commands/cp/uploadcheck.py): tar writes a file in
# order, so once its size reaches a range's end the range is written and is read back at once (the pass after
# the transfer was a quarter of a 300 MB upload on the lab); `stat -c %s` tells the size, polled every 50 ms.
# Exit 127 without dd, 126 without stat when waiting.
RANGE_SCRIPT = ('w=$1 r=$2; shift 2; command -v dd >/dev/null 2>&1 || { echo "dd: not found" >&2; exit 127; }; '
                'if [ "$w" = 1 ] && ! command -v stat >/dev/null 2>&1; then echo "stat: not found" >&2; exit 126; '
                'fi; if command -v openssl >/dev/null 2>&1; then h() { openssl dgst -sha256 -r; }; '
                'else h() { sha256sum; }; fi; '
                'p=$(nproc 2>/dev/null); case $p in ""|*[!0-9]*) p=2;; esac; [ "$p" -gt 8 ] && p=8; '
                'b=$((r * 1048576)); i=0; j=0; while [ $# -ge 2 ]; do f=$1 s=$2; shift 2; n=$(((s + b - 1) / b)); '
                'k=0; while [ $k -lt "$n" ]; do e=$(((k + 1) * b)); [ "$e" -gt "$s" ] && e=$s; '
                'if [ "$w" = 1 ]; then until [ "$(stat -c %s -- "$f" 2>/dev/null || echo -1)" -ge "$e" ] '
                '2>/dev/null; do sleep 0.05 2>/dev/null || sleep 1; done; fi; '
                '{ d=$(dd if="$f" bs=1048576 skip=$((k * r)) count="$r" 2>/dev/null | h) && '
                'printf "%s %s %s\\n" $i $k "${d%% *}"; } & j=$((j + 1)); k=$((k + 1)); '
                '[ $j -lt "$p" ] || { wait; j=0; }; done; i=$((i + 1)); done; wait')


def ranges_argv(temp: str, files: Sequence[tuple[str, int]], range_mib: int, wait: bool = False) -> list[str]:
    """RANGE_SCRIPT over temp/NAME for each (name, size); `wait`: each range once it is written (beside tar)."""
    return ["sh", "-c", RANGE_SCRIPT, "sh", "1" if wait else "0", str(range_mib),
            *[arg for name, size in files for arg in (temp + "/" + name, str(size))]]


def parse_ranges(out: str) -> dict[tuple[int, int], str]:
    """RANGE_SCRIPT's lines -> {(file, range): digest}; anything else is left out (a digest missing is a
    mismatch, said as such)."""
    got: dict[tuple[int, int], str] = {}
    for line in out.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() and len(parts[2]) == 64:
            got[(int(parts[0]), int(parts[1]))] = parts[2].lower()
    return got


def stat_argv(base: str, names: Sequence[str]) -> list[str]:
    """procroot.STAT_SCRIPT over base/NAME for each name: what is at each final name now (L, D, F, N)."""
    from kubectl_debugx.commands.cp.procroot import STAT_SCRIPT

    return ["sh", "-c", STAT_SCRIPT, "sh", *[base.rstrip("/") + "/" + n for n in names]]


# `mv -f -T`: rename(2) of each NAME from the temporary folder to the destination folder: a file or a symlink at
# the final name is replaced (never written through), an empty directory too (only a new folder is moved: the
# plan never moves one onto an existing one). Stops at the first failure, naming it on stdout. After the last
# batch (`$3` = 1) the temporary folder goes in the same exec (what is left there: folders merged item by item):
# one exec fewer on every copy, ~40-60 ms each on a real cluster. Exit 0: every name moved (and the folder gone).
MOVE_SCRIPT = ('t=$1 d=$2 r=$3; shift 3; for n; do mv -f -T -- "$t/$n" "$d/$n" || '
               '{ printf "%s\\0" "$n"; exit 1; }; done; if [ "$r" = 1 ]; then exec rm -rf -- "$t"; fi')


def move_argv(temp: str, dest: str, names: Sequence[str], remove: bool = False) -> list[str]:
    return ["sh", "-c", MOVE_SCRIPT, "sh", temp, dest.rstrip("/"), "1" if remove else "0", *names]


def remove_argv(temp: str) -> list[str]:
    """The temporary folder and whatever is left in it (only ever our own: its name is new to this run)."""
    return ["rm", "-rf", "--", temp]


# --- what to rename ------------------------------------------------------------------------------------------


def moves(entries: Sequence[tuple[str, str]], states: dict[str, str], force: bool) -> list[str]:
    """The names to rename into place, parents before children, from the stream's entries (kind D/F/L, name;
    parents before children) and what is at each final name now (procroot.STAT_SCRIPT's answer: L..., D, F...,
    N; missing names are below a folder that is new). A new folder is renamed whole (its entries with it); an
    existing one is merged with --force; a symlink where a folder goes is refused (never written through)."""
    out: list[str] = []
    new_dir = ""
    seen: set[str] = set()
    for kind, name in entries:
        if new_dir and name.startswith(new_dir + "/"):
            continue  # renamed with its folder
        if name in seen:
            continue  # a name a stream gave twice: tar kept the last, renamed once
        seen.add(name)
        state = states.get(name, "N")[:1]
        if kind == "D":
            if state == "N":
                out.append(name)
                new_dir = name
            elif state == "L":
                raise OutputError(f"{name} is a symbolic link in the container: a folder is not written through it")
            elif state != "D":
                raise OutputError(f"{name} exists in the container and is not a directory")
            elif not force:
                raise OutputError(f"{name} exists in the container: use --force to overwrite")
            continue
        if state == "D":
            raise OutputError(f"{name} is a directory in the container: cannot replace it with a "
                              f"{'symlink' if kind == 'L' else 'file'}")
        if state != "N" and not force:
            raise OutputError(f"{name} exists in the container: use --force to overwrite")
        out.append(name)
    return out


def to_check(entries: Sequence[tuple[str, str]], force: bool) -> list[str]:
    """The final names to look at before renaming: every entry with --force (a folder may be merged), else the
    top-level ones (nothing below a name that does not exist can exist)."""
    return [name for _kind, name in entries if force or "/" not in name]


def write_error(said: str, where: str, uid: int) -> Exception:
    """The one line for a write the container refused (mkdir of the temporary folder, tar, mv)."""
    if "Read-only file system" in said:
        return OutputError(f"cannot write into {where} in the container: read-only file system "
                           "(readOnlyRootFilesystem: only a volume is writable there)")
    if "Permission denied" in said or "Operation not permitted" in said:
        return Forbidden(f"cannot write into {where} in the container as uid {uid}: permission denied; "
                         f"--profile {READ_ALL_PROFILE} writes as root")
    if "No space left" in said:
        return OutputError(f"cannot write into {where} in the container: no space left on the device")
    if "No such file" in said:
        return NotFound(f"folder {where} does not exist in the container (was it removed meanwhile?)")
    return RemoteFailed(f"cannot write into {where} in the container: {said or 'failed'}")
