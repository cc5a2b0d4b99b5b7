"""capture's options for long and live runs (issue 13): --linktype, --wireshark/--tshark and the progress line.
Pure functions; commands/capture.py calls them at three small hooks (validate, the sink, the poll)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

from kubectl_debugx.errors import UsageError
from kubectl_debugx.progress import Progress, human_size
from kubectl_debugx.remote.viewers import ViewerSpec
from kubectl_debugx.talk import plural

# Short names for the link types older readers understand; any other tcpdump name (`tcpdump -L`) passes as is.
ALIASES = {"sll": "LINUX_SLL", "sll2": "LINUX_SLL2", "ether": "EN10MB", "ethernet": "EN10MB"}
# Recording 27-tcpdump-facts: `tcpdump -i any -L` lists LINUX_SLL and LINUX_SLL2 only, `-i eth0 -L` EN10MB and
# DOCSIS; `-i eth0 -y LINUX_SLL` exits 1 ("LINUX_SLL is not one of the DLTs supported by this device").
COOKED = ("LINUX_SLL", "LINUX_SLL2")
_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def linktype(value: str, interface: str) -> str:
    """tcpdump's name for --linktype VALUE (its -y), refused where we know the interface cannot give it."""
    name = ALIASES.get(value.lower(), value.upper())
    if not _NAME.fullmatch(name):
        raise UsageError(f"--linktype: {value!r} is not a link type: sll (LINUX_SLL), sll2, or a name from "
                         "tcpdump -L such as EN10MB")
    if interface == "any" and name not in COOKED:
        raise UsageError(f"--linktype {value}: interface any gives only Linux cooked headers: sll (LINUX_SLL, "
                         "which older Wireshark reads) or sll2 (LINUX_SLL2, the default)")
    if interface != "any" and name in COOKED:
        raise UsageError(f"--linktype {value}: {name} exists only on -i any (tcpdump exits 1 on {interface}); "
                         f"use -i any --linktype {value}, or leave --linktype out")
    return name


def viewer_kind(wireshark: bool, tshark: bool, output: str | None) -> str | None:
    """Which viewer --wireshark/--tshark ask for: one stream has one reader, and a viewer takes the place of -o."""
    if wireshark and tshark:
        raise UsageError("--wireshark and --tshark cannot be combined: the capture has one reader")
    kind = "wireshark" if wireshark else "tshark" if tshark else None
    if kind and output is not None:
        raise UsageError(f"--{kind} and -o/--output cannot be combined: the capture goes to {kind} (save it "
                         f"from there, or use -o without --{kind})")
    return kind


def progress_line(packets: int, written: int, elapsed: float, pods: int | None = None) -> str:
    """`1200 packets, 1.5 MB, 80.0 kB/s` (`, 3 pods` for a capture of several pods)."""
    rate = written / elapsed if elapsed > 0 else 0.0
    text = f"{plural(packets, 'packet')}, {human_size(written)}, {human_size(int(rate))}/s"
    return text + (f", {plural(pods, 'pod')}" if pods is not None else "")


def shows_progress(output: str, viewer: ViewerSpec | None, quiet: bool) -> bool:
    """Not with -q; not when the packets go to stdout or tshark: whatever prints them likely shares our
    terminal, and a line refreshed in place would garble theirs."""
    return not quiet and output != "-" and (viewer is None or viewer.kind != "tshark")


def progress(counts: Callable[[], tuple[int, int]], *, pods: Callable[[], int] | None = None,
             stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> Progress:
    """The capture's progress line (progress.py: in place on a terminal, plain every few seconds otherwise,
    nothing in the first second); `counts` gives (packets, bytes) written so far, `pods` the pods capturing
    (a capture of several pods)."""
    return Progress("Captured", None, stream=stream or sys.stderr, clock=clock,
                    describe=lambda elapsed: progress_line(*counts(), elapsed, pods() if pods else None))


# What tcpdump's -i takes besides the pod's own interfaces: `any`, an index (`tcpdump -D`'s numbers) and libpcap's
# pseudo-devices, which /proc/net/dev does not list; these are left to tcpdump.
_PSEUDO = re.compile(r"any|\d+|(?:nflog|nfqueue|dbus-|usbmon|bluetooth).*")


def net_devices(proc_net_dev: str) -> list[str]:
    """The interfaces of a network namespace from its /proc/net/dev (two header lines, then `NAME: counters`)."""
    names = {line.split(":", 1)[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line}
    return sorted(n for n in names if n)


def unknown_interface(interface: str, pod: str, devices: list[str]) -> str | None:
    """The error line when -i names no interface of the pod (else None): tcpdump's own words, `(No such device
    exists)`, would not say which interfaces there are."""
    if _PSEUDO.fullmatch(interface) or interface in devices:
        return None
    return (f'interface "{interface}" not found in pod {pod}; its interfaces: any, {", ".join(devices)} '
            "(-i any: all of them)")
