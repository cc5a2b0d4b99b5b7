"""--dry-run shows what a real run would do: the container it would add, or the running one it would reuse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .helpers import debugx, debugx_containers, ephemeral_names

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("command", ["capture", "trace"])
def test_dry_run_names_the_container_a_real_run_would_reuse(e2e, nginx_pod, tmp_path: Path, command: str):
    namespace, pod = nginx_pod
    first = debugx(e2e, command, pod, "-n", namespace, "--dry-run")
    assert first.returncode == 0, first.stderr
    assert yaml.safe_load(first.stdout)["name"].startswith("debugx-")
    assert first.stderr.decode().splitlines()[-1].endswith(f"ephemeral container not added to pod {pod}")
    assert ephemeral_names(e2e, namespace, pod) == []

    real = debugx(e2e, command, pod, "-n", namespace, "--duration", "1s", "-o", str(tmp_path / "out"))
    assert real.returncode == 0, real.stderr
    [made] = debugx_containers(e2e, namespace, pod)

    again = debugx(e2e, command, pod, "-n", namespace, "--dry-run")
    assert again.returncode == 0, again.stderr
    assert yaml.safe_load(again.stdout)["name"] == made
    assert f"would reuse the running ephemeral container {made} of pod {pod}; nothing added" in again.stderr.decode()
    assert debugx_containers(e2e, namespace, pod) == [made]


def test_custom_inline_as_the_readme_writes_it(e2e, nginx_pod):
    """--custom takes the container inline too (the README's recipe), merged over the profile as a file's is."""
    namespace, pod = nginx_pod
    result = debugx(e2e, "capture", pod, "-n", namespace, "--dry-run",
                    "--custom", '{"env": [{"name": "DEBUGX_TRY", "value": "1"}], "securityContext": {"runAsUser": 0}}')
    assert result.returncode == 0, result.stderr
    container = yaml.safe_load(result.stdout)
    assert container["env"] == [{"name": "DEBUGX_TRY", "value": "1"}]
    assert container["securityContext"]["runAsUser"] == 0
    assert ephemeral_names(e2e, namespace, pod) == []
