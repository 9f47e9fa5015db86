"""Key names, value encoding and the server-side scripts of both structures.

HmapTimeSeries (compatible with vemonitor_m8), for ``redis_node`` R and an input N:

* SET ``R``            members ``R_N`` (one per input written);
* HASH ``R_N``         field = epoch seconds (integer string), value = JSON object of the row;
* ZSET ``R_N:idx``     member = score = the same epoch seconds (vemonitor's addition).

The ZSET is what makes trimming cheap: the original ran HKEYS on every write to
find the oldest fields (O(max_items) per row); here ZCARD tells whether the hash
overflows and ZPOPMIN names exactly the fields to HDEL.

Stream: one stream ``<stream_prefix>N`` per input, entry id ``<row time in ms>-0``,
one field per value, each value JSON-encoded (``12.5``, ``true``, ``"ON"``, ``null``).

Each batch is one EVALSHA running a Lua script: one round trip, atomic (no
half-trimmed hash), and the database-ownership marker is checked (and created
on an empty db) in the same step, so a server that restarted empty is claimed
again instead of being written unmarked.

Redis Cluster (:class:`Names` with ``cluster=True``): a script may only touch keys of
one hash slot, so every name carries a hash tag ``{...}`` that puts the keys one
script writes together: ``{R}`` (the SET), ``{R}_N`` and ``{R}_N:idx`` and the meta
hash ``{R}:vemonitor_meta``; a stream is ``{<prefix>N}`` with its own
``{<prefix>N}:vemonitor_meta`` (one script per stream); a cache ZSET is
``{<namespace>:N}``. The cluster scripts mark their meta key without the
empty-database check (a cluster has one shared keyspace; DBSIZE is per node).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass

from vemonitor.api import Row, __version__, parse_fields, parse_values
from vemonitor.vedirect.fields import Value

FOREIGN_DB = "vemonitor_foreign_db"
SEED_APP = "vemonitor_m8"  # vemonitor_meta.controled_by of a db the seed's reader accepts
META_KEY = "vemonitor_meta"  # the same name as integrations/redis/client.py's
CHUNK = 500  # arguments unpacked per Lua call, far below Lua's C-stack limit (~8000)


def hmap_key(redis_node: str, node: str) -> str:
    """Return the HASH of one input (also the SET member), as the original named it."""
    return f"{redis_node}_{node}"


def index_key(redis_node: str, node: str) -> str:
    """Return the ZSET indexing the HASH's timestamps."""
    return f"{hmap_key(redis_node, node)}:idx"


def stream_key(prefix: str, node: str) -> str:
    """Return the stream of one input."""
    return f"{prefix}{node}"


@dataclass(frozen=True)
class Names:
    """Key names of one connector: the original's, or hash-tagged ones on a cluster."""

    cluster: bool = False
    seed: bool = False  # a db shared with vemonitor_m8 (connector ``db_selector``)

    def tag(self, name: str) -> str:
        """Return ``name`` as a hash tag on a cluster (its slot), as is otherwise."""
        return f"{{{name}}}" if self.cluster else name

    def meta(self, group: str) -> str:
        """Return the ownership marker a script writing ``group``'s keys checks."""
        return f"{{{group}}}:{META_KEY}" if self.cluster else META_KEY

    def hmap_set(self, redis_node: str) -> str:
        """Return the SET of the hashes of ``redis_node``."""
        return self.tag(redis_node)

    def hmap(self, redis_node: str, node: str) -> str:
        """Return the HASH of one input."""
        return f"{self.tag(redis_node)}_{node}" if self.cluster else hmap_key(redis_node, node)

    def index(self, redis_node: str, node: str) -> str:
        """Return the ZSET indexing the HASH's timestamps."""
        return f"{self.hmap(redis_node, node)}:idx"

    def stream(self, prefix: str, node: str) -> str:
        """Return the stream of one input."""
        return self.tag(stream_key(prefix, node))

    def stream_meta(self, prefix: str, node: str) -> str:
        """Return the marker the stream's script checks (the db's own off a cluster)."""
        return self.meta(stream_key(prefix, node))

    def script(self, lua: str) -> str:
        """Return a write script's Lua text for this keyspace: no db-wide check on a cluster
        (one shared keyspace), the seed's marker on a db shared with vemonitor_m8."""
        if self.cluster:
            return lua.replace(_CLAIM, _CLAIM_CLUSTER)
        return script(lua, self.seed)


def row_node(row: Row) -> str:
    """Return the node a row is written under: its input, plus the site/node it carries.

    A central input (MQTT, influxDb2) forwards many sites' rows under one input name;
    each keeps its own hash/stream ``<input>/<site>/<node>`` so two sites' rows of the
    same second do not overwrite each other (a hash field is one row per second).
    """
    site, node = row.values.get("site"), row.values.get("node")
    if isinstance(node, str) and node:
        return f"{row.input}/{site}/{node}" if isinstance(site, str) and site else \
            f"{row.input}/{node}"
    return row.input


def epoch_field(time: float) -> str:
    """Return a row time as the HASH field: whole epoch seconds."""
    return str(math.floor(time))


def stream_ms(time: float) -> int:
    """Return a row time as the stream id's milliseconds."""
    return round(time * 1000)


def clean(value: Value) -> Value:
    """Return the value JSON can carry: NaN and infinities become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


# JSON text of a hash value: vemonitor's compact form, or the seed's (ve_utils'
# UJson.dumps_json is json.dumps with its default separators), byte for byte.
JSON_SEPARATORS: dict[str, tuple[str, str]] = {"compact": (",", ":"),
                                               "vemonitor_m8": (", ", ": ")}


def encode_values(values: Mapping[str, Value], style: str = "compact") -> str:
    """Return a row's values as JSON text (compact, or spaced as vemonitor_m8 wrote it)."""
    return json.dumps({k: clean(v) for k, v in values.items()},
                      separators=JSON_SEPARATORS[style], allow_nan=False)


def decode_values(text: str) -> dict[str, Value]:
    """Return the values of a JSON object written by :func:`encode_values`.

    Data from outside: raises vemonitor.BadRow (a ValueError) for
    non-finite numbers, nesting, wrong types or oversized rows.
    """
    return parse_values(text)


def encode_fields(values: Mapping[str, Value]) -> list[str]:
    """Return a row's values as flat stream field/value pairs, each value JSON-encoded."""
    flat: list[str] = []
    for key, value in values.items():
        flat += [key, json.dumps(clean(value), allow_nan=False)]
    return flat


def decode_fields(fields: Mapping[str, str]) -> dict[str, Value]:
    """Return the values of a stream entry written by :func:`encode_fields` (checked)."""
    return parse_fields(fields)


def one_per_stamp(rows: Iterable[Row], stamp: Callable[[float], Hashable]) -> list[Row]:
    """Return rows oldest first, one per stamp of their time (the last given wins)."""
    by_stamp: dict[Hashable, Row] = {}
    for row in sorted(rows, key=lambda r: r.time):
        by_stamp[stamp(row.time)] = row
    return list(by_stamp.values())


# Shared prologue: refuse a db another application uses; mark an empty one as ours.
_CLAIM = f"""
if redis.call('EXISTS', KEYS[1]) == 0 then
  if redis.call('DBSIZE') > 0 then
    return redis.error_reply('{FOREIGN_DB}')
  end
  redis.call('HSET', KEYS[1], 'app', 'vemonitor', 'created', ARGV[1])
end
"""

# The same prologue for a db shared with vemonitor_m8 (connector ``db_selector``): the
# seed's reader accepts a non-empty db only when vemonitor_meta.controled_by is
# 'vemonitor_m8' (RedisApi.is_db_meta), so that is the marker written and checked.
_CLAIM_SEED = f"""
if redis.call('HGET', KEYS[1], 'controled_by') ~= '{SEED_APP}' then
  if redis.call('DBSIZE') > 0 then
    return redis.error_reply('{FOREIGN_DB}')
  end
  redis.call('HSET', KEYS[1], 'controled_by', '{SEED_APP}', 'version', '{__version__}',
             'app', 'vemonitor', 'created', ARGV[1])
end
"""


def script(lua: str, seed: bool) -> str:
    """Return a write script with the claim of a seed-shared db (``seed``) or vemonitor's own."""
    return lua.replace(_CLAIM, _CLAIM_SEED, 1) if seed else lua


# On a cluster: mark the slot's meta key; keys of other applications are not ours to count.
_CLAIM_CLUSTER = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'app', 'vemonitor', 'created', ARGV[1])
end
"""

# KEYS: meta, the SET, then (hash, idx) per input. ARGV: created, max_items, then per
# input: count, count x (epoch seconds, json). Returns the number of fields trimmed.
HMAP_WRITE = _CLAIM + f"""
local max = tonumber(ARGV[2])
local pos = 3
local trimmed = 0
for k = 3, #KEYS, 2 do
  local hash, idx = KEYS[k], KEYS[k + 1]
  local count = tonumber(ARGV[pos])
  pos = pos + 1
  redis.call('SADD', KEYS[2], hash)
  for first = 0, count - 1, {CHUNK} do
    local h, z = {{}}, {{}}
    for i = first, math.min(first + {CHUNK}, count) - 1 do
      local ts, js = ARGV[pos + 2 * i], ARGV[pos + 2 * i + 1]
      h[#h + 1] = ts; h[#h + 1] = js
      z[#z + 1] = ts; z[#z + 1] = ts
    end
    redis.call('HSET', hash, unpack(h))
    redis.call('ZADD', idx, unpack(z))
  end
  pos = pos + 2 * count
  local over = redis.call('ZCARD', idx) - max
  while over > 0 do
    local popped = redis.call('ZPOPMIN', idx, math.min(over, {CHUNK}))
    local names = {{}}
    for i = 1, #popped, 2 do names[#names + 1] = popped[i] end
    redis.call('HDEL', hash, unpack(names))
    trimmed = trimmed + #names
    over = over - #names
  end
end
return trimmed
"""

# KEYS: meta, then one stream per input. ARGV: created, max_items, then per stream:
# count, count x (ms, nfields, field, value, ...). Entries not newer than the stream's
# top are already written (a retry) and skipped. Returns the number skipped.
STREAM_WRITE = _CLAIM + """
local max = ARGV[2]
local pos = 3
local skipped = 0
for k = 2, #KEYS do
  local key = KEYS[k]
  local count = tonumber(ARGV[pos])
  pos = pos + 1
  local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  local last = -1
  if #top > 0 then last = tonumber(string.match(top[1][1], '^(%d+)-')) end
  for i = 1, count do
    local ms = tonumber(ARGV[pos])
    local n = tonumber(ARGV[pos + 1])
    if ms > last then
      redis.call('XADD', key, 'MAXLEN', '~', max, ARGV[pos] .. '-0',
                 unpack(ARGV, pos + 2, pos + 1 + 2 * n))
      last = ms
    else
      skipped = skipped + 1
    end
    pos = pos + 2 + 2 * n
  end
end
return skipped
"""

# KEYS: meta, the input's cache ZSET. ARGV: created, max, time, member.
# Returns how many old rows were dropped to stay within max.
CACHE_ADD = _CLAIM + """
redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[3], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[2]) - 1)
"""
