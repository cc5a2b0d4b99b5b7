import itertools
import os
import shlex

from kubectl_debugx.remote import specs

POD = {
    "metadata": {"name": "web", "annotations": {}},
    "spec": {
        "initContainers": [{"name": "init"}],
        "containers": [{"name": "app"}, {"name": "sidecar"}],
        "ephemeralContainers": [{"name": "debugx-aaaaa"}],
    },
}


def test_debug_container_name_skips_taken_names():
    suffixes = itertools.chain(["aaaaa"], ["bbbbb"])
    assert specs.debug_container_name(POD, lambda: next(suffixes)) == "debugx-bbbbb"


def test_ephemeral_container_and_patch():
    container = specs.ephemeral_container("debugx-b", "img:1", "app", 600, "IfNotPresent")
    assert container == {
        "name": "debugx-b", "image": "img:1", "command": ["sleep", "600"], "targetContainerName": "app",
        "terminationMessagePolicy": "File", "stdin": False, "tty": False, "imagePullPolicy": "IfNotPresent",
    }
    assert specs.ephemeral_patch(container) == {"spec": {"ephemeralContainers": [container]}}


def test_default_container_follows_the_annotation_like_kubectl_exec():
    assert specs.default_container(POD) == "app"
    annotated = {**POD, "metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "sidecar"}}}
    assert specs.default_container(annotated) == "sidecar"


def _pod_with(container, state, started="2026-11-27T07:00:00Z"):
    return {
        "spec": {"ephemeralContainers": [container]},
        "status": {
            "ephemeralContainerStatuses": [{"name": container["name"], "state": {state: {"startedAt": started}}}]
        },
    }


def test_reuse_only_matching_running_containers_with_time_left():
    now = 1795762800.0  # 2026-11-27T07:00:00Z + 0 s
    wanted = specs.ephemeral_container("debugx-new", "img", "app", 3600)
    running = specs.ephemeral_container("debugx-old", "img", "app", 3600)
    assert specs.reusable_container(_pod_with(running, "running"), wanted, 60, now) == "debugx-old"
    assert specs.reusable_container(_pod_with(running, "running"), wanted, 60, now + 3590) is None
    assert specs.reusable_container(_pod_with(running, "terminated"), wanted, 60, now) is None
    other_image = specs.ephemeral_container("debugx-old", "img2", "app", 3600)
    assert specs.reusable_container(_pod_with(other_image, "running"), wanted, 60, now) is None
    privileged = dict(running, securityContext={"privileged": True})
    assert specs.reusable_container(_pod_with(privileged, "running"), wanted, 60, now) is None
    not_ours = specs.ephemeral_container("debugger-x", "img", "app", 3600)
    assert specs.reusable_container(_pod_with(not_ours, "running"), wanted, 60, now) is None


# `st PID` prints the start time of PID (field 22 of /proc/PID/stat), counted after the last ") " of comm.
START = ('_t() { [ "$1" = Z ] && return; shift 19; echo "$1"; }; '
         'st() { s=; read -r s 2>/dev/null < /proc/$1/stat || return 0; _t ${s##*") "}; }; ')


def test_tethered_command_passes_user_input_as_arguments_and_ends_the_tool_at_stdin_eof():
    argv = ["tcpdump", "-i", "any", "--", "port 80 and $(rm -rf /)"]
    tool = START + 'echo "$$ $(st $$)" tcpdump > /tmp/debugx-r1.pid || exit; exec "$@"'
    assert specs.tethered_command("r1", "tcpdump", argv, eof_signal="KILL") == [
        "sh", "-c",
        START + "exec 3<&0 4>&2 2>/dev/null; "
        "true 2>/dev/null > /tmp/debugx-r1.tether || { echo \"debugx: cannot write /tmp/debugx-r1.tether in the "
        "debug container: its image's /tmp must be writable by this user (as in busybox, alpine, debian: "
        "mode 1777)\" >&4; "
        "exit 125; }; "
        "{ cat <&3 3<&- & echo $! > /tmp/debugx-r1.tether; wait $!; i=0; "
        "while [ ! -s /tmp/debugx-r1.pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
        "p=; s=; read -r p s _ 2>/dev/null < /tmp/debugx-r1.pid; [ -n \"$p\" ] && "
        "[ -n \"$s\" ] && [ \"$(st \"$p\")\" = \"$s\" ] && kill -KILL \"$p\"; } "
        "</dev/null >/dev/null 2>&1 4>&- & t=$!; "
        f"(exec sh -c {shlex.quote(tool)} sh \"$@\" </dev/null 3<&- 2>&4 4>&-); "
        "r=$?; i=0; while [ ! -s /tmp/debugx-r1.tether ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; "
        "c=; read -r c < /tmp/debugx-r1.tether; [ -n \"$c\" ] && kill \"$c\" 2>/dev/null && wait $t; "
        "rm -f /tmp/debugx-r1.tether; exit $r",
        "sh", *argv,
    ]


def test_tethered_command_sends_its_default_signal_to_the_recorded_process():
    script = specs.tethered_command("r1", "a-tool with spaces", ["x"])[2]
    assert 'kill -TERM "$p"; }' in script  # TERM unless told


def test_the_tether_stops_a_tool_whose_client_died_before_it_was_execd(tmp_path):
    """The client gone at once (stdin at EOF from the start): the tether reads the record while the recorded
    process is still the sh about to exec the tool (here `sh -c 'sleep 0.5; exec sleep ...'`, comm `sh` for
    0.5 s). It is stopped all the same: the tool never runs. The comm check it replaced left it running."""
    import subprocess
    import time
    import uuid

    marker = f"{30 + uuid.uuid4().int % 1000 / 1000:.3f}"  # sleep's argument, unique to this test run
    run_id = "t" + uuid.uuid4().hex[:9]
    argv = specs.tethered_command(run_id, "sleep", ["sh", "-c", f"sleep 0.5; exec sleep {marker}"],
                                  eof_signal="KILL")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert proc.wait(15) != 0

        def left() -> str:  # the recorded sh (its command line names the marker), or the tool it became
            return subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True).stdout

        deadline = time.monotonic() + 5
        while left() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left() == ""
    finally:
        subprocess.run(["pkill", "-f", f"sleep {marker}"], capture_output=True)
        subprocess.run(["rm", "-f", f"/tmp/debugx-{run_id}.pid", f"/tmp/debugx-{run_id}.tether"])


def test_a_tethered_command_that_cannot_write_its_records_says_so_at_once(tmp_path):
    """/tmp not writable for the debug container's user (here: the tether's record name taken by a folder): exit
    125 and one line on stderr at once, the tool never started; it waited for the client for good before (lab,
    a busybox image with /tmp 0755, cp as uid 65532), its tether's `cat` holding the exec's stdin."""
    import subprocess
    import uuid

    run_id = "t" + uuid.uuid4().hex[:9]
    os.mkdir(f"/tmp/debugx-{run_id}.tether")
    try:
        # stdin a pipe nobody closes, as the client's: the old script waited on it for good
        read_fd, write_fd = os.pipe()
        proc = subprocess.run(specs.tethered_command(run_id, "touch", ["touch", str(tmp_path / "ran")]),
                              stdin=read_fd, capture_output=True, text=True, timeout=10)
        os.close(read_fd)
        os.close(write_fd)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            specs.NO_TMP, "", f"debugx: cannot write /tmp/debugx-{run_id}.tether in the debug container: its "
            "image's /tmp must be writable by this user (as in busybox, alpine, debian: mode 1777)\n")
        assert not (tmp_path / "ran").exists() and not os.path.exists(f"/tmp/debugx-{run_id}.pid")
    finally:
        os.rmdir(f"/tmp/debugx-{run_id}.tether")


def test_the_shells_record_that_cannot_be_written_is_said_in_the_same_line():
    """The shell's (and the upload's tar's) recorded command, its stdin the user's: the same one line and exit
    125 when /tmp cannot be written, the command never started (it said only sh's own words before)."""
    import subprocess
    import uuid

    from kubectl_debugx.remote import tether

    run_id = "t" + uuid.uuid4().hex[:9]
    os.mkdir(f"/tmp/debugx-{run_id}.pid")
    try:
        proc = subprocess.run(tether.recorded_command(run_id, "sh", ["echo", "ran"]), capture_output=True, text=True,
                              timeout=10)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            specs.NO_TMP, "", f"debugx: cannot write /tmp/debugx-{run_id}.pid in the debug container: its "
            "image's /tmp must be writable by this user (as in busybox, alpine, debian: mode 1777)\n")
    finally:
        os.rmdir(f"/tmp/debugx-{run_id}.pid")


def test_signal_command_checks_the_process_is_still_the_tool():
    assert specs.signal_command("r1", "tcpdump", "KILL", remove=True) == [
        "sh", "-c",
        START + 'p=; s=; read -r p s _ 2>/dev/null < /tmp/debugx-r1.pid; '
        'if [ -n "$p" ] && [ -n "$s" ] && [ "$(st "$p")" = "$s" ]; '
        'then kill -KILL "$p"; fi; rm -f /tmp/debugx-r1.pid; true',
        "sh", "tcpdump",
    ]


def test_list_tools_command_prints_only_recorded_tools_still_running():
    assert specs.list_tools_command() == [
        "sh", "-c",
        START + 'for f in /tmp/debugx-*.pid; do [ -f "$f" ] || continue; p=; s=; t=; '
        'read -r p s t 2>/dev/null < "$f"; r=${f#/tmp/debugx-}; r=${r%.pid}; '
        '[ -n "$p" ] && [ -n "$s" ] && [ "$(st "$p")" = "$s" ] && echo "$r $p $t"; done; true',
    ]


def test_stop_tools_command_checks_pid_and_start_time_and_takes_only_run_ids():
    assert specs.stop_tools_command(["r1", "../../etc/x", "R2", "abc9"]) == [
        "sh", "-c",
        START + 'for r; do f=/tmp/debugx-$r.pid; p=; s=; read -r p s _ 2>/dev/null < "$f"; '
        'if [ -n "$p" ] && [ -n "$s" ] && [ "$(st "$p")" = "$s" ]; then kill -TERM "$p"; i=0; '
        'while [ $i -lt 20 ] && [ "$(st "$p")" = "$s" ]; do sleep 0.1; i=$((i+1)); done; '
        '[ "$(st "$p")" = "$s" ] && kill -KILL "$p"; echo "$r stopped"; else echo "$r gone"; fi; '
        'rm -f "$f"; done; true',
        "sh", "r1", "abc9",
    ]


def test_node_pod_lease_ends_the_main_process_by_its_recorded_pid_not_pid_1():
    assert specs.node_pod_lease() == [
        "sh", "-c",
        ': > /tmp/debugx-node.lease || exit; echo leased; cat >/dev/null; p=; read -r p < /tmp/debugx-node.pid; '
        '[ -n "$p" ] && kill -TERM "$p"',
    ]


def test_is_debug_container_needs_our_prefix_and_our_bounded_sleep():
    assert specs.is_debug_container(specs.ephemeral_container("debugx-abcde", "img", "app", 600))
    assert not specs.is_debug_container(specs.ephemeral_container("debugger-x", "img", "app", 600))
    assert not specs.is_debug_container({"name": "debugx-abcde", "command": ["sh", "-c", "sleep 600"]})
    assert not specs.is_debug_container({"name": "debugx-abcde", "command": ["sleep", "infinity"]})
