"""The jsonl sink on its own: lines written, no duplicates on a retry, torn lines cut, config checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from vemonitor.api import Batch, ConfigError, Context, Row
from vemonitor.api import load_item as typed
from vemonitor.registry import Manifest, Registry  # the real loader, for setup()
from vemonitor.testing import ManualClock, check_sink_contract

import vemonitor_jsonl
from vemonitor_jsonl.schema import JsonlOutputItem
from vemonitor_jsonl.sink import JsonlSink, JsonlWriteError, read_rows, resolve_path


def _rows(*times: float, source: str = "bmv700") -> tuple[Row, ...]:
    return tuple(Row(t, source, {"V": 12.5 + t / 100, "LOAD": True, "PID": "0x203"})
                 for t in times)


def test_the_sink_keeps_vemonitors_sink_contract(tmp_path: Path) -> None:
    """vemonitor.testing's contract check: close before start, a retried batch written once."""
    sample = Batch("out", _rows(10, 11, 12))
    check_sink_contract(lambda: JsonlSink(JsonlOutputItem(name="out"), str(tmp_path)), sample,
                        lambda: len(read_rows(tmp_path / "out.jsonl")))


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[JsonlSink]:
    """Return a started sink writing <tmp>/out.jsonl, closed after the test."""
    sink = JsonlSink(JsonlOutputItem(name="out"), str(tmp_path))
    sink.start()
    yield sink
    sink.close()


def test_each_row_becomes_one_json_line(sink: JsonlSink, tmp_path: Path) -> None:
    """Rows are appended in order as {"time", "source", "values"} objects, one a line."""
    sink.write(Batch("out", _rows(10, 11)))
    sink.write(Batch("out", _rows(12, source="solar")))
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["time"] for line in lines] == [10, 11, 12]
    assert json.loads(lines[2]) == {"time": 12, "source": "solar",
                                    "values": {"V": 12.62, "LOAD": True, "PID": "0x203"}}


def test_non_finite_floats_are_written_as_null(sink: JsonlSink, tmp_path: Path) -> None:
    """NaN and infinities have no JSON form: they become null, the line stays valid JSON."""
    sink.write(Batch("out", (Row(1, "bmv700", {"V": float("nan"), "I": float("inf")}),)))
    assert read_rows(tmp_path / "out.jsonl")[0].values == {"V": None, "I": None}


def test_a_retried_batch_adds_no_duplicate_lines(sink: JsonlSink, tmp_path: Path) -> None:
    """The outbox re-sends a batch after an unclear failure: rows already written are skipped."""
    sink.write(Batch("out", _rows(1, 2)))
    sink.write(Batch("out", _rows(1, 2, 3)))  # the re-send, drained together with a new row
    assert [r.time for r in read_rows(tmp_path / "out.jsonl")] == [1, 2, 3]
    assert sink.skipped == 2


def test_a_new_run_remembers_the_rows_already_in_the_file(tmp_path: Path) -> None:
    """After a crash before the outbox acknowledged, the next run's re-send is not duplicated."""
    first = JsonlSink(JsonlOutputItem(name="out"), str(tmp_path))
    first.start()
    first.write(Batch("out", _rows(1, 2)))
    first.close()
    second = JsonlSink(JsonlOutputItem(name="out"), str(tmp_path))
    second.start()
    second.write(Batch("out", _rows(1, 2, 3)))
    second.close()
    assert [r.time for r in read_rows(tmp_path / "out.jsonl")] == [1, 2, 3]


def test_a_torn_last_line_is_removed_at_start(tmp_path: Path) -> None:
    """A power cut mid-write leaves half a line: start() cuts it so the file stays valid."""
    target = tmp_path / "out.jsonl"
    target.write_text('{"time":1,"source":"bmv700","values":{}}\n{"time":2,"sou')
    sink = JsonlSink(JsonlOutputItem(name="out"), str(tmp_path))
    sink.start()
    sink.write(Batch("out", _rows(1, 2)))
    sink.close()
    assert [r.time for r in read_rows(target)] == [1, 2]


def test_a_failed_write_raises_and_the_retry_completes_the_file(
        sink: JsonlSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write() raises JsonlWriteError on a disk error; the retry writes every row exactly once."""
    sink.write(Batch("out", _rows(1)))

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vemonitor_jsonl.sink.os.fsync", full)
    with pytest.raises(JsonlWriteError, match="out.jsonl: .*No space left"):
        sink.write(Batch("out", _rows(2, 3)))
    monkeypatch.undo()
    sink.write(Batch("out", _rows(2, 3, 4)))
    assert [r.time for r in read_rows(tmp_path / "out.jsonl")] == [1, 2, 3, 4]


def test_write_before_start_and_close_twice(tmp_path: Path) -> None:
    """write() needs start(); close() is idempotent."""
    sink = JsonlSink(JsonlOutputItem(name="out"), str(tmp_path))
    with pytest.raises(JsonlWriteError, match="start"):
        sink.write(Batch("out", _rows(1)))
    sink.close()
    sink.close()


def test_an_unwritable_place_fails_at_start_naming_the_file(tmp_path: Path) -> None:
    """start() raises JsonlWriteError naming the file when it cannot be created."""
    (tmp_path / "blocker").write_text("a file, not a folder")
    sink = JsonlSink(JsonlOutputItem(name="out", path="blocker/out.jsonl"), str(tmp_path))
    with pytest.raises(JsonlWriteError, match="blocker/out.jsonl"):
        sink.start()


@pytest.mark.parametrize(("path", "expected"), [
    (None, "/state/store.jsonl"), ("rows.jsonl", "/state/rows.jsonl"),
    ("/var/log/rows.jsonl", "/var/log/rows.jsonl")])
def test_path_defaults_to_the_output_name_in_the_state_dir(path: str | None, expected: str) -> None:
    """null -> <state_dir>/<output name>.jsonl; relative paths are under the state dir."""
    assert resolve_path(path, "store", "/state") == Path(expected)


@pytest.mark.parametrize("path", ["", "  ", "logs/"])
def test_a_path_that_names_no_file_is_a_config_error(path: str) -> None:
    """Validation (no I/O) rejects empty and folder-like paths, naming the key."""
    with pytest.raises(ConfigError, match="block.outputs.jsonl.file: path must name a file"):
        typed(JsonlOutputItem, {"name": "file", "path": path}, None, "block.outputs.jsonl.file")


def test_unknown_keys_are_config_errors() -> None:
    """The schema is a dataclass: a typo is reported with the allowed keys."""
    with pytest.raises(ConfigError, match="unknown key .*fsync"):
        typed(JsonlOutputItem, {"name": "file", "fsynk": False}, None, "block.outputs.jsonl.file")


def test_setup_registers_the_output_schema_and_sink_factory(tmp_path: Path) -> None:
    """setup() registers JsonlOutputItem and a factory building a JsonlSink; the manifest is valid."""
    text = (resources.files("vemonitor_jsonl") / "manifest.json").read_text()
    manifest = Manifest.from_dict(json.loads(text), "test")
    registry = Registry()
    registry.manifests[manifest.domain] = manifest  # what discover() does for an entry point
    vemonitor_jsonl.setup(registry, manifest)
    reg = registry.get("jsonl")
    assert (manifest.domain, manifest.provides) == ("jsonl", ("output",))
    assert reg.output_item is JsonlOutputItem and reg.sink_factory is not None
    built = reg.sink_factory(JsonlOutputItem(name="x"), None, Context(ManualClock(0.0), str(tmp_path)))
    assert isinstance(built, JsonlSink) and built.path == tmp_path / "x.jsonl"
