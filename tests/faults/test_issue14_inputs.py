"""Issue 14 item 2: data from a Redis input is data: a bad row is dropped and counted,
never a crash of the daemon (real redis-server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from vemonitor_integrations.redis import layout
from vemonitor_integrations.redis.source import RedisSource

from tests.integrations.helpers import NOW
from tests.integrations.redis.support import hmap_input, stream_input
from vemonitor.fieldpolicy import FieldDrops, keep_good_fields
from vemonitor.model import Batch, Row
from vemonitor.outbox import Outbox

BAD = {  # what concerns the whole row: the row is dropped and counted by the source
    "too_deep": '{"V":' + "[" * 200_000 + "]" * 200_000 + "}",
    "not_json": "{x]",
}
# What concerns one value (issue 25, typed fields): the row comes through; the engine's
# field policy leaves that value out (counted per reason and label) and keeps the others.
BAD_FIELD = {
    "non_finite": ('{"V":12.9,"H17":Infinity}', "not_finite", "H17"),
    "nan": ('{"V":12.9,"SOC":NaN}', "not_finite", "SOC"),
    "wrong_type": ('{"V":12.9,"SOC":{"a":1}}', "wrong_kind", "SOC"),
}


def _box_takes(tmp_path: Path, rows: list[Row]) -> int:
    box = Outbox(tmp_path / "o.sqlite", "o")
    box.open()
    box.put(Batch("o", tuple(rows)), now=0.0)  # before: ValueError from json, exit 1
    depth = int(box.depth()["rows"])
    box.close()
    return depth


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_hash_row_is_dropped_counted_and_good_rows_flow(
        raw: object, make_source: Callable[..., RedisSource], tmp_path: Path, kind: str) -> None:
    """A 200,000-deep value or broken JSON in the watched hash: that row is dropped with a
    counted reason; the good rows around it are read and stored in an outbox."""
    key = layout.hmap_key("edge", "bmv700")
    good = {str(NOW + i): layout.encode_values({"V": 12.0 + i}) for i in (0, 2)}
    raw.hset(key, mapping={**good, str(NOW + 1): BAD[kind]})  # type: ignore[attr-defined]
    raw.zadd(layout.index_key("edge", "bmv700"),  # type: ignore[attr-defined]
             {str(NOW + i): NOW + i for i in range(3)})
    source = make_source(hmap_input(since=NOW - 10))
    got = source.rows_since(NOW - 10)
    assert [r.time for r in got] == [NOW, NOW + 2]
    assert sum(source.stats()["rejected"].values()) == 1
    assert _box_takes(tmp_path, got) == 2


@pytest.mark.parametrize("kind", sorted(BAD_FIELD))
def test_bad_value_costs_that_value_only(
        raw: object, make_source: Callable[..., RedisSource], tmp_path: Path, kind: str) -> None:
    """`{"V":12.9,"H17":Infinity}`, a NaN or an object as a value: the row is read, the
    field policy leaves that value out (counted), V is kept, and an outbox takes the row."""
    text, reason, label = BAD_FIELD[kind]
    key = layout.hmap_key("edge", "bmv700")
    raw.hset(key, mapping={str(NOW + 1): text})  # type: ignore[attr-defined]
    raw.zadd(layout.index_key("edge", "bmv700"), {str(NOW + 1): NOW + 1})  # type: ignore[attr-defined]
    source = make_source(hmap_input(since=NOW - 10))
    got = source.rows_since(NOW - 10)
    assert [r.time for r in got] == [NOW + 1] and not source.stats()["rejected"]
    drops = FieldDrops("input bmv700")
    kept = [Row(r.time, r.input, keep_good_fields(r.values, drops, 0.0)) for r in got]
    assert [r.values for r in kept] == [{"V": 12.9}]
    assert drops.as_dict() == {reason: {label: 1}}
    assert _box_takes(tmp_path, kept) == 1


def test_bad_stream_entry_value_is_left_out(raw: object,
                                            make_source: Callable[..., RedisSource]) -> None:
    """A stream entry with V=Infinity comes through for the field policy to leave V out."""
    key = layout.stream_key("vemonitor:", "bmv700")
    ms = int(NOW * 1000)
    raw.xadd(key, {"V": "Infinity", "SOC": "90"}, id=f"{ms + 1000}-0")  # type: ignore[attr-defined]
    raw.xadd(key, {"V": "12.5"}, id=f"{ms + 2000}-0")  # type: ignore[attr-defined]
    source = make_source(stream_input(since=NOW - 10))
    got = source.rows_since(NOW - 10)
    drops = FieldDrops("input bmv700")
    assert [keep_good_fields(r.values, drops, 0.0) for r in got] == [{"SOC": 90}, {"V": 12.5}]
    assert drops.as_dict() == {"not_finite": {"V": 1}}


def test_daemon_with_a_redis_input_survives_hostile_rows(tmp_path: Path) -> None:
    """Item 2 end to end: Infinity and a 200,000-deep value in the watched hash: the daemon
    runs to its end (exit 0; was exit 1 and a crash loop), the good rows and fields are
    stored and the bad ones counted by reason in the summary."""
    import json
    import os
    import subprocess
    import sys
    import time

    import redis

    from tests.servers import RedisServer

    with RedisServer(workdir=tmp_path / "redis") as server:
        client = redis.Redis(port=server.port)
        now = time.time()
        key, index = layout.hmap_key("edge", "bmv700"), layout.index_key("edge", "bmv700")
        for offset, text in ((30, layout.encode_values({"V": 12.5})),
                             (29, BAD_FIELD["non_finite"][0]), (28, BAD["too_deep"]),
                             (27, layout.encode_values({"V": 12.6}))):
            client.hset(key, str(now - offset), text)
            client.zadd(index, {str(now - offset): now - offset})
        state = tmp_path / "state"
        result = subprocess.run(
            [sys.executable, "-c", "from vemonitor.cli import main; main()",
             "block=BatteryMonitor", f"state_dir={state}", "duration=4", "~block.inputs.serial",
             "+appConnectors.redis.edge.host=127.0.0.1",
             f"+appConnectors.redis.edge.port={server.port}",
             "+block.inputs.redis.bmv700.source=edge", "+block.inputs.redis.bmv700.redis_node=edge",
             f"+block.inputs.redis.bmv700.since={now - 60}",
             "block.outputs.sqlite.store.cache_interval=1"],
            capture_output=True, text=True, timeout=120,
            env=dict(os.environ, HOME=str(tmp_path / "home")))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((state / "summary.json").read_text())
    # The too-deep row is dropped whole; the Infinity row keeps V (issue 25: per field).
    assert summary["inputs"]["bmv700"]["rows"] == 3
    assert summary["inputs"]["bmv700"]["fields_dropped"] == {"not_finite": {"H17": 1}}
    assert sum(summary["devices"]["edge"]["rejected"].values()) == 1
