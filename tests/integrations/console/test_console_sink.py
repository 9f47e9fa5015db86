"""The console sink: lines on a pipe, a live table on a terminal, any value type rendered."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from vemonitor_integrations.console import create_sink
from vemonitor_integrations.console.schema import ConsoleOutputItem
from vemonitor_integrations.console.sink import ConsoleSink, format_line, format_value, short_float

from vemonitor.api import Context
from vemonitor.clock import SystemClock
from vemonitor.errors import ConfigError
from vemonitor.model import Batch, Row

NOW = 1_714_560_000.0
BMV = {"V": 12.8, "I": -1.5, "SOC": 87.5, "LOAD": True, "PID": None, "SER": "HQ 1234",
       "CE": -12}


def sink_for(console: Console | None = None, **fields: Any) -> ConsoleSink:
    """Return an unstarted console sink for an item with ``fields``."""
    return ConsoleSink(ConsoleOutputItem(name="screen", **fields), console=console)


def terminal() -> Console:
    """Return a rich console that believes it is a terminal, writing to a string."""
    return Console(file=io.StringIO(), force_terminal=True, width=160)


def rows() -> Batch:
    return Batch("screen", (Row(NOW, "bmv700", BMV), Row(NOW, "mppt", {"PPV": 120, "CS": 3})))


def test_lines_mode_prints_one_line_per_row(capsys: pytest.CaptureFixture[str]) -> None:
    """Each row is '<iso time> <source> K=v ...' with every kind of value."""
    sink = sink_for(mode="lines")
    sink.start()
    sink.write(rows())
    sink.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].split(" ", 2)[1:] == [
        "bmv700", 'V=12.8 I=-1.5 SOC=87.5 LOAD=true PID=n/a SER="HQ 1234" CE=-12']
    assert lines[0].startswith("2024-05-01T")
    assert lines[1].endswith(" mppt PPV=120 CS=3")


def test_auto_mode_without_terminal_prints_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """Under capture (a pipe), auto falls back to lines."""
    sink = create_sink(ConsoleOutputItem(name="screen"), None, Context(SystemClock(), "."))
    sink.start()
    sink.write(rows())
    sink.close()
    assert isinstance(sink, ConsoleSink) and sink.resolved_mode == "lines"
    assert "V=12.8" in capsys.readouterr().out


def test_lines_are_capped_at_max_columns(capsys: pytest.CaptureFixture[str]) -> None:
    """Values beyond max_columns are counted, not printed."""
    sink = sink_for(mode="lines", max_columns=2)
    sink.start()
    sink.write(Batch("screen", (Row(NOW, "bmv700", BMV),)))
    out = capsys.readouterr().out
    assert "V=12.8 I=-1.5 (+5 more)" in out and "SOC" not in out


def test_table_mode_shows_latest_values_per_source() -> None:
    """The live table has one row per source with its latest values, refreshed on write."""
    console = terminal()
    sink = sink_for(console, mode="table")
    sink.start()
    assert sink.resolved_mode == "table"
    sink.write(rows())
    sink.write(Batch("screen", (Row(NOW + 1, "bmv700", {**BMV, "V": 12.75}),)))
    sink.close()
    sink.close()
    out = console.file.getvalue()  # type: ignore[attr-defined]
    # The screen shows units and on/off (LOAD), one panel per source (issue 13).
    for text in ("bmv700", "mppt", "12.75 V", "-1.5 A", "on", "n/a", "HQ 1234", "120 W"):
        assert text in out
    last_frame = out.rsplit("vemonitor output screen", 1)[1]
    assert "12.75" in last_frame and "12.8 " not in last_frame


def test_auto_mode_uses_the_table_on_a_terminal() -> None:
    """An injected terminal console makes auto choose the table."""
    sink = sink_for(terminal())
    sink.start()
    assert sink.resolved_mode == "table"
    sink.close()


def test_table_caption_counts_hidden_columns() -> None:
    """Fields beyond max_columns are counted in their source's panel (the count takes a cell)."""
    console = terminal()
    sink = sink_for(console, mode="table", max_columns=3)
    sink.start()
    sink.write(rows())
    sink.close()
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "+5 more" in out  # bmv700: 7 fields, V and I shown
    assert "SOC" not in out.rsplit("vemonitor output screen", 1)[1]


def test_table_values_are_not_markup() -> None:
    """Strings that look like rich markup are shown as they are, never interpreted."""
    console = terminal()
    sink = sink_for(console, mode="table")
    sink.start()
    sink.write(Batch("screen", (Row(NOW, "[bold]x", {"S": "[/]", "T": "[red]"}),)))
    sink.close()
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "[/]" in out and "[red]" in out and "[bold]x" in out


def test_two_table_outputs_share_one_terminal() -> None:
    """Two table-mode outputs on one console both show their rows and close in any order."""
    console = terminal()
    first, second = sink_for(console, mode="table"), sink_for(console, mode="table")
    first.start()
    second.start()
    first.write(Batch("screen", (Row(NOW, "bmv700", {"V": 12.5}),)))
    second.write(Batch("screen", (Row(NOW, "mppt", {"PPV": 99}),)))
    first.close()
    second.close()
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "12.5" in out and "99" in out


def test_live_refused_falls_back_to_lines(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """When rich refuses another live display (rich < 14), the sink prints lines instead."""
    from rich.errors import LiveError
    from rich.live import Live

    def refuse(self: Live, refresh: bool = False) -> None:
        raise LiveError("Only one live display may be active at once")

    monkeypatch.setattr(Live, "start", refuse)
    sink = sink_for(terminal(), mode="table")
    sink.start()
    sink.write(rows())
    sink.close()
    assert sink.resolved_mode == "lines"
    assert "V=12.8" in capsys.readouterr().out


@pytest.mark.parametrize(("value", "text"), [
    (None, "n/a"), (True, "true"), (False, "false"), (0, "0"), (-12, "-12"),
    (12.8, "12.8"), (13.0, "13"), (-0.0, "0"), (0.1 + 0.2, "0.3"), (1234.56789, "1234.568"),
    (0.0004, "0.0004"), (float("nan"), "nan"), (float("-inf"), "-inf"),
    ("HQ1234", "HQ1234"), ("a b", '"a b"'), ("", '""'), ("x\ny", '"x\\ny"'),
    (b"raw", "b'raw'"),
])
def test_values_render_short_and_never_fail(value: Any, text: str) -> None:
    """Every value type, including None, bool and str, has a short text form."""
    assert format_value(value) == text


def test_short_float_keeps_three_decimals() -> None:
    """Floats keep millivolt/milliamp resolution without trailing zeros."""
    assert short_float(12.3456) == "12.346"
    assert short_float(-1.50) == "-1.5"


def test_line_with_no_values_or_bad_time() -> None:
    """An empty row and an impossible time still format."""
    assert format_line(Row(float("nan"), "bmv700", {}), 12) == "nan bmv700"


@pytest.mark.parametrize(("fields", "key"), [({"mode": "fancy"}, "mode"),
                                             ({"max_columns": 0}, "max_columns")])
def test_bad_settings_are_config_errors(fields: dict[str, Any], key: str) -> None:
    """An unknown mode or a max_columns below 1 is a ConfigError naming the key."""
    with pytest.raises(ConfigError) as info:
        sink_for(**fields)
    assert info.value.key == key and "'screen'" in str(info.value)


def test_empty_batch_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """A batch without rows writes nothing."""
    sink = sink_for(mode="LINES")
    sink.start()
    sink.write(Batch("screen", ()))
    assert capsys.readouterr().out == ""
