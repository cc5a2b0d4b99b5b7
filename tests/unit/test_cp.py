"""cp's pure builders, compared as whole objects."""

from __future__ import annotations

import pytest

from kubectl_debugx.commands.cp import procroot as cp
from kubectl_debugx.errors import Forbidden, RemoteFailed, UsageError
from kubectl_debugx.formats.tarcopy import parse_sha256sum


def test_debug_container_for_a_non_root_uid():
    assert cp.debug_container_for_user("debugx-abcde", "img:1", "app", 3600, 65532, None) == {
        "name": "debugx-abcde", "image": "img:1", "command": ["sleep", "3600"], "targetContainerName": "app",
        "terminationMessagePolicy": "File", "stdin": False, "tty": False,
        "securityContext": {"runAsUser": 65532, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                            "allowPrivilegeEscalation": False, "seccompProfile": {"type": "RuntimeDefault"}},
    }


def test_security_context_for_root_keeps_default_capabilities():
    assert cp.security_context_for(0, 0) == {"runAsUser": 0, "runAsGroup": 0, "allowPrivilegeEscalation": False,
                                             "seccompProfile": {"type": "RuntimeDefault"}}


def test_target_user_container_over_pod():
    pod = {"spec": {"securityContext": {"runAsUser": 1, "runAsGroup": 2},
                    "containers": [{"name": "app", "securityContext": {"runAsUser": 65532}}]}}
    assert cp.target_user(pod, "app") == (65532, 2)
    assert cp.target_user({"spec": {"containers": [{"name": "app"}]}}, "app") == (None, None)


def test_target_user_takes_a_gid_the_spec_leaves_out_from_the_status():
    status = {"containerStatuses": [{"name": "app", "user": {"linux": {"uid": 65532, "gid": 65532}}},
                                    {"name": "other", "user": {"linux": {"uid": 7, "gid": 7}}}]}
    spec = {"containers": [{"name": "app", "securityContext": {"runAsUser": 65532}}]}
    assert cp.target_user({"spec": spec, "status": status}, "app") == (65532, 65532)
    assert cp.target_user({"spec": {"containers": [{"name": "app"}]}, "status": status}, "app") == (65532, 65532)
    assert cp.target_user({"spec": spec}, "app") == (65532, None)  # no user in the status: learned later


def test_remote_commands():
    assert cp.tar_argv(1, ["tmp", "tree"]) == ["tar", "-C", "/proc/1/root/tmp", "-cf", "-", "./tree"]
    assert cp.tar_argv(1, []) == ["tar", "-C", "/proc/1/root/", "-cf", "-", "."]
    assert cp.sha256_argv(1, ["tmp", "tree"], ["a", ""]) == ["sha256sum", "--", "/proc/1/root/tmp/tree/a",
                                                              "/proc/1/root/tmp/tree"]
    assert cp.stat_command(7, ["a", "b"]) == ["sh", "-c", cp.STAT_SCRIPT, "sh", "/proc/7/root/",
                                              "/proc/7/root/a", "/proc/7/root/a/b"]


def test_resolve_step_follows_symlinks_inside_the_target_root():
    step = cp.resolve_step(["var", "run", "x"], ["D", "D", "L/run", "F"], "/var/run/x", 1)
    assert step == cp.Resolved(None, again=["run", "x"])
    step = cp.resolve_step(["a", "b"], ["D", "L../../../etc", "D"], "/a/b", 1)
    assert step == cp.Resolved(None, again=["etc", "b"])
    assert cp.resolve_step(["a", "l"], ["D", "D", "L/etc"], "/a/l", 1) == cp.Resolved(["a", "l"], "L")
    assert cp.resolve_step(["a", "f"], ["D", "D", "F20971520"], "/a/f", 1) == cp.Resolved(["a", "f"], "F",
                                                                                             size=20971520)
    assert cp.resolve_step(["f"], ["D", "F"], "/f", 1) == cp.Resolved(["f"], "F")  # no stat in the image
    with pytest.raises(Forbidden, match="--profile sysadmin"):
        cp.resolve_step(["a"], ["N", "N"], "/a", 65532)


def test_parse_source():
    assert cp.parse_source("web:/etc/hosts") == cp.Source("web", "/etc/hosts")
    assert cp.parse_source("deploy/web:/etc/hosts") == cp.Source("deploy/web", "/etc/hosts")
    assert cp.parse_source("shop/web:/etc/hosts") == cp.Source("web", "/etc/hosts", "shop")  # kubectl cp's form
    assert cp.parse_source("deployment.apps/web:/etc/hosts") == cp.Source("deployment.apps/web", "/etc/hosts")
    with pytest.raises(UsageError, match=r"^the path in 'web:etc' must be absolute"):
        cp.parse_source("web:etc")
    assert cp.is_upload("./conf", "web:/etc/conf") and cp.is_upload("-", "shop/web:/etc/conf")
    assert not cp.is_upload("web:/etc/conf", "./conf") and not cp.is_upload("web:/etc/conf", "x:y")


def test_parse_sha256sum_gnu_escapes():
    digest = "a" * 64
    text = f"{digest}  /proc/1/root/t/x\n\\{digest}  /proc/1/root/t/new\\nline\n"
    assert parse_sha256sum(text, "/proc/1/root/t") == {"x": digest, "new\nline": digest}


def test_must_run_as_non_root_container_over_pod():
    def pod(psc: dict, sc: dict) -> dict:
        return {"spec": {"securityContext": psc, "containers": [{"name": "app", "securityContext": sc}]}}

    assert [cp.must_run_as_non_root(pod(p, c), "app") for p, c in (
        ({}, {}), ({"runAsNonRoot": True}, {}), ({"runAsNonRoot": True}, {"runAsNonRoot": False}),
        ({}, {"runAsNonRoot": True}))] == [False, True, False, True]


def test_find_listing_relative_names_keep_newlines():
    from kubectl_debugx.commands.cp import verify

    base = "/proc/1/root/tmp/tree"
    assert verify.find_argv(base) == ["find", base, "-type", "f", "-print0"]
    out = f"{base}/a\0{base}/sub/new\nline\0".encode()
    assert verify.listed(out, base) == ["a", "sub/new\nline"]


class FakeSums:
    """RemoteSums as verify() sees it: what the concurrent pass got, and digests computed afterwards."""

    def __init__(self, background: dict[str, str], later: dict[str, str]) -> None:
        self.background, self.later, self.asked = background, later, []

    def wait(self) -> dict[str, str]:
        return self.background

    def digests(self, names: list[str]) -> dict[str, str]:
        self.asked.append(names)
        return {n: self.later[n] for n in names if n in self.later}


def test_verify_sums_afterwards_only_what_the_concurrent_pass_lacks():
    from kubectl_debugx.commands.cp import verify
    from kubectl_debugx.formats.tarcopy import CopyReport

    report = CopyReport(files={"a": "1" * 64, "b": "2" * 64})
    sums = FakeSums({"a": "1" * 64}, {"b": "2" * 64})
    assert verify.verify(None, None, "ec", 1, ["tmp"], report, sums) == 2  # type: ignore[arg-type]
    assert sums.asked == [["b"]]
    with pytest.raises(RemoteFailed, match=r"sha256 mismatch for /tmp/b: 2{64} written here, none computed"):
        verify.verify(None, None, "ec", 1, ["tmp"], report, FakeSums({"a": "1" * 64}, {}))  # type: ignore[arg-type]


def test_ids_command_reads_the_gid_lines_with_sh_builtins_only():
    assert cp.ids_command(1) == [
        "sh", "-c", 'for f in "/proc/$1/status" /proc/self/status; do while read -r k r e s _; do '
        '[ "$k" = Gid: ] && echo "$r $e $s"; done < "$f"; done', "sh", "1"]


def test_gid_to_match_is_the_targets_gid_when_the_debug_containers_differs():
    # recordings 30-gid-*: distroless nonroot runs as 65532:65532, the debug image's uid 65532 as 65532:0
    assert cp.gid_to_match("65532 65532 65532\n0 0 0\n") == 65532
    assert cp.gid_to_match("65532 65532 65532\n65532 65532 65532\n") is None
    assert cp.gid_to_match("0 0 0\n0 0 0\n") is None
    assert cp.gid_to_match("10 20 20\n0 0 0\n") == 20  # no gid reads it; the effective one is the best try
    assert cp.gid_to_match("10 20 20\n20 20 20\n") is None
    assert cp.gid_to_match("") is None  # unreadable: the lookup says what the kernel refuses
    assert cp.gid_to_match("65532 65532 65532\n") is None


class _AdmitAll:
    """A KubeApi that admits every dry run of a debug container."""

    def add_ephemeral_container(self, namespace, pod, patch, dry_run=False):
        assert dry_run
        return {}


def test_the_profile_is_named_by_the_uid_the_debug_container_runs_as():
    """The pod names no user (read as root), --custom sets 65532: cp says `as uid 65532` (it said uid 0)."""
    from kubectl_debugx.commands import cp as cpm
    from kubectl_debugx.remote.ephemeral import Target

    pod = {"metadata": {"name": "web", "namespace": "shop"},
           "spec": {"containers": [{"name": "app", "image": "distroless"}]}, "status": {"phase": "Running"}}
    said: list[str] = []
    chosen, reader = cpm.choose_profile(_AdmitAll(), Target("shop", pod, "app"), "auto", "img",
                                        {"securityContext": {"runAsUser": 65532}}, 600, said.append)
    assert (chosen.profile, reader, chosen.container["securityContext"]["runAsUser"]) == ("as uid 65532", 65532,
                                                                                          65532)
