"""The quick slice of bench/reliability on every run: 3 of each scenario (Ctrl-C and kill -9 at random moments
of capture, trace and nodelogs --via pod, exec stream cuts, API server restarts) and every bad input; the
matrix's goals must hold. The seed is printed: `bench/reliability --quick --seed N` replays a failure."""

from __future__ import annotations

import random
from contextlib import ExitStack
from pathlib import Path

import pytest

from bench.reliability import Bench as ReliabilityBench
from bench.reliability import matrix, render

from .helpers import executable

pytestmark = pytest.mark.e2e


def test_reliability_quick_slice_meets_every_goal(e2e, namespace):
    seed = random.randrange(10**6)
    print(f"bench/reliability --quick --seed {seed}")
    with ExitStack() as stack:
        bench = ReliabilityBench(stack, str(e2e.kubeconfig), Path(executable()), e2e.image, e2e.nginx_image,
                                 e2e.cluster, e2e.context, namespace)
        rows = matrix(bench, quick=True, seed=seed)
    print(render(rows))
    for row in rows:  # shown whole with the failure (an assertion's own text is cut short)
        for note in row.notes:
            print(f"  {row.name}: {note}")
    for row in rows:
        if row.skipped:
            assert e2e.cluster is None, row.skipped  # only a real cluster lacks the fault switches
            continue
        assert row.runs >= 3 and row.tools_left == 0 and row.node_pods_left == 0, (row, row.notes)
        assert row.valid == row.runs and row.codes_ok == row.codes_checked, (row, row.notes)
        assert row.credentials == 0, row
        assert row.added_said == row.added, (row, row.notes)  # every debug container added is said to stay
    assert sum(r.runs for r in rows if r.name.startswith("bad inputs")) >= 25
