"""cp into a container (`cp LOCAL TARGET:/path`, `cp - TARGET:/path` for a tar stream on stdin): files written
through /proc/PID/root of the target's main process, from the debug container that runs as the target's own uid
and gid (commands/asuser.py, as the download): what it writes is the target user's, and Pod Security restricted
admits it. The image of the target needs nothing.

The steps (pure builders in uploadplan.py, the stream in formats/tarsend.py):
1. PATH resolved inside the target's root (every symlink followed there, never by the kernel from the debug
   container), and what would be replaced refused before anything is written (without --force);
2. a fresh temporary folder made in the destination folder (mkdir: a read-only root or a folder that cannot be
   written is named here, with nothing written), and our tar stream sent to `tar -x` in it, through the exec's
   stdin (kube/execinput.StdinWriter, from this thread as it is made; the tar is tethered apart, as the shell's
   command: remote/tether.py), progress on stderr;
3. `sha256sum` (or openssl's) of every file there against the digest of the bytes sent, a larger local file's
   ranges as tar writes them (uploadcheck.py);
4. what is at each final name looked at again (a stream from stdin has its names only now), then each item
   renamed into place (`mv -T`: rename(2), atomic, never through a symlink);
5. the temporary folder removed, on every way out. A kill -9 of the client, which cannot remove it, closes
   the exec of tar's tether apart, held open from before the folder is made to the very end: the tether then
   stops tar and removes the folder (remote/tether.py, `then`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import IO

from kubectl_debugx.commands import asuser
from kubectl_debugx.commands.cp import uploadcheck
from kubectl_debugx.commands.cp import uploadplan as plan
from kubectl_debugx.commands.cp.procroot import normalize, stat_command
from kubectl_debugx.errors import DebugxError, NotFound, RemoteFailed, UsageError
from kubectl_debugx.formats import tarsend
from kubectl_debugx.kube import execinput
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.execstream import ExecOutcome, ExecReader
from kubectl_debugx.progress import Progress
from kubectl_debugx.remote import containers, ephemeral, fanout, session, specs
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.process import RemoteProcess
from kubectl_debugx.remote.streamrun import stop_ends_it
from kubectl_debugx.summary import stopped_by
from kubectl_debugx.talk import Talk, plural

COMMAND = "cp"
PID = 1  # the target's main process in its own PID namespace (shareProcessNamespace is refused: asuser)


@dataclass(frozen=True, kw_only=True)
class UploadOptions(session.DebugOptions):
    pod: str
    path: str  # where, as the container sees it
    local: str  # a file or folder, or "-" (a tar stream on stdin)
    container: str | None = None


def validate(opts: UploadOptions) -> None:
    ephemeral.validate_debug_options(opts.profile, opts.ttl, None)


def local_kind(local: str) -> str:
    """D, F or L (LOCAL itself is not followed: a symlink is sent as a link); checked before the cluster is
    asked anything."""
    if local == "-":
        return "-"
    try:
        st = os.lstat(local)
    except FileNotFoundError:
        raise UsageError(f"{local}: no such file or directory") from None
    import stat

    return "D" if stat.S_ISDIR(st.st_mode) else "L" if stat.S_ISLNK(st.st_mode) else "F"


def local_name(local: str) -> str | None:
    """The item's name when PATH is a folder: LOCAL's last component (`.` and `/` have none: the folder's own)."""
    if local == "-":
        return None
    name = os.path.basename(os.path.normpath(os.path.abspath(local)))
    return name or None


# --- the remote side ----------------------------------------------------------------------------------------


def _run(kube: KubeApi, target: Target, ec: str, argv: list[str], image: str) -> tuple[bytes, bytes, ExecOutcome]:
    """A short command run to its end as a tethered RemoteProcess; a tool missing from the image is that error."""
    process = RemoteProcess(kube, target, ec, argv[0].rsplit("/", 1)[-1], argv, "KILL")
    out, err, outcome = process.run_to_end()
    if outcome.exit_code is None:
        raise RemoteFailed(ephemeral.tool_failure(process.tool, None, outcome.message, "", image))
    return out, err, outcome


def _stat(kube: KubeApi, target: Target, ec: str, argv: list[str], count: int, image: str) -> list[str]:
    out, err, _outcome = _run(kube, target, ec, argv, image)
    answers = out.decode("utf-8", "surrogateescape").split("\0")[:-1]
    if len(answers) != count:
        raise RemoteFailed(f"cannot look up paths in the debug container: {err.decode(errors='replace').strip()} "
                           "(its image needs sh and readlink)")
    return answers


def resolve(kube: KubeApi, target: Target, ec: str, path: str, name: str | None, uid: int,
            image: str) -> plan.Placement:
    parts = normalize(path)
    resolved_path = False
    for _ in range(40):  # the kernel's limit of symlinks on one path
        answers = _stat(kube, target, ec, stat_command(PID, parts), len(parts) + 1, image)
        step = plan.resolve_dest_step(parts, answers, path, uid)
        if step.parts is None:
            parts = step.again or []
            continue
        if resolved_path:  # folder/NAME: what is there
            return plan.Placement(step.parts[:-1], step.parts[-1], step.kind)
        where = plan.place(step, name)
        if isinstance(where, plan.Placement):
            return where
        parts, resolved_path = where, True
    raise NotFound(f"{path}: too many levels of symbolic links")


def _said(err: bytes) -> str:
    lines = err.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


# --- the workflow --------------------------------------------------------------------------------------------


def run(kube: KubeApi, opts: UploadOptions, talk: Talk, stdin: IO[bytes] | None = None) -> int:
    kind = local_kind(opts.local)
    target = fanout.one_target(kube, kube.namespace, opts.pod, opts.container, talk.say)
    chosen, uid = asuser.choose_profile(kube, target, COMMAND, opts.profile, opts.image, opts.custom, opts.ttl,
                                        talk.say)
    session.check_access(kube, target, COMMAND, chosen)
    talk.record(container=target.container, profile=chosen.profile, runAsUser=uid, path=opts.path,
                output=f"{target.pod_name}:{opts.path}")
    skipped: list[tuple[str, str]] = []
    name = local_name(opts.local)
    entries = [] if kind == "-" else tarsend.walk(opts.local, name or "", skipped)  # read before anything exists
    if opts.dry_run:
        return session.dry_run(talk, chosen, target, f"would write {opts.local} to {opts.path} as uid {uid}")
    ec = containers.start(kube, target, chosen, None, talk)
    if opts.profile == "auto" and not opts.custom:
        ec = asuser.match_gid(kube, target, ec, chosen, PID, opts.image, opts.ttl, COMMAND, talk)
    talk.record(debugContainer=ec)
    placement = resolve(kube, target, ec, opts.path, name, uid, opts.image)
    if kind != "-":
        plan.check_placement(placement, kind, opts.force)
        assert placement.name is not None
        entries = _renamed(entries, name or "", placement.name)
    run_id = specs.random_suffix(10)
    temp = plan.temp_path(PID, placement.folder, run_id)
    process = RemoteProcess(kube, target, ec, plan.TOOL, plan.extract_argv(temp), run_id=run_id, user_stdin=True,
                            tether_then=plan.remove_argv(temp))
    removed = False  # the last rename's exec removed the temporary folder
    try:
        code, removed = _upload(kube, target, ec, opts, talk, uid, placement, temp, entries, skipped,
                                stdin if stdin is not None else sys.stdin.buffer, process)
        return code
    finally:
        if not removed:
            _remove(kube, target, ec, temp, talk)
        process.close()  # the tether apart ends (and removes the folder again: a no-op by now)


def _renamed(entries: list[tarsend.Entry], old: str, new: str) -> list[tarsend.Entry]:
    """LOCAL's entries under the item's final name (PATH's last component when it names a new item)."""
    if old == new:
        return entries
    from dataclasses import replace

    return [replace(e, name=new + e.name[len(old):]) for e in entries]


def _remove(kube: KubeApi, target: Target, ec: str, temp: str, talk: Talk) -> None:
    try:
        _run(kube, target, ec, plan.remove_argv(temp), "")
    except DebugxError as e:
        talk.warn(f"could not remove the temporary folder {temp.split('/root', 1)[-1]} in the container: {e}; it "
                  "holds nothing under a final name")


SEND_SIZE = 1 << 20  # bytes per stdin frame at most: fewer, larger frames (64 KiB ones held the upload to 150 MB/s)


def _upload(kube: KubeApi, target: Target, ec: str, opts: UploadOptions, talk: Talk, uid: int,
            placement: plan.Placement, temp: str, entries: list[tarsend.Entry],
            skipped: list[tuple[str, str]], stdin: IO[bytes], process: RemoteProcess) -> tuple[int, bool]:
    """The copy, checked and put in place: (exit code, whether the temporary folder is already removed)."""
    report = tarsend.SendReport(skipped=skipped)
    total = sum(e.size for e in entries) if entries else None
    progress = Progress("Sent", total, quiet=talk.quiet)
    talk.before_line = progress.clear
    failure: Exception | None = None  # a local file or stdin failed us
    where = f"{target.pod_name}:{placement.shown()}"
    talk.say(f"Copying {'stdin' if opts.local == '-' else opts.local} to {where} (container {target.container}, "
             f"written as uid {uid})")
    errors = bytearray()
    outcome: ExecOutcome | None = None
    big = uploadcheck.big_files(entries)
    beside: uploadcheck.RangeCheck | None = None
    try:
        with stop_ends_it() as stop:
            conn = process.open()
            if big:
                beside = uploadcheck.RangeCheck(kube, target, ec, temp, big).start()
            reader = ExecReader(conn, lambda _data: None, errors.extend)
            # The stream is written from this thread, frame by frame as it is made, the exec read meanwhile
            writer = execinput.StdinWriter(conn, reader, SEND_SIZE)
            try:
                source = (((e, None) for e in entries) if opts.local != "-"
                          else tarsend.stream_entries(stdin, report.skipped))
                tarsend.send(source, writer.write, progress.add, report)
                writer.flush()
                execinput.close_stdin(conn)  # v4 cannot: tar ends at the archive's end blocks all the same
            except (execinput.StreamEnded, execinput.SendFailed):
                pass  # the exec ended (a failure, a cut stream): said by its outcome
            except Exception as e:  # noqa: BLE001 - raised once tar is stopped
                failure = e
            if failure is None:
                execinput.relay(reader, conn, None, end_stdin=False)  # tar's end
                outcome = reader.outcome
    finally:
        if outcome is None or outcome.exit_code is None:
            # tar's end is not known (a stop, a failure, a cut stream): stop it and what it started now. When
            # it exited, nothing of it runs, and the tether apart's stop (at the end) removes its record.
            process.make_sure_stopped(talk.warn)
        if beside is not None and (outcome is None or outcome.exit_code != 0):
            beside.stop(talk.warn)
        process.close(tether=False)  # the tether apart stays open until the folder is removed (run)
        progress.finish()
        talk.before_line = None
    talk.record(filesWritten=0, bytesWritten=0, symlinksWritten=0, directoriesWritten=0, filesVerified=0,
                skipped=[{"name": n, "reason": r} for n, r in report.skipped])
    for item, why in report.skipped:
        talk.say(f"Skipped {item}: {why}")
    if stop.signum is not None:
        talk.record(stoppedBy=stopped_by(stop.reason))
        talk.say(f"Stopped ({stop.said}): nothing written under {placement.shown()}; the temporary folder is "
                 "removed")
        return int(stop.code), False
    if failure is not None:
        raise failure
    assert outcome is not None
    if outcome.exit_code != 0:
        said = _said(bytes(errors))
        if outcome.exit_code is None:
            raise RemoteFailed(f"{outcome.message}: the copy to {where} did not finish; nothing written under a "
                               "final name")
        if said.startswith("mkdir") or any(w in said for w in ("Read-only", "Permission denied", "No space",
                                                                "Operation not permitted")):
            raise plan.write_error(said, "/" + "/".join(placement.folder), uid)
        raise RemoteFailed(ephemeral.tool_failure(plan.TOOL, outcome.exit_code, outcome.message, said, opts.image))
    verified = uploadcheck.verify(report, temp, lambda argv: _run(kube, target, ec, argv, opts.image), beside,
                                  talk.warn)
    removed = _install(kube, target, ec, opts, temp, placement, report, uid)
    files = len(report.files) + len(report.ranges)
    talk.record(filesWritten=files, bytesWritten=report.bytes, symlinksWritten=report.symlinks,
                directoriesWritten=report.directories, filesVerified=verified)
    talk.say("; ".join([f"{plural(files, 'file')} ({plural(report.bytes, 'byte')}) written and "
                        "verified", plural(report.symlinks, "symlink"),
                        plural(report.directories, "directory", "directories"), f"{len(report.skipped)} skipped",
                        f"to {where}", f"container {ec}"]))
    return 0, removed


def _install(kube: KubeApi, target: Target, ec: str, opts: UploadOptions, temp: str, placement: plan.Placement,
             report: tarsend.SendReport, uid: int) -> bool:
    """What is at each final name now (a stream's names are known only now; and the container may have changed
    meanwhile), then the renames; whether the last one also removed the temporary folder."""
    dest = plan.folder_path(PID, placement.folder)
    names = plan.to_check(report.entries, opts.force)
    states: dict[str, str] = {}
    for start in range(0, len(names), plan.BATCH):
        batch = names[start:start + plan.BATCH]
        states.update(zip(batch, _stat(kube, target, ec, plan.stat_argv(dest, batch), len(batch), opts.image),
                          strict=True))
    shown = "/" + "/".join(placement.folder)
    try:
        moved = plan.moves(report.entries, states, opts.force)
    except DebugxError as e:
        raise type(e)(f"{shown.rstrip('/')}/{e}", e.code) from None
    for start in range(0, len(moved), plan.BATCH):
        last = start + plan.BATCH >= len(moved)
        out, err, outcome = _run(kube, target, ec, plan.move_argv(temp, dest, moved[start:start + plan.BATCH],
                                                                  remove=last), opts.image)
        if outcome.exit_code != 0:
            failed = out.decode("utf-8", "surrogateescape").split("\0")[0]
            if last and not failed:
                return False  # every name moved, only the folder's removal failed: run() tries again, says so
            done = moved[:start + moved[start:].index(failed)] if failed in moved[start:] else moved[:start]
            error = plan.write_error(_said(err), shown, uid)
            raise type(error)(f"{error} (renaming {failed}; {plural(len(done), 'item')} already in place)",
                              error.code) if isinstance(error, DebugxError) else error
    return bool(moved)
