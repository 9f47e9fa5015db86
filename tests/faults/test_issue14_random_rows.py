"""Issue 14: random rows through every input decoder and sink encoder (hypothesis).

Whatever a row holds (NaN, infinities, huge ints, control characters, any Unicode,
deep text), every encoder either produces strict JSON (no NaN, parseable by
``json.loads`` refusing constants) or refuses with the documented error class,
and every input decoder returns checked scalar values or raises BadRow. Nothing
else may escape: an escaped exception is a crashed thread or daemon.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vemonitor_integrations.emoncms.payload import bulk_data, encode_rows
from vemonitor_integrations.mqtt.sink import state_payload, value_payload
from vemonitor_integrations.redis import layout
from vemonitor_integrations.sqlite.sink import encode_values as sqlite_values

from vemonitor import outside
from vemonitor.fieldpolicy import FieldDrops, keep_good_fields
from vemonitor.model import Batch, Row
from vemonitor.outbox import Outbox, OutboxError

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                   st.text(max_size=50))
names = st.text(min_size=1, max_size=20)
rows = st.builds(Row, st.floats(min_value=0, max_value=4e9), names,
                 st.dictionaries(names, values, max_size=8), st.floats(min_value=0, max_value=1e6))


def _strict(text: str) -> Any:
    """Parse JSON refusing NaN/Infinity (what a strict consumer does)."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


@SETTINGS
@given(st.lists(rows, min_size=1, max_size=5))
def test_sink_encoders_emit_strict_json_or_refuse_cleanly(batch: list[Row]) -> None:
    """Redis (hash and stream), EmonCms, MQTT and SQLite encoders on random rows."""
    for row in batch:
        _strict(layout.encode_values(row.values))
        flat = layout.encode_fields(row.values)
        for text in flat[1::2]:
            _strict(text)
        _strict(sqlite_values(row.values))
        _strict(state_payload(row))
        for value in row.values.values():
            payload = value_payload(value)
            if not isinstance(value, str):
                _strict(payload)
    _strict(bulk_data(encode_rows(batch, output="e").entries))


@SETTINGS
@given(st.lists(rows, min_size=1, max_size=5))
def test_outbox_stores_finite_rows_and_refuses_the_rest_with_outbox_error(
        batch: list[Row]) -> None:
    """Outbox.put: finite rows come back equal; a NaN row is an OutboxError, never a crash."""
    with tempfile.TemporaryDirectory() as folder:
        box = Outbox(Path(folder) / "o.sqlite", "o")
        box.open()
        finite = all(not (isinstance(v, float) and not math.isfinite(v))
                     for r in batch for v in r.values.values())
        try:
            box.put(Batch("o", tuple(batch)), now=0.0)
        except OutboxError:
            assert not finite
        else:
            assert finite
            (_, got), = box.peek(100)
            assert [dict(r.values) for r in got.rows] == [dict(r.values) for r in batch]
        box.close()


@SETTINGS
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1")), st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.text(max_size=5), inner, max_size=3)),
        max_leaves=20).map(lambda v: json.dumps(v))))
def test_redis_input_decoders_return_scalars_or_bad_row(text: str) -> None:
    """Random text in a watched hash or stream: BadRow, or fields that the field policy
    turns into checked scalars; nothing else."""
    for decode in (layout.decode_values, lambda t: layout.decode_fields({"V": t})):
        try:
            got = decode(text)
        except outside.BadRow as err:
            assert err.reason in {"non_finite", "too_deep", "too_large", "wrong_type",
                                  "not_json", "out_of_range"}
            continue
        for value in keep_good_fields(got, FieldDrops("input"), 0.0).values():
            assert value is None or isinstance(value, (bool, int, float, str))
            assert not (isinstance(value, float) and not math.isfinite(value))


DEVICE_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63) + 1, 2 ** 63 - 1),
                          st.floats(allow_nan=True), st.text(max_size=50))


@SETTINGS
@given(st.dictionaries(names, DEVICE_VALUES, max_size=8))
def test_redis_round_trip_keeps_every_finite_value(row_values: dict[str, Any]) -> None:
    """What the Redis sink writes, the Redis input reads back (non-finite become null)."""
    got = layout.decode_values(layout.encode_values(row_values))
    for key, value in row_values.items():
        if isinstance(value, float) and not math.isfinite(value):
            assert got[key] is None
        else:
            assert got[key] == value
