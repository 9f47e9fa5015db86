"""Bounded YAML: a configuration file cannot pin a core or fill memory (issue 14 item 7).

A 538-byte ``vm_conf.yaml`` with 9 levels of anchors (the "billion laughs")
expands to billions of nodes when validated, copied or merged. Before a user's
YAML file is loaded, :func:`check` refuses

* a file larger than :data:`MAX_BYTES` (a real configuration is a few KB);
* a document whose tree, with every alias expanded, would exceed
  :data:`MAX_NODES` nodes. PyYAML's composer keeps an alias as a reference to
  one node, so the expanded size is computed on the node graph, memoized, in
  time linear in the file: the check itself cannot explode.

Either is a ConfigError (one line naming the file, exit 2). Anchors and aliases
used normally (a few shared sections) stay far below the limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vemonitor.errors import ConfigError

if TYPE_CHECKING:
    import yaml

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000


def check_file(path: Path) -> None:
    """Raise ConfigError when ``path`` is too large or expands beyond the node limit."""
    try:
        size = path.stat().st_size
    except OSError:
        return  # reading it reports the problem in its own words
    if size > MAX_BYTES:
        raise ConfigError(f"file is {size} bytes, more than the {MAX_BYTES} a configuration "
                          f"may have", file=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    check_text(text, str(path))


def check_text(text: str, file: str | None = None) -> None:
    """Raise ConfigError when YAML ``text`` expands beyond :data:`MAX_NODES` nodes."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise ConfigError(f"more than {MAX_BYTES} bytes of YAML", file=file)
    import yaml  # here: the daemon imports this module (config.build) but reads no YAML

    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return  # the loader reports syntax errors with their position
    sizes: dict[int, int] = {}
    total = sum(_expanded(node, sizes) for node in nodes if node is not None)
    if total > MAX_NODES:
        raise ConfigError(f"YAML expands to more than {MAX_NODES} nodes through anchors and "
                          f"aliases (an alias bomb?); refused", file=file)


def _expanded(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Return the node count of ``node`` with aliases expanded (memoized by node identity)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_NODES + 1  # a cycle (a recursive alias) counts as too large
    import yaml

    count = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            count += _expanded(child, sizes)
            if count > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            count += _expanded(key, sizes) + _expanded(value, sizes)
            if count > MAX_NODES:
                break
    sizes[id(node)] = count
    return count
