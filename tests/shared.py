"""Where ../shared (real captures, seed configs) lives, and skipping cleanly when it is absent.

A plain module (not conftest.py), so tests import it like any other helper.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


def wait_until(predicate: Callable[[], object], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; return whether it was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
