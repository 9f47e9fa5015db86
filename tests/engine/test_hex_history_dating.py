"""Dating a day record before HSDS is known, and a first read before first light (issue 22).

HEX.md §4.1: 0x1050 is today, 0x1051 yesterday, ... 0x106E 30 days ago, so a record's
place n says its day is n device days before today, whatever came first (record 0,
TEXT HSDS, or neither). The first-ever read also fixes the anchor date; the MPPT's
day rolls at first light, so between midnight and dawn its "today" is the day before.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

from vemonitor_integrations.vedirect.history import Anchors, History

from tests.engine.test_hex_history_rows import _record


def test_a_day_read_before_hsds_or_record_0_dates_itself_by_its_place(tmp_path: Path) -> None:
    history = History(Anchors(str(tmp_path)))
    assert history.today_seq is None  # no HSDS, no record 0 yet (it timed out, say)
    noon = datetime(2026, 6, 10, 12).timestamp()
    row = history.add("HQ1", _record(117), noon, n=3)  # 0x1053: three days before today
    assert row is not None and datetime.fromtimestamp(row.time) == datetime(2026, 6, 7)
    assert history.today_seq == 120
    wrapped = history.add("HQ2", _record(363), noon, n=3)  # HSDS wraps at 365 (PROTOCOL.md)
    assert wrapped is not None and history.today_seq == 1
    assert datetime.fromtimestamp(wrapped.time) == datetime(2026, 6, 7)
    assert history.add("HQ1", _record(120), noon, n=0) is None  # today is no row


def test_a_day_rolled_during_the_round_is_still_a_closed_day(tmp_path: Path) -> None:
    """Record 0 said 120; the device then rolled at first light: 0x1051 now holds 120,
    closed, which the old rule (day_seq == today_seq: no row) dropped until next roll."""
    history = History(Anchors(str(tmp_path)))
    history.today_seq = 120
    row = history.add("HQ1", _record(120), datetime(2026, 6, 10, 12).timestamp(), n=1)
    assert row is not None and history.today_seq == 121


def test_first_read_before_first_light_dates_by_the_charging_minutes(tmp_path: Path) -> None:
    """At 01:00 the device's today began yesterday at dawn: its 300 charging minutes
    cannot fit in the hour since midnight, so today is dated the day before."""
    one_am = datetime(2026, 6, 11, 1).timestamp()
    charged = History(Anchors(str(tmp_path / "a")))
    charged.today_record = _record(120)  # bulk 100 + absorption 60 min
    charged.today_record = replace(charged.today_record, bulk_min=240)  # 300 min
    row = charged.add("HQ1", _record(119), one_am, n=1)
    assert row is not None and datetime.fromtimestamp(row.time) == datetime(2026, 6, 9)
    # A dark today (no charging minutes) cannot be told apart: one day late, the
    # documented limit, and then consistently (the anchor is kept).
    dark = History(Anchors(str(tmp_path / "b")))
    dark.today_record = replace(_record(120), bulk_min=0, absorption_min=0, float_min=0)
    late = dark.add("HQ1", _record(119), one_am, n=1)
    assert late is not None and datetime.fromtimestamp(late.time) == datetime(2026, 6, 10)
    # In the afternoon the same minutes fit since midnight: today is the host's date.
    noon = History(Anchors(str(tmp_path / "c")))
    noon.today_record = replace(_record(120), bulk_min=240)
    row = noon.add("HQ1", _record(119), datetime(2026, 6, 11, 14).timestamp(), n=1)
    assert row is not None and datetime.fromtimestamp(row.time) == datetime(2026, 6, 10)
