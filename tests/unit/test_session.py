"""The shared workflow's pure parts: the candidate container (reuse or dry-run admission) and the dry run."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kubectl_debugx.remote import session
from kubectl_debugx.remote.ephemeral import Target
from kubectl_debugx.talk import Talk
from tests.unit.fakekube import UnusedKube


def pod(ephemeral: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # Started now, when the test runs (not at collection: the whole suite takes longer than the TTL below).
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    statuses = [{"name": c["name"], "state": {"running": {"startedAt": now}}} for c in ephemeral or []]
    return {"metadata": {"name": "web", "namespace": "ns"},
            "spec": {"containers": [{"name": "app"}], "ephemeralContainers": ephemeral or []},
            "status": {"phase": "Running", "ephemeralContainerStatuses": statuses}}


class DryRunKube(UnusedKube):
    """Admits every dry run and remembers them."""

    def __init__(self) -> None:
        self.dry_runs: list[str] = []

    def add_ephemeral_container(self, namespace: str, pod: str, patch: Any, dry_run: bool = False) -> Any:
        assert dry_run
        self.dry_runs.append(patch["spec"]["ephemeralContainers"][0]["name"])
        return {}


def test_a_new_container_is_checked_by_a_dry_run_and_shown_as_added(capsys):
    kube = DryRunKube()
    target = Target("ns", pod(), "app")
    chosen = session.candidate(kube, target, "general", "img:1", None, 600, None)
    assert (chosen.reuse, chosen.refusal, kube.dry_runs) == (None, None, [chosen.container["name"]])
    assert session.dry_run(Talk(), chosen, target) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"name: {chosen.container['name']}\n")
    assert err == "Dry run: profile general; ephemeral container not added to pod web\n"


def test_a_running_match_is_what_the_dry_run_shows(capsys):
    kube = DryRunKube()
    wanted = session.candidate(kube, Target("ns", pod(), "app"), "general", "img:1", None, 600, None).container
    running = {**wanted, "name": "debugx-old11"}
    target = Target("ns", pod([running]), "app")
    chosen = session.candidate(kube, target, "general", "img:1", None, 600, None)
    assert (chosen.reuse, chosen.refusal, len(kube.dry_runs)) == ("debugx-old11", None, 1)
    assert session.dry_run(Talk(), chosen, target, "would trace PID 1") == 0
    out, err = capsys.readouterr()
    assert out.startswith("name: debugx-old11\n")
    assert err == ("Dry run: profile general; would trace PID 1; would reuse the running ephemeral container "
                   "debugx-old11 of pod web; nothing added\n")
