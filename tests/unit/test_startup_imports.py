"""Start-up cost: `--help`, shell completion of subcommands and flags, and `completion SHELL` must not load the
Kubernetes client or anything heavy. Checked with `python -X importtime` on the source tree and on the built
zipapp (the one next to $DEBUGX_EXECUTABLE, or dist/), minus what a bare interpreter imports anyway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("kubernetes", "yaml", "urllib3", "requests", "websocket", "certifi", "oauthlib", "requests_oauthlib",
         "dateutil", "rich", "pygments", "markdown_it", "charset_normalizer", "idna", "ssl", "http", "asyncio",
         "email")

CASES = [
    ["--help"],
    ["capture", "--help"],
    ["completion", "bash"],
    ["__complete", ""],
    ["__complete", "capture", "--"],
    ["__complete", "capture", "--profile", ""],
    ["__completeNoDesc", "completion", ""],
]


def _imported(cmd: list[str], env: dict[str, str]) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", *cmd], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    names = set()
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.fixture(scope="module")
def baseline() -> set[str]:
    return _imported(["-c", "pass"], dict(os.environ))


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_source_tree(args: list[str], baseline: set[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KUBECONFIG="/nonexistent")
    modules = _imported(["-m", "kubectl_debugx", *args], env) - baseline
    assert _heavy(modules) == []
    assert "kubectl_debugx.kube.client" not in modules


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    exe = Path(os.environ.get("DEBUGX_EXECUTABLE") or ROOT / "dist" / "kubectl-debugx")
    if not exe.is_file():
        pytest.skip("no build: run ./build.sh")
    env = dict(os.environ, SHIV_ROOT=str(tmp_path_factory.mktemp("shiv")), KUBECONFIG="/nonexistent")
    subprocess.run([sys.executable, str(exe), "--help"], capture_output=True, env=env, check=True, timeout=120)
    return exe, env


@pytest.mark.parametrize("args", CASES, ids=" ".join)
def test_zipapp(args: list[str], baseline: set[str], zipapp: tuple[Path, dict[str, str]]) -> None:
    exe, env = zipapp
    modules = _imported([str(exe), *args], env) - baseline
    assert _heavy(modules) == []
    assert "kubectl_debugx.kube.client" not in modules
    # a warm start skips shiv's bootstrap (packaging/zipapp_main.py)
    assert "_bootstrap" not in modules and "zipfile" not in modules
    # help and completion come from the build's cache (kubectl_debugx/shell/clispec.py): not even Typer
    if args[0] != "completion":
        assert not [m for m in modules if m == "typer" or m.startswith("typer.")]


@pytest.mark.parametrize("columns", ["80", "200", "60"])
@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["capture", "--help"], ["version", "-h"]], ids=" ".join)
def test_cached_help_is_what_click_prints(args: list[str], columns: str, zipapp: tuple[Path, dict[str, str]]) -> None:
    exe, env = zipapp
    runs = [subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                           env=dict(env, COLUMNS=columns, **extra))
            for extra in ({}, {"KUBECTL_DEBUGX_NO_CACHE": "1"})]
    cached, live = ((r.returncode, r.stdout, r.stderr) for r in runs)
    assert cached == live
    assert "Usage: kubectl debugx" in cached[1] + cached[2]


def test_pod_completion_is_where_the_client_loads(zipapp: tuple[Path, dict[str, str]], baseline: set[str]) -> None:
    """The counter-check: completing a POD argument does load the client (and fails quietly without a
    cluster), so the assertions above can see it."""
    exe, env = zipapp
    modules = _imported([str(exe), "__complete", "capture", ""], env) - baseline
    assert "kubectl_debugx.kube.client" in modules and "kubernetes" in modules
