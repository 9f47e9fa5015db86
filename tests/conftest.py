"""Shared fixtures: the real device captures and the seed configs from ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared import CAPTURES, SEED_CONFIGS, require_shared


@pytest.fixture
def captures_dir() -> Path:
    """Return the directory of real device captures."""
    return require_shared(CAPTURES)


@pytest.fixture
def seed_configs_dir() -> Path:
    """Return the directory of the original project's sample configurations."""
    return require_shared(SEED_CONFIGS)
