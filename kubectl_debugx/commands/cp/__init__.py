"""cp: copy a file or a directory out of a container, as that container sees its filesystem (root and volume
mounts), through /proc/PID/root of its main process, from an ephemeral container in its PID namespace.

The target needs nothing: no shell, tar or coreutils. The debug container runs as the target's own uid, so
the kernel's ptrace access check lets it read /proc/PID/root without any capability, and Pod Security's
restricted level admits it (docs: tests/cluster/recordings/README.md, "/proc/PID/root"). The path is
resolved component by component inside the target's root first: an absolute symlink under /proc/PID/root
would resolve in the debug container's own filesystem. Then `tar -c` streams the item (symlinks stay
links, never followed) into a local extraction that keeps modes and mtimes, and `sha256sum` in the debug
container checks every regular file end to end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubectl_debugx.commands import asuser
from kubectl_debugx.commands.cp import verify
from kubectl_debugx.commands.cp.procroot import (
    READ_ALL_PROFILE,
    TOOL,
    Resolved,
    normalize,
    proc_root,
    resolve_step,
    stat_command,
    tar_argv,
)
from kubectl_debugx.errors import ArchiveError, Forbidden, NotFound, OutputError, RemoteFailed
from kubectl_debugx.formats import tarcopy
from kubectl_debugx.kube.client import KubeApi
from kubectl_debugx.kube.execstream import run_to_end
from kubectl_debugx.progress import Progress
from kubectl_debugx.remote import containers, ephemeral, fanout, session, toolrun
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.remote.sinks import ByteSink, PipeClosed
from kubectl_debugx.remote.streamrun import ToolStderr
from kubectl_debugx.summary import stopped_by
from kubectl_debugx.talk import Talk, plural

COMMAND = "cp"


@dataclass(frozen=True, kw_only=True)
class CpOptions(session.DebugOptions):
    pod: str
    path: str
    local: str
    container: str | None = None


def validate(opts: CpOptions) -> None:
    ephemeral.validate_debug_options(opts.profile, opts.ttl, None)


def check_local(opts: CpOptions) -> None:
    """LOCAL, checked before the cluster is asked anything (a debug container cannot be removed): a file that
    exists is not overwritten without --force. Checked again once the path is resolved in the container (a
    symlink may name another file)."""
    if opts.local == "-":
        return
    dest = destination(opts.local, normalize(opts.path))
    if os.path.lexists(dest) and not opts.force and not (dest.is_dir() and not any(dest.iterdir())):
        raise OutputError(f"{dest} exists: use --force to overwrite")


def destination(local: str, parts: list[str]) -> Path:
    """LOCAL, or LOCAL/NAME when LOCAL is an existing directory (as cp does)."""
    path = Path(local)
    if path.is_dir() and not path.is_symlink() and parts:
        return path / parts[-1]
    return path



# --- tar's stderr ---------------------------------------------------------------------------------------


class TarTalk(ToolStderr):
    def __init__(self, talk: Talk, prefix: str) -> None:
        self.talk = talk
        self.prefix = prefix
        self.denied: list[str] = []
        self.lines: list[str] = []

    def _line(self, line: str) -> None:
        if not line:
            return
        shown = line.replace(self.prefix, "")
        self.lines.append(shown)
        if "Permission denied" in line:
            self.denied.append(shown)
        elif "socket ignored" in line:
            self.talk.say(f"Skipped {shown.removeprefix('tar: ').split(': socket ignored')[0]}: socket")
        elif "Removing leading" not in line:
            self.talk.say(shown)


# --- the workflow ----------------------------------------------------------------------------------------


def _exec(kube: KubeApi, target: Target, ec: str, argv: list[str]) -> tuple[bytes, bytes, int | None]:
    with kube.exec_connection(target.namespace, target.pod_name, ec, argv) as conn:
        out, err, outcome = run_to_end(conn)
    return out, err, outcome.exit_code


def _resolve(kube: KubeApi, target: Target, ec: str, pid: int, path: str, uid: int) -> Resolved:
    parts = normalize(path)
    for _ in range(40):  # as the kernel's limit of symlinks on one path
        out, err, _code = _exec(kube, target, ec, stat_command(pid, parts))
        answers = out.decode("utf-8", "surrogateescape").split("\0")[:-1]
        if len(answers) != len(parts) + 1:
            raise RemoteFailed(f"cannot look up {path} in the debug container: {err.decode(errors='replace')}"
                               "(its image needs sh and readlink)")
        step = resolve_step(parts, answers, path, uid)
        if step.parts is not None:
            return step
        parts = step.again or []
    raise NotFound(f"{path}: too many levels of symbolic links")


def choose_profile(kube: KubeApi, target: Target, profile: str, image: str, custom: Mapping[str, Any] | None,
                   ttl: int, say: Callable[[str], None]) -> tuple[session.Candidate, int]:
    """The debug container cp uses, admitted by a dry run (doctor asks the same), and the uid it reads as."""
    return asuser.choose_profile(kube, target, COMMAND, profile, image, custom, ttl, say)


def run(kube: KubeApi, opts: CpOptions, talk: Talk) -> int:
    target = fanout.one_target(kube, kube.namespace, opts.pod, opts.container, talk.say)
    chosen, reader = choose_profile(kube, target, opts.profile, opts.image, opts.custom, opts.ttl, talk.say)
    session.check_access(kube, target, COMMAND, chosen)
    talk.record(container=target.container, profile=chosen.profile, runAsUser=reader, path=opts.path)
    if opts.dry_run:
        return session.dry_run(talk, chosen, target, f"would copy {opts.path} reading as uid {reader}")
    ec = containers.start(kube, target, chosen, None, talk)
    pid = 1  # the target's main process in its own PID namespace
    if opts.profile == "auto" and not opts.custom:
        ec = asuser.match_gid(kube, target, ec, chosen, pid, opts.image, opts.ttl, COMMAND, talk)
    talk.record(debugContainer=ec)
    resolved = _resolve(kube, target, ec, pid, opts.path, reader)
    parts = resolved.parts or []
    return _copy(kube, target, ec, pid, parts, opts, talk, reader, resolved)


def _copy(kube: KubeApi, target: Target, ec: str, pid: int, parts: list[str], opts: CpOptions, talk: Talk,
          uid: int, resolved: Resolved) -> int:
    to_stdout = opts.local == "-"
    dest = None if to_stdout else destination(opts.local, parts)
    empty_dir = dest is not None and dest.is_dir() and not any(dest.iterdir())
    if dest is not None and os.path.lexists(dest) and not opts.force and not empty_dir:
        raise OutputError(f"{dest} exists: use --force to overwrite")
    talk.record(output=opts.local if to_stdout else str(dest))
    base = "." if not parts else parts[-1]
    extractor = tarcopy.Extractor(dest, base, opts.force, talk.say)
    # The receive loop unpacks as frames arrive, in the thread that reads the exec: no pipe, no extraction
    # thread (issue 24: the reader was found blocked writing into the pipe while tarfile read 10 KiB at a time).
    unpacking = tarcopy.Unpacking(extractor)
    failure: list[BaseException] = []
    report: list[tarcopy.CopyReport] = []
    sink = ByteSink("-") if to_stdout else None
    pipe_closed = False
    # tar adds headers and padding: the percentage is of the file's size, capped at 100
    progress = Progress("Copied", resolved.size, quiet=talk.quiet)

    def on_stdout(data: memoryview) -> None:
        nonlocal pipe_closed
        progress.add(len(data))
        if sink is not None and not pipe_closed:
            try:
                sink.write(data)
            except PipeClosed:
                pipe_closed = True
        if failure:
            return  # the run is stopping (limit_reached): what still arrives is not unpacked
        try:
            unpacking.feed(data)
        except Exception as e:  # noqa: BLE001 - raised once the tool is stopped and its outcome known
            failure.append(e)

    def close() -> None:
        if not failure:
            try:
                report.append(unpacking.end())
            except Exception as e:  # noqa: BLE001 - as above
                failure.append(e)
        progress.finish()

    tar_talk = TarTalk(talk, proc_root(pid))
    talk.say(f"Copying {target.pod_name}:{opts.path} (container {target.container}, read as uid {uid}) to "
             f"{'stdout' if to_stdout else dest}")
    if dest is not None and not parts[:1] and not dest.exists():
        dest.mkdir(parents=True)
    sums = verify.RemoteSums(kube, target, ec, pid, parts, resolved.kind, opts.image)
    sums.start()
    ran = toolrun.run_tool(kube, target, ec, TOOL, tar_argv(pid, parts), on_stdout=on_stdout, stderr=tar_talk,
                           duration=None, limit_reached=lambda: pipe_closed or bool(failure), talk=talk, close=close,
                           command=COMMAND)
    done = report[0] if report else extractor.report
    talk.record(durationSeconds=round(ran.elapsed, 3), stoppedBy=stopped_by(ran.state.reason))
    if ran.state.reason or failure:
        sums.stop(talk.warn)
    verified = verify.verify(kube, target, ec, pid, parts, done, sums) if done.files else 0
    talk.record(filesWritten=len(done.files), bytesWritten=done.bytes, symlinksWritten=len(done.symlinks),
                directoriesWritten=len(done.directories), filesVerified=verified,
                skipped=[{"name": n, "reason": r} for n, r in done.skipped], unreadable=list(tar_talk.denied))
    talk.say("; ".join([f"{plural(len(done.files), 'file')} ({plural(done.bytes, 'byte')}) copied and verified",
                        plural(len(done.symlinks), "symlink"), plural(len(done.directories), "directory",
                                                                     "directories"),
                        f"{len(done.skipped)} skipped", f"{ran.elapsed:.1f}s", f"container {ec}"]))
    failed = toolrun.tool_error(ran, TOOL, tar_talk.lines[-1] if tar_talk.lines else "", opts.image)
    if failure and not ran.state.reason:
        # a stream cut short because tar failed (or never started: specs.NO_TMP): tar's word, not the stream's
        raise failed if failed is not None and isinstance(failure[0], ArchiveError) else failure[0]
    if ran.state.reason:
        return ran.state.exit_code
    cut = toolrun.cut_error(ran, str(dest or "stdout"), "files")
    if cut:
        raise cut
    if tar_talk.denied:
        first = tar_talk.denied[0]
        raise Forbidden(f"{plural(len(tar_talk.denied), 'file')} could not be read as uid {uid} ({first}); "
                        f"--profile {READ_ALL_PROFILE} would read {'it' if len(tar_talk.denied) == 1 else 'them'}; "
                        "everything else was copied")
    if failed:
        raise failed
    return 0
