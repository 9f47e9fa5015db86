"""The sqlite store: round trip, idempotence, retention, WAL, errors."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from vemonitor_integrations.sqlite.sink import SqliteSink, SqliteStoreError, read_rows

from vemonitor.errors import ConfigError
from vemonitor.model import Batch, Row

NOW = 1_714_560_000.0  # the conftest clock starts here (2024-05-01T10:40:00Z)
DAY = 86400.0
BMV = {"V": 12.8, "I": -1.5, "SOC": 87.5, "LOAD": True, "PID": None, "SER": "HQ1234", "CE": -12}


def batch(*rows: Row) -> Batch:
    return Batch("store", rows)


def test_rows_written_are_read_back_with_their_values(make_sink: Callable[..., SqliteSink],
                                                      ctx) -> None:
    """Every type of value survives the round trip, rows come back oldest first."""
    sink = make_sink()
    rows = (Row(NOW, "bmv700", BMV), Row(NOW, "mppt", {"PPV": 120, "CS": 3}),
            Row(NOW + 1, "bmv700", {**BMV, "V": 12.81}))
    sink.write(batch(*rows))
    sink.close()
    stored = read_rows(Path(ctx.state_dir) / "store.sqlite")
    assert [(r.time, r.input) for r in stored] == [(NOW, "bmv700"), (NOW, "mppt"),
                                                      (NOW + 1, "bmv700")]
    assert stored[0].values == BMV
    assert read_rows(sink.path, input_name="bmv700", since=NOW + 1)[0].values["V"] == 12.81


def test_a_retried_batch_replaces_rows_instead_of_duplicating(
        make_sink: Callable[..., SqliteSink]) -> None:
    """Rows are keyed by (source, time): re-sending a batch leaves one copy of each."""
    sink = make_sink()
    same = batch(Row(NOW, "bmv700", BMV), Row(NOW + 1, "bmv700", BMV))
    sink.write(same)
    sink.write(same)
    sink.write(batch(Row(NOW, "bmv700", {"V": 13.0})))
    stored = read_rows(sink.path)
    assert len(stored) == 2
    assert stored[0].values == {"V": 13.0}


def test_non_finite_floats_are_stored_as_null(make_sink: Callable[..., SqliteSink]) -> None:
    """NaN has no JSON form: it becomes null instead of failing the batch forever."""
    sink = make_sink()
    sink.write(batch(Row(NOW, "bmv700", {"V": float("nan"), "I": float("inf")})))
    assert read_rows(sink.path)[0].values == {"V": None, "I": None}


def test_retention_deletes_old_rows_at_most_once_an_hour(
        make_sink: Callable[..., SqliteSink], clock: Any) -> None:
    """Rows older than retention_days go on the first write, then only an hour later."""
    assert clock.now() == NOW
    sink = make_sink(retention_days=7)
    sink.write(batch(Row(NOW - 8 * DAY, "bmv700", BMV), Row(NOW - DAY, "bmv700", BMV)))
    assert [r.time for r in read_rows(sink.path)] == [NOW - DAY]

    sink.write(batch(Row(NOW - 9 * DAY, "bmv700", BMV)))  # a late retry of old data
    assert len(read_rows(sink.path)) == 2  # not pruned on every write

    clock.t += 3600
    sink.write(batch(Row(clock.t, "bmv700", BMV)))
    assert [r.time for r in read_rows(sink.path)] == [NOW - DAY, NOW + 3600]


def test_store_uses_wal_and_the_configured_synchronous(
        make_sink: Callable[..., SqliteSink]) -> None:
    """The file is in WAL mode; synchronous is accepted in any case."""
    sink = make_sink(synchronous="full")
    assert sink.synchronous == "FULL"
    sink.write(batch(Row(NOW, "bmv700", BMV)))
    with sqlite3.connect(sink.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sink._conn is not None
    assert sink._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_close_is_idempotent_and_write_after_close_raises(
        make_sink: Callable[..., SqliteSink]) -> None:
    """close() twice is fine; a write on a closed store raises, naming the file."""
    sink = make_sink()
    sink.close()
    sink.close()
    with pytest.raises(SqliteStoreError, match="store.sqlite"):
        sink.write(batch(Row(NOW, "bmv700", BMV)))


def test_nothing_is_opened_before_start(make_sink: Callable[..., SqliteSink], ctx) -> None:
    """Building the sink does no I/O: the state directory is created by start()."""
    sink = make_sink(start=False)
    assert not Path(ctx.state_dir).exists()
    sink.start()
    assert sink.path.is_file()


@pytest.mark.parametrize("value", ["FAST", "", "normal-ish"])
def test_bad_synchronous_is_a_config_error(make_sink: Callable[..., SqliteSink],
                                           value: str) -> None:
    """An unknown PRAGMA synchronous level is named with the allowed ones."""
    with pytest.raises(ConfigError, match="OFF, NORMAL, FULL, EXTRA") as info:
        make_sink(start=False, synchronous=value)
    assert info.value.key == "synchronous"
    assert "'store'" in str(info.value)


def test_bad_retention_is_a_config_error(make_sink: Callable[..., SqliteSink]) -> None:
    """retention_days must be positive."""
    with pytest.raises(ConfigError, match="> 0"):
        make_sink(start=False, retention_days=0)


def test_relative_and_absolute_paths(make_sink: Callable[..., SqliteSink], ctx,
                                     tmp_path: Path) -> None:
    """A relative path is under the state directory; an absolute one is used as is."""
    assert make_sink(start=False, path="db/x.sqlite").path == Path(ctx.state_dir) / "db/x.sqlite"
    absolute = tmp_path / "elsewhere.sqlite"
    sink = make_sink(path=str(absolute))
    assert sink.path == absolute and absolute.is_file()


def test_unopenable_file_raises_naming_it(make_sink: Callable[..., SqliteSink],
                                          tmp_path: Path) -> None:
    """A path under a regular file cannot be opened: the error names the file."""
    (tmp_path / "afile").write_text("")
    with pytest.raises(SqliteStoreError, match=r"cannot open SQLite store .*afile"):
        make_sink(path=str(tmp_path / "afile" / "store.sqlite"))


def test_failed_write_rolls_back_and_names_the_file(
        make_sink: Callable[..., SqliteSink]) -> None:
    """A write refused by SQLite (here: read-only) raises and stores nothing of the batch."""
    sink = make_sink()
    assert sink._conn is not None
    sink._conn.execute("PRAGMA query_only=ON")
    with pytest.raises(SqliteStoreError, match=r"cannot write to SQLite store .*store.sqlite"):
        sink.write(batch(Row(NOW, "bmv700", BMV)))
    sink._conn.execute("PRAGMA query_only=OFF")
    assert read_rows(sink.path) == []
    sink.write(batch(Row(NOW, "bmv700", BMV)))  # the connection is still usable
    assert len(read_rows(sink.path)) == 1


def test_read_rows_never_creates_a_file(tmp_path: Path) -> None:
    """Reading a missing store raises instead of creating an empty one."""
    with pytest.raises(SqliteStoreError, match="missing.sqlite"):
        read_rows(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()
