"""The InfluxDB input: rows read back with InfluxQL ``GET /query``, oldest first.

InfluxDB 1.x answers ``/query`` natively and 2.x through its v1 compatibility API
(with a DBRP mapping), so a central vemonitor can forward one store into another.
Each input item reads one measurement filtered by its ``tags``; its rows keep
their own times (``epoch=ms``) and carry the tags as values (``site``, ``node``,
``serial``...), so an influxDb2 output writes them under the same identity.
Reading never raises into the engine: a server that is down is logged once,
counted, and reads return nothing until it is back.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import requests
from vemonitor_integrations.influxdb2.deadline import overall
from vemonitor_integrations.influxdb2.schema import InfluxConnector, InfluxInput
from vemonitor_integrations.influxdb2.scheme import fix_for, mismatch_after, tls_port_answer
from vemonitor_integrations.influxdb2.sink import make_session, snippet

from vemonitor.api import Context, Row, Value

log = logging.getLogger(__name__)

MAX_ROWS = 10_000  # rows per query; the engine asks again from the last time


def influxql(item: InfluxInput, after: float, limit: int) -> str:
    """Return the InfluxQL query of an item's rows with time > after (ms), oldest first."""
    fields = ", ".join(f'"{c}"' for c in item.fields()) or "*"
    where = [f"time > {math.floor(after * 1000)}ms"] if math.isfinite(after) else []
    where += [f"\"{key}\" = '{value}'" for key, value in sorted(item.tags.items())]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return (f'SELECT {fields} FROM "{item.measurement}"{clause} GROUP BY * '
            f"ORDER BY time ASC LIMIT {limit}")


MAX_ANSWER = 64 * 1024 * 1024  # bytes of one /query answer (MAX_ROWS rows of ~100 fields)


def load_answer(content: bytes) -> dict[str, Any]:
    """Return a ``/query`` answer's JSON object; raise ValueError on anything else
    (too large, nested too deep for the parser, not JSON, ``[]``: never a traceback)."""
    if len(content) > MAX_ANSWER:
        raise ValueError(f"answer of {len(content)} bytes (over {MAX_ANSWER})")
    try:
        answer = json.loads(content)
    except RecursionError:
        raise ValueError("answer nested too deep") from None
    if not isinstance(answer, dict):
        raise ValueError(f"not a /query answer (a JSON {type(answer).__name__})")
    return answer


def _row(columns: Any, values: Any, tags: Any, name: str) -> Row:
    """Return one row of a series; raise ValueError/TypeError/KeyError when it is not one."""
    record = dict(zip(columns, values, strict=True))
    stamp = float(record.pop("time"))
    if not math.isfinite(stamp):
        raise ValueError("time is not finite")
    data: dict[str, Value] = {**{k: v for k, v in dict(tags or {}).items() if v},
                              **{k: v for k, v in record.items() if v is not None}}
    return Row(stamp / 1000.0, name, data)


def parse_rows(answer: dict[str, Any], name: str) -> tuple[list[Row], int]:
    """Return the rows of a ``/query`` answer (series tags become values) and the number
    of rows that could not be read: a bad row costs itself, never the others."""
    rows: list[Row] = []
    bad = 0
    results = answer.get("results", [])
    for result in results if isinstance(results, list) else ():
        if not isinstance(result, dict):
            bad += 1
            continue
        if "error" in result:
            raise ValueError(str(result["error"])[:200])
        all_series = result.get("series", [])
        for series in all_series if isinstance(all_series, list) else ():
            try:
                columns, tags = series["columns"], series.get("tags")
                values_list = list(series.get("values", []))
            except (AttributeError, KeyError, TypeError):
                bad += 1
                continue
            for values in values_list:
                try:
                    rows.append(_row(columns, values, tags, name))
                except (ValueError, TypeError, KeyError, OverflowError):
                    bad += 1
    rows.sort(key=lambda row: row.time)
    return rows, bad


class InfluxSource:
    """An InfluxDB connector read by one or more input items."""

    def __init__(self, name: str, connector: InfluxConnector, ctx: Context) -> None:
        self.name = name
        self.connector = connector
        self.clock = ctx.clock
        self.items: dict[str, InfluxInput] = {}
        self.floors: dict[str, float] = {}
        self._session: requests.Session | None = None
        self._started_at: float | None = None
        self._failing = False
        self._stats = {"rows": 0, "errors": 0, "reconnects": 0, "invalid": 0}
        self._bad_logged_at = -math.inf

    def __repr__(self) -> str:
        return f"InfluxSource({self.name!r}, {self.connector.address()})"

    def subscribe(self, item: InfluxInput) -> None:
        """Attach an input item (before or after start)."""
        self.items[item.name] = item
        if self._started_at is not None:
            self._set_floor(item, self._started_at)

    def start(self) -> None:
        """Prepare the session; ``since: null`` means rows from now (minus ``lookback``) on."""
        self._session = make_session(self.connector)
        self._started_at = self.clock.now()
        for item in self.items.values():
            self._set_floor(item, self._started_at)

    def close(self) -> None:
        """Release the session (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def latest(self, input_name: str | None = None) -> tuple[dict[str, Value], float] | None:
        """Return the newest row's values and time (rows are forwarded, not sampled)."""
        rows = self.rows_since(-math.inf, input_name) if input_name else []
        return (dict(rows[-1].values), rows[-1].time) if rows else None

    def rows_since(self, after: float, input_name: str | None = None) -> list[Row]:
        """Return rows with time > after (and >= since), oldest first, at most MAX_ROWS."""
        names = [input_name] if input_name else list(self.items)
        rows: list[Row] = []
        for name in names:
            item = self.items.get(name) if name else None
            if item is not None:
                rows += self._query(item, max(after, self.floors.get(name, -math.inf) - 1e-3))
        self._stats["rows"] += len(rows)
        return rows[:MAX_ROWS]

    def stats(self) -> dict[str, Any]:
        """Return the rows read and errors met."""
        return {**self._stats, "available": not self._failing}

    def _set_floor(self, item: InfluxInput, started_at: float) -> None:
        self.floors[item.name] = (float(item.since) if item.since is not None
                                  else started_at - item.lookback)

    def _query(self, item: InfluxInput, after: float) -> list[Row]:
        """Run one query; on failure log the state change once and return no rows."""
        if self._session is None:
            return []
        url = self.connector.address() + "/query"
        params = {"db": item.db, "q": influxql(item, after, MAX_ROWS), "epoch": "ms"}
        timeout = self.connector.timeout_s()
        try:
            with overall(self._session, timeout) as deadline:  # the whole request, not a read
                response = self._session.get(url, params=params, timeout=(timeout, timeout))
            if tls_port_answer(response.status_code, response.text):
                raise ValueError(self._mismatch("http:// was sent to a TLS port (HTTP 400)"))
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}: "
                                 f"{snippet(response.text, self.connector.auth)}")
            rows, bad = parse_rows(load_answer(response.content), item.name)
        except requests.RequestException as err:
            if deadline.expired:
                return self._failed(item, url, ValueError(
                    f"no complete answer within {timeout:g} s (the whole request's deadline)"))
            reason = mismatch_after(err, url, timeout)
            return self._failed(item, url, ValueError(self._mismatch(reason)) if reason else err)
        except (ValueError, KeyError, TypeError) as err:
            return self._failed(item, url, err)
        if bad:
            self._stats["invalid"] += bad
            now = self.clock.now()
            if now - self._bad_logged_at >= 3600.0:  # one line an hour, the count goes on
                self._bad_logged_at = now
                log.warning("input %s: influxDb2 %s: %d rows of an answer could not be read "
                            "and are skipped (%d so far; said once an hour)", item.name, url,
                            bad, self._stats["invalid"])
        if self._failing:
            log.info("input %s: influxDb2 %s available again", item.name, url)
            self._failing = False
            self._stats["reconnects"] += 1
        return rows

    def _mismatch(self, reason: str) -> str:
        """Return the one line for a scheme mismatch, with the fix (scheme.py)."""
        return (f"scheme mismatch: {reason}; set appConnectors.influxDb2.{self.name}.host to "
                f"{fix_for(reason, self.connector.address())}")

    def _failed(self, item: InfluxInput, url: str, err: Exception) -> list[Row]:
        """Count a failed query; say it once per failing spell; return no rows."""
        self._stats["errors"] += 1
        if not self._failing:
            reason = err if isinstance(err, ValueError) else type(err).__name__
            log.warning("input %s: influxDb2 %s: %s", item.name, url, reason)
        self._failing = True
        return []
