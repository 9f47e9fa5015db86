"""Issue 25 point 4 (Redis inputs): a run of bad rows longer than one read is stepped over
(it was read again at every call, for ever), on a real redis-server."""

from __future__ import annotations

from collections.abc import Callable

from vemonitor_integrations.redis import layout
from vemonitor_integrations.redis.source import MAX_ROWS, RedisSource

from tests.integrations.helpers import NOW
from tests.integrations.redis.support import hmap_input, stream_input

BAD_RUN = 10_000  # consecutive bad rows, as many as one read returns (MAX_ROWS)


def _read_all(source: RedisSource, after: float, calls: int) -> list[float]:
    """Read as the engine does (from the last row it got), ``calls`` times."""
    times: list[float] = []
    for _ in range(calls):
        rows = source.rows_since(after)
        times += [row.time for row in rows]
        after = rows[-1].time if rows else after
    return times


def test_10000_bad_hash_rows_then_good_ones(raw: object,
                                            make_source: Callable[..., RedisSource]) -> None:
    assert BAD_RUN >= MAX_ROWS
    key, index = layout.hmap_key("edge", "bmv700"), layout.index_key("edge", "bmv700")
    bad = {str(NOW + i): "{x]" for i in range(BAD_RUN)}
    good = {str(NOW + BAD_RUN + i): layout.encode_values({"V": 12.5}) for i in range(3)}
    raw.hset(key, mapping={**bad, **good})  # type: ignore[attr-defined]
    raw.zadd(index, {stamp: float(stamp) for stamp in [*bad, *good]})  # type: ignore[attr-defined]
    source = make_source(hmap_input(since=NOW - 10))
    got = _read_all(source, NOW - 10, calls=3)
    assert got == [NOW + BAD_RUN + i for i in range(3)]
    assert source.stats()["rejected"] == {"not_json": BAD_RUN}  # each bad row once


def test_10000_bad_stream_entries_then_good_ones(raw: object,
                                                 make_source: Callable[..., RedisSource]) -> None:
    key = layout.stream_key("vemonitor:", "bmv700")
    ms = int(NOW * 1000)
    pipe = raw.pipeline(transaction=False)  # type: ignore[attr-defined]
    for i in range(BAD_RUN):
        pipe.xadd(key, {"V": "Infinity"}, id=f"{ms + i * 1000}-0")
    for i in range(3):
        pipe.xadd(key, {"V": "12.5"}, id=f"{ms + (BAD_RUN + i) * 1000}-0")
    pipe.execute()
    source = make_source(stream_input(since=NOW - 10))
    got = _read_all(source, NOW - 10, calls=3)
    assert got == [NOW + BAD_RUN + i for i in range(3)]
    assert source.stats()["rejected"] == {"non_finite": BAD_RUN}
