import copy

import pytest

from kubectl_debugx.commands import trace as trace_mod
from kubectl_debugx.commands import trace_pods
from kubectl_debugx.commands.trace import StraceTalk, TraceOptions, explain_eperm, scope_error, strace_argv, validate
from kubectl_debugx.errors import Forbidden, NotFound, RemoteFailed, UsageError
from kubectl_debugx.formats.traceprocs import (
    PROBE_COMMAND,
    Probe,
    Proc,
    Selection,
    container_ids,
    container_processes,
    parse_probe,
    process_table,
    select_processes,
)
from kubectl_debugx.kube.apierrors import ApiError
from kubectl_debugx.kube.workloads import TargetRef
from kubectl_debugx.remote import ephemeral, specs
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.talk import Talk
from tests.unit.fakekube import UnusedKube

MASTER_ID = "a" * 64
SIDECAR_ID = "b" * 64
OLD_DEBUG_ID = "c" * 64


def pod(security_context=None, share=False):
    spec = {
        "containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox"}],
        "ephemeralContainers": [{"name": "debugx-old12", "image": "busybox", "command": ["sleep", "60"],
                                 "targetContainerName": "nginx"}],
        "nodeName": "node-1",
    }
    if security_context is not None:
        spec["securityContext"] = security_context
    if share:
        spec["shareProcessNamespace"] = True
    return {
        "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7"},
        "spec": spec,
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "nginx", "containerID": f"containerd://{MASTER_ID}"},
                {"name": "sidecar", "containerID": f"containerd://{SIDECAR_ID}"},
            ],
            "ephemeralContainerStatuses": [
                {"name": "debugx-old12", "containerID": f"containerd://{OLD_DEBUG_ID}",
                 "state": {"terminated": {"exitCode": 0}}},
            ],
        },
    }


def target(pod_obj=None):
    return Target("shop", pod_obj or pod(), "nginx")


# --- the ephemeral container ------------------------------------------------------------------------------

BASE = {
    "name": "debugx-abcde",
    "image": "nicolaka/netshoot:v0.13",
    "command": ["sleep", "3600"],
    "targetContainerName": "nginx",
    "terminationMessagePolicy": "File",
    "stdin": False,
    "tty": False,
}
ROOT_NOTE = ("the pod runs as non-root, so the debug container runs as root (runAsUser: 0) for its capabilities "
             "to be effective")


def build(profile, pod_obj=None, custom=None):
    return ephemeral.build_container(target(pod_obj), "debugx-abcde", "nicolaka/netshoot:v0.13", profile, custom,
                                     3600)


@pytest.mark.parametrize(
    ("profile", "security_context"),
    [
        ("general", {"capabilities": {"add": ["SYS_PTRACE"]}}),
        ("sysadmin", {"privileged": True}),
        ("netadmin", {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}),
        ("baseline", None),
        ("legacy", None),
        ("restricted", {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False,
                        "seccompProfile": {"type": "RuntimeDefault"}}),
    ],
)
def test_container_for_each_profile_on_a_root_pod(profile, security_context):
    expected = dict(BASE)
    if security_context is not None:
        expected["securityContext"] = security_context
    assert build(profile) == (expected, [])


@pytest.mark.parametrize("pod_sc", [{"runAsUser": 101}, {"runAsNonRoot": True}, {"runAsUser": 101, "runAsGroup": 101}])
def test_non_root_pod_gets_a_root_debug_container_with_sys_ptrace(pod_sc):
    expected = dict(BASE, securityContext={"capabilities": {"add": ["SYS_PTRACE"]}, "runAsUser": 0,
                                           "runAsNonRoot": False})
    assert build("general", pod(pod_sc)) == (expected, [ROOT_NOTE])


def test_non_root_pod_sysadmin_and_restricted():
    assert build("sysadmin", pod({"runAsUser": 1000})) == (
        dict(BASE, securityContext={"privileged": True, "runAsUser": 0, "runAsNonRoot": False}), [ROOT_NOTE])
    restricted = build("restricted", pod({"runAsUser": 1000}))
    assert restricted == (dict(BASE, securityContext={
        "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "RuntimeDefault"}}), [])


def test_custom_user_is_kept_on_a_non_root_pod():
    custom = {"securityContext": {"runAsUser": 101}}
    assert build("general", pod({"runAsUser": 101}), custom) == (
        dict(BASE, securityContext={"capabilities": {"add": ["SYS_PTRACE"]}, "runAsUser": 101}), [])


def test_root_user_pod_is_not_changed():
    assert build("general", pod({"runAsUser": 0})) == (
        dict(BASE, securityContext={"capabilities": {"add": ["SYS_PTRACE"]}}), [])


# --- options and strace's argv ---------------------------------------------------------------------------


def test_strace_argv_defaults():
    assert strace_argv(TraceOptions(pod="web"), [1]) == [
        "strace", "-o", "|cat", "-f", "-tt", "-T", "-yy", "-p", "1",
    ]


def test_strace_argv_everything_expression_as_one_argument():
    opts = TraceOptions(pod="web", follow_forks=False, expr="trace=%network;rm -rf / $(id)", string_size=256)
    assert strace_argv(opts, [7, 8]) == [
        "strace", "-o", "|cat", "-tt", "-T", "-yy", "-s", "256", "-e", "trace=%network;rm -rf / $(id)",
        "-p", "7", "-p", "8",
    ]


def test_strace_argv_summary():
    assert strace_argv(TraceOptions(pod="web", summary=True, string_size=0), [3]) == [
        "strace", "-o", "|cat", "-f", "-c", "-s", "0", "-p", "3",
    ]


def test_remote_command_never_lets_a_shell_read_user_input():
    opts = TraceOptions(pod="web", expr="trace='open' `reboot`")
    command = specs.tethered_command("r1", "strace", strace_argv(opts, [5]))
    assert command[:2] == ["sh", "-c"] and "reboot" not in command[2]
    assert command[3:] == [
        "sh", "strace", "-o", "|cat", "-f", "-tt", "-T", "-yy", "-e", "trace='open' `reboot`", "-p", "5",
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"profile": "root"}, "--profile: unknown profile 'root'"),
        ({"pid": 3, "process": "nginx"}, "--pid and --process cannot be used together"),
        ({"pid": 0}, "--pid: must be a positive"),
        ({"process": " "}, "--process: invalid process name"),
        ({"string_size": -1}, "-s/--string-size: must be 0 or more"),
        ({"expr": "a\0b"}, "-e/--expr: the expression cannot hold a NUL"),
        ({"ttl": 5}, "--ttl: the debug container"),
        ({"duration": 4000.0, "ttl": 3600}, "--duration .* must be shorter than --ttl"),
    ],
)
def test_validation_names_the_flag(changes, message):
    with pytest.raises(UsageError, match=message):
        validate(TraceOptions(pod="web", **changes))


def test_validation_accepts_auto_and_defaults():
    validate(TraceOptions(pod="web", profile="auto"))
    validate(TraceOptions(pod="web"))
    assert trace_mod.profile_of(TraceOptions(pod="web", profile="auto")) == "general"


# --- the probe and process selection -------------------------------------------------------------------

CG_NGINX = f"0::/../cri-containerd-{MASTER_ID}.scope"
# As seen from the debug container, on a real node (cgroup v2, private cgroup namespace).
PROBE_OUTPUT = f"""Y 1
T /usr/bin/strace
I 220
M mnt:[4026532900]
P 1
S 1 (nginx) S 0 1 1 0 -1 4194560 1000
N mnt:[4026532700]
G {CG_NGINX}
A nginx: master process nginx -g daemon off;
P 29
S 29 (nginx) S 1 1 1 0 -1
N
G {CG_NGINX}
A nginx: worker process
P 30
S 30 (nginx) S 1 1 1 0 -1
N
G {CG_NGINX}
A nginx: worker process
P 120
S 120 (sleep) S 0 120 120 0 -1
N mnt:[4026532800]
G 0::/../cri-containerd-{OLD_DEBUG_ID}.scope
A sleep 60
P 200
S 200 (sleep) S 0 200 200 0 -1
N mnt:[4026532900]
G 0::/
A sleep 3600
P 220
S 220 (sh) S 0 220 220 0 -1
N mnt:[4026532900]
G 0::/
A sh -c  echo "Y ...
P 221
S 221 (sh) S 220 220 220 0 -1
N mnt:[4026532900]
G 0::/
A sh -c  echo "Y ...
P 222
S 222 (tr) R 221 220 220 0 -1
N mnt:[4026532900]
G 0::/
A tr \\n
"""

MASTER = Proc(1, 0, "nginx", "nginx: master process nginx -g daemon off;", "mnt:[4026532700]", CG_NGINX)
WORKER1 = Proc(29, 1, "nginx", "nginx: worker process", "", CG_NGINX)
WORKER2 = Proc(30, 1, "nginx", "nginx: worker process", "", CG_NGINX)


def test_parse_probe():
    probe = parse_probe(PROBE_OUTPUT)
    assert probe == Probe(
        self_pid=220, self_mntns="mnt:[4026532900]", ptrace_scope=1, strace="/usr/bin/strace",
        procs=(
            MASTER, WORKER1, WORKER2,
            Proc(120, 0, "sleep", "sleep 60", "mnt:[4026532800]", f"0::/../cri-containerd-{OLD_DEBUG_ID}.scope"),
            Proc(200, 0, "sleep", "sleep 3600", "mnt:[4026532900]", "0::/"),
            Proc(220, 0, "sh", 'sh -c  echo "Y ...', "mnt:[4026532900]", "0::/"),
            Proc(221, 220, "sh", 'sh -c  echo "Y ...', "mnt:[4026532900]", "0::/"),
            Proc(222, 221, "tr", "tr \\n", "mnt:[4026532900]", "0::/"),
        ),
    )


def test_parse_probe_odd_comm_vanished_process_and_missing_facts():
    text = "Y \nT \nI 9\nM \nP 5\nS 5 (my (odd) name) S 1 5 5\nN \nG \nA \nP 6\nS \nP 7\nS 7 (x) S 5 7\n"
    assert parse_probe(text) == Probe(
        self_pid=9, procs=(Proc(5, 1, "my (odd) name", ""), Proc(7, 5, "x", "")),
    )


def test_container_processes_by_cgroup_from_the_debug_container():
    probe = parse_probe(PROBE_OUTPUT)
    assert container_processes(probe, False, MASTER_ID, [SIDECAR_ID, OLD_DEBUG_ID]) == [MASTER, WORKER1, WORKER2]


def test_container_processes_without_cgroup_names_by_mount_namespace():
    # No container IDs in cgroup paths: the old debug container's sleep is told apart by its mount namespace,
    # the workers (unreadable namespace) belong to the master's container because they are its children.
    probe = parse_probe(PROBE_OUTPUT.replace(CG_NGINX, "0::/").replace(OLD_DEBUG_ID, "x"))
    plain = [Proc(p.pid, p.ppid, p.comm, p.args, p.mntns, "0::/") for p in (MASTER, WORKER1, WORKER2)]
    assert container_processes(probe, False) == plain


def test_container_processes_seen_from_the_target_itself():
    probe = Probe(
        self_pid=50, self_mntns="mnt:[7]",
        procs=(
            Proc(1, 0, "java", "java -jar app.jar", "mnt:[7]"),
            Proc(12, 1, "java", "java -jar app.jar", "mnt:[7]"),
            Proc(13, 1, "helper", "helper --as-other-user", ""),
            Proc(14, 13, "child", "child", ""),
            Proc(40, 0, "sleep", "sleep 3600", ""),  # another debug container: unreadable, no parent here
            Proc(41, 0, "bash", "bash", "mnt:[8]"),  # a shell of kubectl debug: another mount namespace
            Proc(50, 0, "sh", "sh -c ...", "mnt:[7]"),
            Proc(51, 50, "readlink", "readlink /proc/51/ns/mnt", "mnt:[7]"),
        ),
    )
    assert [p.pid for p in container_processes(probe, True)] == [1, 12, 13, 14]


def test_container_processes_shared_pid_namespace_skips_pause_and_other_containers():
    probe = Probe(
        self_pid=90, self_mntns="mnt:[9]",
        procs=(
            Proc(1, 0, "pause", "/pause", "mnt:[1]", "0::/../cri-containerd-pause.scope"),
            Proc(7, 0, "sidecar", "sidecar run", "mnt:[2]", f"0::/../cri-containerd-{SIDECAR_ID}.scope"),
            Proc(8, 0, "nginx", "nginx: master process", "mnt:[3]", f"0::/../cri-containerd-{MASTER_ID}.scope"),
            Proc(9, 8, "nginx", "nginx: worker process", "", f"0::/../cri-containerd-{MASTER_ID}.scope"),
            Proc(80, 0, "sleep", "sleep 3600", "mnt:[9]", "0::/"),
            Proc(90, 0, "sh", "sh -c ...", "mnt:[9]", "0::/"),
        ),
    )
    assert [p.pid for p in container_processes(probe, False, MASTER_ID, [SIDECAR_ID])] == [8, 9]
    # Without cgroup names, other containers are still excluded when their IDs show, and pause always is.
    assert [p.pid for p in container_processes(probe, False, "", [SIDECAR_ID])] == [8, 9]


def test_select_main_process_pid_and_name():
    procs = [MASTER, WORKER1, WORKER2]
    assert select_processes(procs, None, None, "nginx") == Selection(
        (MASTER,), "the main process of container nginx (choose another with --pid or --process)")
    assert select_processes(procs, 30, None, "nginx") == Selection((WORKER2,), "PID 30")
    assert select_processes(procs, None, "nginx: worker", "nginx") == Selection(
        (WORKER1, WORKER2), "--process 'nginx: worker' matches 2 processes; tracing all of them")
    assert select_processes(procs, None, "nginx", "nginx").pids == [1, 29, 30]
    assert select_processes([MASTER], None, None, "nginx") == Selection(
        (MASTER,), "the main process of container nginx")


def test_select_by_program_path_and_command_name():
    app = Proc(1, 0, "python3", "/usr/local/bin/python3 -m app.server")
    gunicorn = Proc(8, 1, "gunicorn", "gunicorn: worker [app]")
    assert select_processes([app, gunicorn], None, "python3", "main").pids == [1]
    assert select_processes([app, gunicorn], None, "gunicorn", "main").pids == [8]
    assert select_processes([app, gunicorn], None, "app.server", "main").pids == [1]


def test_select_not_found_lists_the_processes():
    with pytest.raises(NotFound) as err:
        select_processes([MASTER, WORKER1], None, "redis", "nginx")
    assert str(err.value) == ("no process of container nginx matches --process 'redis'; its processes "
                              "(PID COMMAND): 1 nginx, 29 nginx")
    with pytest.raises(NotFound, match="matches PID 4; its processes"):
        select_processes([MASTER], 4, None, "nginx")
    with pytest.raises(NotFound, match="no process of container nginx is visible"):
        select_processes([], None, None, "nginx")


def test_process_table():
    assert process_table([MASTER, Proc(5, 1, "kworker", "")]) == [
        "    PID    PPID COMMAND",
        "      1       0 nginx: master process nginx -g daemon off;",
        "      5       1 [kworker]",
    ]


def test_container_ids():
    assert container_ids(pod()) == {"nginx": MASTER_ID, "sidecar": SIDECAR_ID, "debugx-old12": OLD_DEBUG_ID}


def test_probe_command_is_fixed_text():
    assert PROBE_COMMAND[:2] == ["sh", "-c"] and len(PROBE_COMMAND) == 3


# --- strace's messages and errors ----------------------------------------------------------------------


def test_strace_talk_holds_errors_until_attached():
    shown: list[str] = []
    talk = StraceTalk(shown.append)
    talk.feed(b"strace: attach: ptrace(PTRACE_SEIZE, 30): Operation not permitted\nstrace: Process 29 att")
    talk.feed(b"ached\nstrace: Process 29 detached\n")
    talk.finish()
    assert (shown, talk.attached, talk.refused, talk.vanished) == (
        ["strace: Process 29 attached", "strace: Process 29 detached"], [29], [30], [])


def test_strace_talk_error_line():
    talk = StraceTalk(lambda _: None)
    talk.feed(b"strace: invalid system call 'nosuch'\nTry 'strace -h' for more information.\n")
    talk.feed(b"strace: attach: ptrace(PTRACE_SEIZE, 999): No such process")
    talk.finish()
    assert (talk.error_line(), talk.vanished, talk.attached) == ("strace: invalid system call 'nosuch'", [999], [])


def test_eperm_without_sys_ptrace():
    container, _ = build("baseline")
    assert explain_eperm(container, pod(), "baseline", 1, [29, 30]) == (
        "strace cannot attach to PID 29, 30: Operation not permitted: the debug container has no CAP_SYS_PTRACE "
        "(profile baseline), which tracing another user's process needs: use --profile general (the default) or "
        "sysadmin; kernel.yama.ptrace_scope is 1 on the node, which also requires CAP_SYS_PTRACE")


def test_eperm_non_root_debug_container():
    container, _ = build("general", pod({"runAsUser": 101}), {"securityContext": {"runAsUser": 101}})
    assert explain_eperm(container, pod({"runAsUser": 101}), "general", None, [1]) == (
        "strace cannot attach to PID 1: Operation not permitted: the debug container runs as a non-root user "
        "(runAsUser 101), so its capabilities are not effective: let it run as root (runAsUser: 0, "
        "runAsNonRoot: false) in --custom")


def test_eperm_with_everything_right():
    container, _ = build("general")
    assert explain_eperm(container, pod(), "general", 2, [1]) == (
        "strace cannot attach to PID 1: Operation not permitted: kernel.yama.ptrace_scope is 2 on the node: only "
        "CAP_SYS_PTRACE may attach, and it is not effective here")
    assert explain_eperm(container, pod(), "general", 1, [1]).endswith(
        "the debug container has CAP_SYS_PTRACE and runs as root, so the node's seccomp, AppArmor or SELinux "
        "policy (or a user namespace of the pod) forbids ptrace: try --profile sysadmin")


def test_ptrace_scope_3():
    assert scope_error(1, target()) is None and scope_error(None, target()) is None
    error = scope_error(3, target())
    assert isinstance(error, RemoteFailed)
    assert str(error) == ("kernel.yama.ptrace_scope is 3 on node-1: the kernel refuses every ptrace attach there "
                          "until the node reboots, so no process can be traced; nothing was traced")


# --- the workflow before anything is created -------------------------------------------------------------


class FakeKube(UnusedKube):
    namespace = "shop"

    def __init__(self, pod_obj, refuse=None):
        self.pod = pod_obj
        self.refuse = refuse
        self.patches: list[tuple[dict, bool]] = []

    def get_pod(self, namespace, name):
        assert (namespace, name) == ("shop", "web")
        return copy.deepcopy(self.pod)

    def add_ephemeral_container(self, namespace, pod_name, patch, dry_run=False):
        self.patches.append((patch, dry_run))
        if self.refuse is not None:
            raise self.refuse
        return copy.deepcopy(self.pod)


PSA_MESSAGE = ('pods "web" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
               '(container "debugx-abcde" must not include "SYS_PTRACE" in securityContext.capabilities.add)')


def run_one(kube, opts: TraceOptions, talk: Talk) -> int:
    """trace of one bare POD, as the command line runs it."""
    return trace_pods.run(kube, opts, TargetRef("pod", opts.pod), 1, talk, check_output=False)


def test_preflight_refusal_explains_and_creates_nothing():
    kube = FakeKube(pod(), ApiError(PSA_MESSAGE, 403, {"reason": "Forbidden"}))
    with pytest.raises(Forbidden) as err:
        run_one(kube, TraceOptions(pod="web"), Talk(quiet=True))
    assert str(err.value) == (
        'Pod Security refuses the debug container with profile general: violates PodSecurity "baseline:latest": '
        'non-default capabilities (container "debugx-abcde" must not include "SYS_PTRACE" in '
        "securityContext.capabilities.add); tracing needs CAP_SYS_PTRACE, which Pod Security admits only at level "
        "privileged: trace in a namespace labelled pod-security.kubernetes.io/enforce=privileged (or without "
        "enforce label); nothing was created")
    assert [dry for _, dry in kube.patches] == [True]


def test_process_not_found_before_anything_is_created(monkeypatch):
    kube = FakeKube(pod())
    seen = []

    def probe(kube_, target_, container):
        seen.append(container)
        return Probe(self_pid=50, self_mntns="mnt:[7]", ptrace_scope=1, procs=(
            Proc(1, 0, "nginx", "nginx: master process", "mnt:[7]"),
            Proc(50, 0, "sh", "sh -c ...", "mnt:[7]"),
        ))

    monkeypatch.setattr(trace_mod, "_probe", probe)
    with pytest.raises(NotFound, match=r"matches --process 'redis'; its processes \(PID COMMAND\): 1 nginx$"):
        run_one(kube, TraceOptions(pod="web", process="redis"), Talk(quiet=True))
    assert seen == ["nginx"]
    assert [dry for _, dry in kube.patches] == [True]


def test_ptrace_scope_3_stops_before_anything_is_created(monkeypatch):
    kube = FakeKube(pod())
    monkeypatch.setattr(trace_mod, "_probe", lambda *a: Probe(self_pid=5, ptrace_scope=3))
    with pytest.raises(RemoteFailed, match="ptrace_scope is 3"):
        run_one(kube, TraceOptions(pod="web"), Talk(quiet=True))
    assert [dry for _, dry in kube.patches] == [True]


def test_summary_text():
    workers = Selection((WORKER1, WORKER2), "")
    assert trace_mod.summary_text(workers, [29, 30], 20, 3058, "stdout", 12.04, "Ctrl-C (SIGINT)", "general",
                                  "debugx-abcde") == (
        "2 processes traced (PID 29, 30); 20 lines (3058 bytes) written to stdout; 12.0s; stopped by Ctrl-C "
        "(SIGINT); profile general, container debugx-abcde")
    assert trace_mod.summary_text(Selection((MASTER,), ""), [1, 31, 32], 5, 400, "t.txt", 3.0, "", "sysadmin",
                                  "debugx-abcde") == (
        "1 process traced (PID 1) and 2 of its threads or children followed; 5 lines (400 bytes) written to "
        "t.txt; 3.0s; profile sysadmin, container debugx-abcde")
    assert trace_mod.summary_text(workers, [], 0, 0, "stdout", 0.2, "", "baseline", "debugx-abcde") == (
        "0 processes traced; 0 lines (0 bytes) written to stdout; 0.2s; profile baseline, container debugx-abcde")


class StartingKube(FakeKube):
    """Adds the ephemeral container and reports it running at once."""

    def add_ephemeral_container(self, namespace, pod_name, patch, dry_run=False):
        self.patches.append((patch, dry_run))
        pod_obj = copy.deepcopy(self.pod)
        [container] = patch["spec"]["ephemeralContainers"]
        pod_obj["spec"]["ephemeralContainers"].append(container)
        pod_obj["status"]["ephemeralContainerStatuses"].append(
            {"name": container["name"], "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
        return pod_obj


def test_strace_missing_in_the_image(monkeypatch):
    kube = StartingKube(pod())
    probes = {"nginx": None, "debug": Probe(self_pid=9, ptrace_scope=0, strace="", procs=(MASTER,))}
    monkeypatch.setattr(trace_mod, "_probe", lambda k, t, c, ours=False: probes["nginx" if c == "nginx" else "debug"])
    with pytest.raises(RemoteFailed) as err:
        run_one(kube, TraceOptions(pod="web", image="busybox:1.36"), Talk(quiet=True))
    assert str(err.value) == "strace is not in image busybox:1.36: choose an image that has it with --image"
    assert [dry for _, dry in kube.patches] == [True, False]


class EndedDebugContainerKube(StartingKube):
    """The target has no shell; the debug container runs, then its exec is refused: it ended meanwhile."""

    def exec_connection(self, namespace, pod, container, command, stdin=False):
        if container == "nginx":
            raise RemoteFailed('exec: "sh": executable file not found in $PATH')
        raise RemoteFailed(
            f'Internal error occurred: unable to upgrade connection: container not found ("{container}")')


def test_a_failed_exec_into_the_debug_container_is_said_as_it_is_not_blamed_on_the_image():
    """CI, stop 27: the debug container had ended, and the error said the image lacked sh, cat, tr and
    readlink."""
    kube = EndedDebugContainerKube(pod())
    with pytest.raises(RemoteFailed) as err:
        run_one(kube, TraceOptions(pod="web", image="busybox:1.36"), Talk(quiet=True))
    [name] = [c["name"] for c in kube.patches[-1][0]["spec"]["ephemeralContainers"]]
    assert str(err.value) == (
        f'Internal error occurred: unable to upgrade connection: container not found ("{name}")')
    assert [dry for _, dry in kube.patches] == [True, False]


def test_tool_failures():
    from kubectl_debugx.remote.ephemeral import tool_failure

    def fail(code, message, said, image):
        return tool_failure("strace", code, message, said, image)

    assert fail(127, "command terminated with non-zero exit code", "", "busybox") == (
        "strace is not in image busybox: choose an image that has it with --image")
    assert fail(None, 'exec: "sh": executable file not found in $PATH', "", "distroless") == (
        "image distroless has no sh: choose an image with sh and strace with --image")
    assert fail(1, "", "strace: invalid system call 'nosuch'", "x") == "strace: invalid system call 'nosuch'"
    assert fail(1, "", "", "x") == "strace failed (exit code 1)"
    assert fail(125, "", "debugx: cannot write /tmp/debugx-r1.tether in the debug container: ...", "x") == (
        "cannot write /tmp/debugx-r1.tether in the debug container: ...")  # our wrapper's words, not strace's
