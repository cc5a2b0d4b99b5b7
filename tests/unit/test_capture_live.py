"""--linktype, --wireshark/--tshark and the capture's progress line (commands/capture_live.py,
remote/viewers.py): pure functions, whole results."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest

from kubectl_debugx.commands import capture_live as live
from kubectl_debugx.commands.capture import CaptureOptions, PcapOutput, tcpdump_argv
from kubectl_debugx.errors import UsageError
from kubectl_debugx.remote.sinks import ByteSink, PipeClosed
from kubectl_debugx.remote.viewers import Viewer, ViewerSpec, candidates, find_program

from .test_progress import Clock, Tty


@pytest.mark.parametrize(
    ("value", "interface", "name"),
    [("sll", "any", "LINUX_SLL"), ("LINUX_SLL", "any", "LINUX_SLL"), ("Sll2", "any", "LINUX_SLL2"),
     ("EN10MB", "eth0", "EN10MB"), ("ether", "lo", "EN10MB"), ("docsis", "eth0", "DOCSIS")],
)
def test_linktype_names(value, interface, name):
    assert live.linktype(value, interface) == name


@pytest.mark.parametrize(
    ("value", "interface", "message"),
    [
        ("sll", "eth0", "--linktype sll: LINUX_SLL exists only on -i any (tcpdump exits 1 on eth0); use -i any "
                        "--linktype sll, or leave --linktype out"),
        ("LINUX_SLL2", "lo", "--linktype LINUX_SLL2: LINUX_SLL2 exists only on -i any (tcpdump exits 1 on lo); "
                             "use -i any --linktype LINUX_SLL2, or leave --linktype out"),
        ("EN10MB", "any", "--linktype EN10MB: interface any gives only Linux cooked headers: sll (LINUX_SLL, "
                          "which older Wireshark reads) or sll2 (LINUX_SLL2, the default)"),
        ("1; rm", "any", "--linktype: '1; rm' is not a link type: sll (LINUX_SLL), sll2, or a name from tcpdump "
                         "-L such as EN10MB"),
    ],
)
def test_linktype_refused_where_it_cannot_work(value, interface, message):
    with pytest.raises(UsageError) as e:
        live.linktype(value, interface)
    assert str(e.value) == message


def test_tcpdump_argv_with_linktype():
    assert tcpdump_argv(CaptureOptions(pod="web", linktype="LINUX_SLL")) == [
        "tcpdump", "-U", "-p", "-B", "8192", "-w", "-", "-i", "any", "-y", "LINUX_SLL",
    ]


def test_one_viewer_in_place_of_output():
    assert [live.viewer_kind(w, t, None) for w, t in ((False, False), (True, False), (False, True))] == [
        None, "wireshark", "tshark"]
    assert live.viewer_kind(False, False, "x.pcap") is None
    with pytest.raises(UsageError) as e:
        live.viewer_kind(True, False, "-")
    assert str(e.value) == ("--wireshark and -o/--output cannot be combined: the capture goes to wireshark (save "
                            "it from there, or use -o without --wireshark)")
    with pytest.raises(UsageError) as e:
        live.viewer_kind(True, True, None)
    assert str(e.value) == "--wireshark and --tshark cannot be combined: the capture has one reader"


def which_from(programs: dict[str, str]):
    return lambda name: programs.get(name)


def test_find_on_path_with_the_live_capture_arguments():
    which = which_from({"wireshark": "/usr/bin/wireshark", "tshark": "/usr/bin/tshark"})
    assert find_program("wireshark", {}, which, "linux", lambda p: False) == ViewerSpec(
        "wireshark", ("/usr/bin/wireshark", "-k", "-i", "-"))
    assert find_program("tshark", {}, which, "linux", lambda p: False) == ViewerSpec(
        "tshark", ("/usr/bin/tshark", "-l", "-i", "-"))


def test_environment_names_another_program():
    which = which_from({"wireshark": "/usr/bin/wireshark", "/opt/ws/bin/ws": "/opt/ws/bin/ws"})
    env = {"KUBECTL_DEBUGX_WIRESHARK": "/opt/ws/bin/ws"}
    assert find_program("wireshark", env, which, "linux", lambda p: False) == ViewerSpec(
        "wireshark", ("/opt/ws/bin/ws", "-k", "-i", "-"))
    with pytest.raises(UsageError) as e:
        find_program("tshark", {"KUBECTL_DEBUGX_TSHARK": "nope"}, which, "linux", lambda p: True)
    assert str(e.value) == "--tshark: $KUBECTL_DEBUGX_TSHARK names 'nope', which is not an executable program"


def test_macos_app_bundle_system_then_user():
    assert candidates("wireshark", "darwin", "/Users/me") == [
        "/Applications/Wireshark.app/Contents/MacOS/Wireshark",
        "/Users/me/Applications/Wireshark.app/Contents/MacOS/Wireshark"]
    assert candidates("wireshark", "linux", "/home/me") == []
    user = "/Users/me/Applications/Wireshark.app/Contents/MacOS/Wireshark"
    assert find_program("wireshark", {"HOME": "/Users/me"}, which_from({}), "darwin",
                        lambda p: p == user) == ViewerSpec("wireshark", (user, "-k", "-i", "-"))


def test_not_found_says_what_to_install():
    with pytest.raises(UsageError) as e:
        find_program("wireshark", {}, which_from({}), "linux", lambda p: False)
    assert str(e.value) == ("--wireshark: wireshark not found on PATH: install it (Debian/Ubuntu: apt install "
                            "wireshark; macOS: brew install --cask wireshark), or set $KUBECTL_DEBUGX_WIRESHARK "
                            "to the program to start")
    with pytest.raises(UsageError) as e:
        find_program("tshark", {"HOME": "/Users/me"}, which_from({}), "darwin", lambda p: False)
    assert str(e.value) == ("--tshark: tshark not found on PATH or in /Applications: install it (Debian/Ubuntu: "
                            "apt install tshark; macOS: brew install --cask wireshark, which holds tshark too), "
                            "or set $KUBECTL_DEBUGX_TSHARK to the program to start")


def test_viewer_starts_on_the_first_byte_reads_everything_and_its_exit_is_seen(tmp_path: Path):
    got = tmp_path / "got"
    copy = f"import sys, shutil; shutil.copyfileobj(sys.stdin.buffer, open({str(got)!r}, 'wb'))"
    viewer = Viewer(ViewerSpec("tshark", (sys.executable, "-c", copy)))
    output = PcapOutput("tshark", None, viewer)
    assert (output.sink.display, viewer.proc, viewer.exited()) == ("tshark", None, False)
    header = bytes.fromhex("d4c3b2a1 0200 0400 00000000 00000000 00000400 71000000")  # LINUX_SLL
    output.sink.write(header)
    assert viewer.proc is not None and not viewer.exited()
    output.sink.close()
    assert viewer.wait(lambda _: None) == 0
    assert viewer.exited() and got.read_bytes() == header


def test_viewer_gone_is_a_closed_pipe():
    viewer = Viewer(ViewerSpec("wireshark", (sys.executable, "-c", "pass")))
    sink = ByteSink("wireshark", opener=viewer.open)
    sink.write(b"x")
    deadline = time.monotonic() + 30
    while not viewer.exited() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert viewer.exited()
    with pytest.raises(PipeClosed):
        sink.write(b"y" * 65536 * 2)  # more than a pipe holds, whatever the timing
    sink.close()
    assert sink.fd is None


def test_a_viewer_that_cannot_start_is_one_line():
    viewer = Viewer(ViewerSpec("wireshark", ("/nonexistent/wireshark", "-k", "-i", "-")))
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(UsageError) as e:
        viewer.open()
    assert str(e.value) == "--wireshark: cannot start /nonexistent/wireshark: No such file or directory"
    assert len(os.listdir("/proc/self/fd")) == before  # both pipe ends closed


def test_progress_line():
    assert live.progress_line(1200, 1_500_000, 2.0) == "1200 packets, 1.5 MB, 750.0 kB/s"
    assert live.progress_line(1, 90, 0.0, pods=3) == "1 packet, 90 B, 0 B/s, 3 pods"


@pytest.mark.parametrize(
    ("output", "viewer", "quiet", "shown"),
    [("web.pcap", None, False, True), ("web.pcap", None, True, False), ("-", None, False, False),
     ("wireshark", ViewerSpec("wireshark", ("wireshark",)), False, True),
     ("tshark", ViewerSpec("tshark", ("tshark",)), False, False)],
)
def test_where_progress_shows(output, viewer, quiet, shown):
    assert live.shows_progress(output, viewer, quiet) is shown


def test_capture_progress_plain_lines_also_while_no_packet_comes():
    out, clock = io.StringIO(), Clock()
    counts = [(0, 24)]
    p = live.progress(lambda: counts[-1], stream=out, clock=clock)
    for step, packets in ((0.5, 10), (1.0, 20), (3.0, 20), (6.0, 20), (6.5, 30)):
        clock.now = 100.0 + step
        counts.append((packets, 24 + packets * 100))
        p.tick()
    p.finish()
    assert out.getvalue() == ("Captured: 20 packets, 2.0 kB, 2.0 kB/s\n"
                              "Captured: 20 packets, 2.0 kB, 337 B/s\n")


def test_capture_progress_in_place_on_a_terminal():
    out, clock = Tty(), Clock()
    p = live.progress(lambda: (5, 500), stream=out, clock=clock)
    clock.now = 100.5
    p.tick()  # the first second says nothing
    clock.now = 102.0
    p.tick()
    p.finish()
    assert out.getvalue() == "\rCaptured: 5 packets, 500 B, 250 B/s\x1b[K\r\x1b[K"


def test_talk_clears_the_line_refreshed_in_place(capsys):
    from kubectl_debugx.talk import Talk

    out, clock = Tty(), Clock()
    p = live.progress(lambda: (5, 500), stream=out, clock=clock)
    talk = Talk(before_line=p.clear)
    clock.now = 102.0
    p.tick()
    talk.say("Stopping")
    talk.say("again")  # nothing left to clear
    clock.now = 103.0
    p.tick()
    p.finish()
    assert out.getvalue() == ("\rCaptured: 5 packets, 500 B, 250 B/s\x1b[K\r\x1b[K"
                              "\rCaptured: 5 packets, 500 B, 166 B/s\x1b[K\r\x1b[K")
    assert capsys.readouterr().err == "Stopping\nagain\n"


def test_capture_progress_of_several_pods_counts_those_capturing():
    out, clock = io.StringIO(), Clock()
    pods = [3]
    p = live.progress(lambda: (5, 500), pods=lambda: pods[-1], stream=out, clock=clock)
    clock.now = 102.0
    p.tick()
    pods.append(2)
    clock.now = 108.0
    p.tick()
    assert out.getvalue() == ("Captured: 5 packets, 500 B, 250 B/s, 3 pods\n"
                              "Captured: 5 packets, 500 B, 62 B/s, 2 pods\n")


PROC_NET_DEV = (  # the real file, its last counters cut
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls\n"
    "    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0\n"
    "  eth0: 9876543    4321    0    0    0     0          0         0   123456     789    0    0    0     0\n"
)


def test_the_pods_interfaces_from_proc_net_dev() -> None:
    assert live.net_devices(PROC_NET_DEV) == ["eth0", "lo"]
    assert live.net_devices("") == []


def test_an_unknown_interface_names_the_pods_interfaces() -> None:
    devices = ["eth0", "lo"]
    assert live.unknown_interface("t", "shop/web", devices) == (
        'interface "t" not found in pod shop/web; its interfaces: any, eth0, lo (-i any: all of them)')
    # the pod's own, any, tcpdump -D's indexes and libpcap's pseudo-devices are tcpdump's to judge
    assert [live.unknown_interface(i, "shop/web", devices) for i in ("eth0", "lo", "any", "2", "nflog",
                                                                      "usbmon1")] == [None] * 6
