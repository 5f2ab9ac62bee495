"""Fixtures for the viz tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from viz_fixtures import make_output


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return make_output(tmp_path / "out")
