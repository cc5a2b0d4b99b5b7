import itertools

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


def test_tethered_command_passes_user_input_as_arguments_and_ends_the_tool_at_stdin_eof():
    argv = ["tcpdump", "-i", "any", "--", "port 80 and $(rm -rf /)"]
    assert specs.tethered_command("r1", "tcpdump", argv, eof_signal="KILL") == [
        "sh", "-c",
        "echo $$ > /tmp/debugx-r1.pid || exit; exec 3<&0; "
        '{ cat <&3 3<&-; [ "$(cat /proc/$$/comm 2>/dev/null)" = tcpdump ] && kill -KILL $$; }'
        ' </dev/null >/dev/null 2>&1 & exec "$@" </dev/null 3<&-',
        "sh", *argv,
    ]


def test_tethered_command_compares_comm_quoted_and_cut_to_15_characters():
    script = specs.tethered_command("r1", "a-tool with spaces", ["x"])[2]
    assert "= 'a-tool with spa' ] && kill -TERM $$;" in script  # TERM unless told


def test_signal_command_checks_the_process_is_still_the_tool():
    assert specs.signal_command("r1", "tcpdump", "KILL", remove=True) == [
        "sh", "-c",
        'p="$(cat /tmp/debugx-r1.pid 2>/dev/null)"; if [ -n "$p" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = "$1" ]; '
        'then kill -KILL "$p"; fi; rm -f /tmp/debugx-r1.pid; true',
        "sh", "tcpdump",
    ]
