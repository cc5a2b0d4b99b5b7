"""Fixtures of the unit tests that unpack untrusted trees (test_logtree, test_safetree, test_tarcopy)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """An empty output directory."""
    out = tmp_path / "out"
    out.mkdir()
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the destination that must stay untouched."""
    target = tmp_path / "outside"
    target.mkdir()
    (target / "secret").write_text("keep me")
    return target
