"""Plugins written when the row's input name was ``Row.source`` keep working (issue 16)."""

from __future__ import annotations

import pytest

from vemonitor.api import Row


def test_the_old_name_reads_the_input_and_warns() -> None:
    row = Row(1.0, "bmv700", {"V": 12.5})
    with pytest.warns(DeprecationWarning, match=r"Row\.source is deprecated: use Row\.input"):
        assert row.source == "bmv700"


def test_our_own_use_of_the_old_name_fails_the_suite() -> None:
    """pyproject's filterwarnings turns the warning into an error outside pytest.warns, so
    no code or test of vemonitor can come to rely on the alias."""
    with pytest.raises(DeprecationWarning):
        _ = Row(1.0, "bmv700", {}).source
