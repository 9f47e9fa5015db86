"""Shared fixtures: where ../shared lives, and skipping cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
CAPTURES = SHARED / "captures"
SEED_CONFIGS = SHARED / "seed_configs"


def require_shared(path: Path) -> Path:
    """Return ``path`` or skip the test when ../shared (not part of the repo) is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the real captures and seed configs live in ../shared")
    return path


@pytest.fixture
def captures_dir() -> Path:
    """Return the directory of real device captures."""
    return require_shared(CAPTURES)


@pytest.fixture
def seed_configs_dir() -> Path:
    """Return the directory of the original project's sample configurations."""
    return require_shared(SEED_CONFIGS)
