"""The soak test's option: ``--soak-seconds`` (how long the hostile fleet publishes).

The soak tests are marked ``soak`` and left out of the default run (pyproject's addopts
say ``-m "not soak"``: the README's suite stays within its minutes). CI runs them in a
section of their own: ``python -m pytest tests/soak -m soak --soak-seconds 600``.
"""

from __future__ import annotations

import pytest

DEFAULT_SECONDS = 60.0  # a quick look; the soak is 600 s (.ci/run)
DRAIN_SECONDS = 900.0  # beyond the publishing: start-up, drain, stop, the checks


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak-seconds", type=float, default=DEFAULT_SECONDS,
                     help="seconds the soak test's fleet publishes (CI: 600)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each soak test a timeout of its duration plus the drain, not the suite's 300 s."""
    seconds = float(config.getoption("--soak-seconds"))
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(pytest.mark.timeout(seconds + DRAIN_SECONDS))


@pytest.fixture
def soak_seconds(request: pytest.FixtureRequest) -> float:
    """Return how long the fleet publishes."""
    return float(request.config.getoption("--soak-seconds"))
