"""vemonitor.testing: the shipped test doubles, and the sink contract run on real sinks."""

from __future__ import annotations

from pathlib import Path

from vemonitor_integrations.console import create_sink as console_sink
from vemonitor_integrations.console.schema import ConsoleOutputItem
from vemonitor_integrations.sqlite import create_sink as sqlite_sink
from vemonitor_integrations.sqlite.schema import SqliteOutputItem
from vemonitor_integrations.sqlite.sink import SqliteSink, read_rows

from vemonitor.api import Context, DescribesDevice, PushesUpdates, Sink
from vemonitor.testing import (
    FakeSource,
    ManualClock,
    RecordingSink,
    batch,
    check_sink_contract,
    rows,
)

NOW = 1_714_560_000.0
SAMPLE = batch("out", rows(NOW, 5, "bmv"), rows(NOW, 3, "solar", {"PPV": 120}))


def test_the_recording_sink_keeps_the_contract_and_every_row() -> None:
    recorder = RecordingSink()
    check_sink_contract(lambda: recorder, SAMPLE)  # the same object plays both sinks
    assert recorder.started and recorder.closed == 4  # twice before start, twice after
    assert len(recorder.rows("bmv")) == 10 and len(recorder.rows("solar")) == 6  # sent twice


def test_the_sqlite_sink_keeps_the_contract_a_retry_stores_nothing_twice(tmp_path: Path) -> None:
    ctx = Context(clock=ManualClock(NOW), state_dir=str(tmp_path))
    made: list[Sink] = []

    def make() -> Sink:
        made.append(sqlite_sink(SqliteOutputItem(name="store"), None, ctx))
        return made[-1]

    def stored() -> int:
        sink = made[-1]
        assert isinstance(sink, SqliteSink)
        return len(read_rows(sink.path))

    check_sink_contract(make, SAMPLE, stored)


def test_the_console_sink_keeps_the_contract(tmp_path: Path) -> None:
    ctx = Context(clock=ManualClock(NOW), state_dir=str(tmp_path))
    check_sink_contract(lambda: console_sink(ConsoleOutputItem(name="screen", mode="lines"),
                                             None, ctx), SAMPLE)


def test_a_sink_storing_a_retry_twice_fails_the_contract() -> None:
    """The check has teeth: a sink keeping duplicates is named as breaking idempotence."""
    recorder = RecordingSink()
    try:
        check_sink_contract(lambda: recorder, SAMPLE, lambda: len(recorder.rows()))
    except AssertionError as err:
        assert "must not be stored twice" in str(err)
    else:
        raise AssertionError("a duplicating sink passed the contract")


def test_the_fake_source_pushes_and_has_exactly_its_abilities() -> None:
    source = FakeSource("bmv")
    woken: list[bool] = []
    source.notify_on_update(lambda: woken.append(True))
    assert source.latest() is None
    source.push({"V": 12.5}, NOW)
    assert source.latest() == ({"V": 12.5}, NOW) and woken == [True]
    assert isinstance(source, PushesUpdates) and not isinstance(source, DescribesDevice)


def test_rows_differ_and_batches_are_sorted() -> None:
    made = rows(NOW, 3, "bmv", {"V": 12.0, "CS": "Bulk"})
    assert [r.values["V"] for r in made] == [12.0, 13.0, 14.0]
    assert {r.values["CS"] for r in made} == {"Bulk"}
    assert [r.time for r in SAMPLE.rows] == sorted(r.time for r in SAMPLE.rows)
