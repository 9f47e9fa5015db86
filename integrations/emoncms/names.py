"""EmonCms's naming rules for nodes and inputs, checked before anything is sent.

emoncms keeps only Unicode letters and digits, ``_``, ``-``, ``.`` and
whitespace in node and input names (``preg_replace('/[^\\p{N}\\p{L}_\\s\\-.]/u', '')``
in its input model), silently creating an input under the stripped name, and
emoncms.org refuses nodes over 16 bytes and inputs over 64 bytes. We accept a
plain space but not tabs or newlines. A name the server would change or drop is
reported and not sent: EmonCms cleans node and input names before looking them up
(``odd/names`` is the node ``oddnames`` on every post, measured on 11.16.8), so
a cleaned name would silently merge with another (``bmv/1`` and ``bmv1``) and
the feeds would not be named as the configuration says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from vemonitor.api import OutputItem

if TYPE_CHECKING:
    from vemonitor_integrations.emoncms.schema import EmoncmsConnector

NODE_MAX_EMONCMS_ORG = 16
NAME_MAX_EMONCMS_ORG = 64
ALLOWED_PUNCTUATION = frozenset("_-. ")
# A column the seed lists in outputs but the core never sends (the row's time).
IGNORED_COLUMNS = frozenset({"time_ref"})


@lru_cache(maxsize=4096)
def name_problem(name: str, max_bytes: int | None) -> str | None:
    """Return why emoncms would change or drop ``name``, or None when it keeps it as is."""
    if not name.strip():
        return "is empty"
    bad = sorted({c for c in name if not (c.isalnum() or c in ALLOWED_PUNCTUATION)})
    if bad:
        return (f"contains {''.join(bad)!r}; emoncms keeps only letters, digits, "
                "'_', '-', '.' and space")
    size = len(name.encode("utf-8"))  # emoncms.org checks strlen(), i.e. bytes
    if max_bytes is not None and size > max_bytes:
        return (f"is {size} bytes long, over the limit of {max_bytes} (emoncms.org's; a "
                "self-hosted server takes longer names: set max_node_length/max_name_length)")
    return None


def check_names(item: OutputItem, input_columns: Mapping[str, Sequence[str]],
                connector: EmoncmsConnector | None = None) -> list[str]:
    """Return one warning per node or input name of ``item`` that emoncms would not keep.

    ``input_columns`` maps each input of the block to the columns it produces;
    the item's own ``columns`` (and ``ref_cols`` renaming) take precedence. The
    core may call this at validation time; the sink calls it again in
    ``start()`` with what the item alone names. No I/O.
    """
    prefix = connector.node_prefix if connector else ""
    node_max = connector.max_node_length if connector else NODE_MAX_EMONCMS_ORG
    name_max = connector.max_name_length if connector else NAME_MAX_EMONCMS_ORG
    renamed = {column: standard for standard, column in item.ref_cols}
    warnings: list[str] = []
    for input_name in item.columns or input_columns:
        node = f"{prefix}{input_name}"
        problem = name_problem(node, node_max)
        if problem:
            warnings.append(node_warning(item.name, node, problem))
            continue
        columns = item.columns.get(input_name) or input_columns.get(input_name, ())
        for name in _sent_names(columns, renamed):
            problem = name_problem(name, name_max)
            if problem:
                warnings.append(input_warning(item.name, node, name, problem))
    return warnings


def node_warning(output: str | None, node: str, problem: str) -> str:
    """Return the warning for a node name that is not sent."""
    return f"emoncms output '{output}': node {node!r} {problem}: its rows are not sent"


def input_warning(output: str | None, node: str, name: str, problem: str) -> str:
    """Return the warning for an input name that is not sent."""
    return (f"emoncms output '{output}': input {name!r} of node {node!r} {problem}: "
            "its values are not sent")


def _sent_names(columns: Iterable[str], renamed: Mapping[str, str]) -> list[str]:
    """Return the input names a list of columns becomes once renamed, in order, once each."""
    names = (renamed.get(c, c) for c in columns if c not in IGNORED_COLUMNS)
    return list(dict.fromkeys(names))
