"""--wireshark / --tshark: a packet viewer started on our machine with the capture piped into its stdin.

Finding it is pure (find_program: environment, PATH lookup and file test passed in); the running program is
a Viewer, whose `open` is a ByteSink opener (remote/sinks.py), so it starts when the first byte arrives (the
pcap header, right when tcpdump listens: recording 27-tcpdump-stream-header-timing) and never for a run that
fails before. The capture stops when the viewer exits: its stdin closes (PipeClosed, `reader-gone`), or,
while no packet comes to find that out, `exited()` (polled as a stop condition)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubectl_debugx.errors import UsageError


@dataclass(frozen=True)
class Kind:
    """One viewer: the variable naming another program, the arguments that make it read a live stream on stdin,
    its place in the macOS app bundle, and what to install."""

    env: str
    args: tuple[str, ...]
    bundle: str
    install: str


KINDS = {
    # -i - reads the pipe (pcap or pcapng), -k starts capturing at once instead of showing the start page
    "wireshark": Kind("KUBECTL_DEBUGX_WIRESHARK", ("-k", "-i", "-"), "Wireshark.app/Contents/MacOS/Wireshark",
                      "install it (Debian/Ubuntu: apt install wireshark; macOS: brew install --cask wireshark)"),
    # -l prints each packet as it comes, also when tshark's stdout is a pipe (| grep)
    "tshark": Kind("KUBECTL_DEBUGX_TSHARK", ("-l", "-i", "-"), "Wireshark.app/Contents/MacOS/tshark",
                   "install it (Debian/Ubuntu: apt install tshark; macOS: brew install --cask wireshark, "
                   "which holds tshark too)"),
}


@dataclass(frozen=True)
class ViewerSpec:
    """Which viewer (`wireshark` or `tshark`) and the argv that starts it reading our stream."""

    kind: str
    argv: tuple[str, ...]


def candidates(kind: str, platform: str, home: str) -> list[str]:
    """Where the viewer is looked for after PATH: the macOS app bundle, system-wide then the user's."""
    if platform != "darwin":
        return []
    bundle = KINDS[kind].bundle
    return [f"/Applications/{bundle}", f"{home}/Applications/{bundle}"]


def find_program(kind: str, environ: Mapping[str, str], which: Callable[[str], str | None], platform: str,
                 is_executable: Callable[[str], bool]) -> ViewerSpec:
    """The viewer's argv: $KUBECTL_DEBUGX_WIRESHARK/TSHARK if set (a name on PATH or a path), else the program
    on PATH, else (macOS) the app bundle; a UsageError naming what to install when there is none."""
    info = KINDS[kind]
    env, args = info.env, info.args
    named = environ.get(env, "")
    if named:
        found = which(named)
        if not found:
            raise UsageError(f"--{kind}: ${env} names {named!r}, which is not an executable program")
        return ViewerSpec(kind, (found, *args))
    found = which(kind)
    if found:
        return ViewerSpec(kind, (found, *args))
    for path in candidates(kind, platform, environ.get("HOME", "")):
        if is_executable(path):
            return ViewerSpec(kind, (path, *args))
    where = " or in /Applications" if platform == "darwin" else ""
    raise UsageError(f"--{kind}: {kind} not found on PATH{where}: {info.install}, or set ${env} "
                     "to the program to start")


class Viewer:
    """The started viewer. Its own session: the Ctrl-C that stops the capture must not also kill it (it then
    reads the last packets and our end of the stream, and tshark exits by itself; Wireshark stays open)."""

    def __init__(self, spec: ViewerSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.spec.kind

    def open(self) -> int:
        """Start the program with a pipe on its stdin; return our end (the caller closes it)."""
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen(self.spec.argv, stdin=read_end, start_new_session=True)
        except OSError as e:
            os.close(write_end)
            raise UsageError(f"--{self.name}: cannot start {self.spec.argv[0]}: {e.strerror or e}") from None
        finally:
            os.close(read_end)
        return write_end

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def wait(self, say: Callable[[str], None]) -> int | None:
        """After the capture (its stdin closed): wait for the viewer to end, as a shell pipeline would, so that
        nothing it prints mixes with the prompt. Ctrl-C stops the wait and leaves it running."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            say(f"Waiting for {self.name} to exit (Ctrl-C leaves it running)")
            try:
                return self.proc.wait()
            except KeyboardInterrupt:
                return None
        return self.proc.returncode
