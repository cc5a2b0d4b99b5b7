"""Shell completion (kubectl_debugx/shell/completion.py): the cobra `__complete` protocol and the shell scripts."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_debugx.shell import completion
from kubectl_debugx.shell.completion import NO_FILE_COMP, NO_SPACE, TARGET_KINDS, candidates, complete

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))


def names(args: list[str]) -> list[str]:
    found, _ = candidates(args)
    return [c.split("\t")[0] for c in found]


def test_subcommands_with_descriptions() -> None:
    found, directive = candidates([""])
    assert directive == NO_FILE_COMP
    assert {"capture", "completion", "version"} <= {c.split("\t")[0] for c in found}
    assert all("\t" in c for c in found)
    assert names(["ver"]) == ["version"]
    found, _ = candidates(["c"], descriptions=False)
    assert "capture" in found and not any("\t" in c for c in found)


def test_flags_and_values() -> None:
    assert names(["capture", "--pro"]) == ["--profile"]
    assert "--help" in names(["capture", "--h"])
    assert names(["capture", "--profile", "net"]) == ["netadmin"]
    assert names(["capture", "--profile=re"]) == ["--profile=restricted"]
    assert names(["capture", "--summary", ""]) == ["text", "json"]
    assert candidates(["nodelogs", "--output", ""]) == ([], 0)  # a directory: the shell completes paths
    assert names(["completion", ""]) == ["bash", "zsh", "fish", "kubectl"]
    assert names(["capture", "web", "--dry-run", "--pro"]) == ["--profile"]  # after the POD argument


def test_file_values_let_the_shell_complete_paths() -> None:
    assert candidates(["capture", "-o", ""]) == ([], 0)
    assert candidates(["capture", "--kubeconfig", ""]) == ([], 0)


def test_pods_without_a_cluster_mean_no_candidates() -> None:
    # the kinds of a TARGET need no cluster; names do
    assert candidates(["capture", ""]) == (list(TARGET_KINDS), NO_FILE_COMP)
    assert candidates(["capture", "de"]) == (["deploy/"], NO_FILE_COMP | NO_SPACE)
    assert candidates(["capture", "-n", "x", "--context", "nope", "pod/"]) == ([], NO_FILE_COMP)
    assert candidates(["capture", "deploy/"]) == ([], NO_FILE_COMP)


def test_pod_names_come_from_the_line_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    class FakeKube:
        def __init__(self, flags: object) -> None:
            seen["flags"] = flags
            self.namespace = getattr(flags, "namespace", None) or "default"

        def list_pods(self, namespace: str) -> list[dict[str, object]]:
            seen["namespace"] = namespace
            return [{"metadata": {"name": n}} for n in ("web-2", "web-1", "db-0")]

    import kubectl_debugx.kube.client as kube_module

    monkeypatch.setattr(kube_module, "Kube", FakeKube)
    assert names(["capture", "-n", "shop", "--context", "prod", "we"]) == ["web-1", "web-2"]
    assert seen["namespace"] == "shop"
    assert seen["flags"].context == "prod"  # type: ignore[attr-defined]
    assert names(["trace", "--namespace=shop", "pod/d"]) == ["pod/db-0"]


def test_targets_offer_kinds_then_the_names_of_that_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    class FakeKube:
        def __init__(self, flags: object) -> None:
            self.namespace = getattr(flags, "namespace", None) or "default"

        def list_pods(self, namespace: str) -> list[dict[str, object]]:
            return [{"metadata": {"name": "db-0"}}]

        def request(self, method: str, path: str) -> dict[str, object]:
            asked.append((method, path))
            return {"items": [{"metadata": {"name": n}} for n in ("web", "api", "worker")]}

    import kubectl_debugx.kube.client as kube_module

    monkeypatch.setattr(kube_module, "Kube", FakeKube)
    assert candidates(["capture", "-n", "shop", "d"]) == (["deploy/", "ds/", "db-0"], NO_FILE_COMP)
    assert candidates(["trace", "-n", "shop", "deploy/w"]) == (["deploy/web", "deploy/worker"], NO_FILE_COMP)
    assert candidates(["nodelogs", "svc/"]) == (["svc/api", "svc/web", "svc/worker"], NO_FILE_COMP)
    assert asked == [("GET", "/apis/apps/v1/namespaces/shop/deployments"),
                     ("GET", "/api/v1/namespaces/default/services")]
    assert candidates(["capture", "cronjob/"]) == ([], NO_FILE_COMP)


def test_complete_prints_the_directive_last_and_never_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(args: object, descriptions: bool = True) -> None:
        raise RuntimeError("bug")

    out = io.StringIO()
    assert complete(["capture", "--pro"], out=out) == 0
    assert out.getvalue().splitlines()[-1] == ":4"
    monkeypatch.setattr(completion, "candidates", boom)
    out = io.StringIO()
    assert complete([""], out=out) == 0
    assert out.getvalue() == ":4\n"


def test_scripts() -> None:
    for shell in ("bash", "zsh", "fish"):
        assert "__complete" in completion.script(shell)
    kubectl_script = completion.script("kubectl")
    assert kubectl_script.startswith("#!/bin/sh\n") and 'kubectl-debugx" __complete "$@"' in kubectl_script
    with pytest.raises(Exception, match="unknown shell"):
        completion.script("tcsh")


@pytest.mark.skipif(not shutil.which("bash"), reason="no bash")
def test_bash_script(tmp_path: Path) -> None:
    launcher = tmp_path / "kubectl-debugx"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} -m kubectl_debugx \"$@\"\n")
    launcher.chmod(0o755)
    program = completion.script("bash") + r'''
t() { COMP_LINE="$1"; COMP_POINT=${#1}; COMP_WORDS=($1); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
      [[ "$1" == *" " ]] && COMP_CWORD=${#COMP_WORDS[@]}
      _kubectl_debugx_complete; echo "${COMPREPLY[*]}"; }
t "kubectl-debugx ca"
t "kubectl-debugx capture --profile net"
t "kubectl-debugx capture --profile=ba"
t "kubectl-debugx completion "
'''
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    out = subprocess.run(["bash", "--norc", "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.splitlines() == ["capture", "netadmin", "baseline", "bash zsh fish kubectl"], out.stderr


def test_targets_with_their_api_group_complete_like_their_short_form(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    class FakeKube:
        def __init__(self, flags: object) -> None:
            self.namespace = "shop"

        def request(self, method: str, path: str) -> dict[str, object]:
            asked.append(path)
            return {"items": [{"metadata": {"name": "web"}}]}

    import kubectl_debugx.kube.client as kube_module

    monkeypatch.setattr(kube_module, "Kube", FakeKube)
    assert candidates(["capture", "deployment.apps/w"]) == (["deployment.apps/web"], NO_FILE_COMP)
    assert candidates(["capture", "job.batch/"]) == (["job.batch/web"], NO_FILE_COMP)
    assert candidates(["capture", "deployment.batch/"]) == ([], NO_FILE_COMP)
    assert asked == ["/apis/apps/v1/namespaces/shop/deployments", "/apis/batch/v1/namespaces/shop/jobs"]


def test_cp_completes_pods_with_a_colon_as_kubectl_cp(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = []

    class FakeKube:
        def __init__(self, flags: object) -> None:
            self.namespace = getattr(flags, "namespace", None) or "default"

        def list_pods(self, namespace: str) -> list[dict[str, object]]:
            listed.append(namespace)
            return [{"metadata": {"name": n}} for n in ("web-1", "db-0")]

        def request(self, method: str, path: str) -> dict[str, object]:
            return {"items": [{"metadata": {"name": "web"}}]}

    import kubectl_debugx.kube.client as kube_module

    monkeypatch.setattr(kube_module, "Kube", FakeKube)
    both = NO_FILE_COMP | NO_SPACE
    assert candidates(["cp", ""]) == (["db-0:", "web-1:", "deploy/", "sts/", "ds/", "rs/", "job/", "svc/"], both)
    assert candidates(["cp", "-n", "shop", "w"]) == (["web-1:"], both)
    assert candidates(["cp", "deploy/"]) == (["deploy/web:"], both)
    assert candidates(["cp", "shop/d"]) == (["shop/db-0:"], both)  # kubectl cp's NAMESPACE/POD
    assert listed == ["default", "shop", "shop"]
    # POD:<TAB> -- the container's paths are not listed, and never local files in their place
    assert candidates(["cp", "web-1:"]) == ([], both)
    assert candidates(["cp", "web-1:/etc/ng"]) == ([], both)
    # a local path (a copy into a container, refused with a line) and LOCAL: the shell completes files
    assert candidates(["cp", "./"]) == ([], 0)
    assert candidates(["cp", "web-1:/etc/hosts", ""]) == ([], 0)


def test_cp_without_a_cluster_offers_the_kinds_only() -> None:
    assert candidates(["cp", "d"]) == (["deploy/", "ds/"], NO_FILE_COMP | NO_SPACE)


def test_help_completes_the_commands_and_o_its_formats() -> None:
    assert names(["help", "ca"]) == ["capture"]
    assert names(["gc", "-o", ""]) == ["json", "yaml"]
    assert names(["version", "--output="]) == ["--output=json", "--output=yaml"]
