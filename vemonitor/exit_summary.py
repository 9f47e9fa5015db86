"""The exit summary as a person reads it: counts, what went wrong, and where the files are.

The numbers use the start-up budget's words (a *send* is one batch handed to a sink:
``sends/hour`` here is comparable with the budget's ``sends`` per hour). Rows that
could not be delivered are said with the file they wait in, so a user knows they are
kept and where; ``missed`` ticks get their meaning once.
"""

from __future__ import annotations

from typing import Any

MISSED_NOTE = "  (missed: ticks without a recent complete device cycle: start-up, stale device)"
STATE_WORDS = {  # (rejected, down) -> how the output ended
    (True, True): "the sink refuses the data (see the error above for the fix)",
    (False, True): "the sink was failing at exit",
}


def summary_lines(summary: dict[str, Any], label: str = "") -> list[str]:
    """Return the lines of the exit summary (``label`` names a multirun job)."""
    head = f"summary of block {summary['block']}{f' [{label}]' if label else ''}"
    lines = [f"{head} ({summary['seconds']:g} s):"]
    lines += [_input_line(name, item) for name, item in summary["inputs"].items()]
    lines += [_device_line(name, item) for name, item in summary["devices"].items()]
    lines += [_output_line(name, item) for name, item in summary["outputs"].items()]
    if any(item["missed"] for item in summary["inputs"].values()):
        lines.append(MISSED_NOTE)
    lines += [f"  thread {thread}: restarted {count} times after unexpected errors"
              for thread, count in (summary.get("thread_restarts") or {}).items()]
    return lines + _file_lines(summary)


def _input_line(name: str, item: dict[str, Any]) -> str:
    dropped = f", dropped {item['dropped']}" if item["dropped"] else ""
    return (f"  input  {name}: {item['rows']} rows, {item['missed']} missed{dropped}"
            + _fields_text(item))


def _device_line(name: str, item: dict[str, Any]) -> str:
    rejected = item.get("rejected") or {}
    return (f"  device {name}: {item.get('frames_ok', 0)} frames ok, "
            f"{sum(rejected.values())} rejected {rejected or ''}".rstrip()
            + f", {item.get('reconnects', 0)} reconnects" + _fields_text(item))


def _fields_text(item: dict[str, Any]) -> str:
    """Return ``; fields left out: out_of_range VS 3, H15 3`` (single readings, rows kept)."""
    dropped = item.get("fields_dropped") or {}
    parts = [f"{reason} " + ", ".join(f"{label} {count}" for label, count in labels.items())
             for reason, labels in dropped.items()]
    return f"; fields left out: {'; '.join(parts)}" if parts else ""


def _output_line(name: str, item: dict[str, Any]) -> str:
    line = (f"  output {name}: {item['batches']} batches ({item['writes_per_hour']:g} "
            f"sends/hour), {item['points']} points, {item['errors']} errors")
    state = STATE_WORDS.get((bool(item.get("rejected")), bool(item.get("down"))))
    if state:
        line += f"; {state}"
    if item.get("dead_letter_batches"):
        line += f"; {item['dead_letter_batches']} batches dead-lettered (docs/operations.md)"
    waiting = item.get("outbox_rows")
    if waiting:
        line += f"; {waiting} rows wait in the outbox for the next run"
    return line


def _file_lines(summary: dict[str, Any]) -> list[str]:
    """Return where the local files are: stores, outboxes holding rows, summary.json."""
    files: list[tuple[str, str]] = []
    for name, item in summary["outputs"].items():
        if item.get("file"):
            files.append((f"output {name}, stored rows", item["file"]))
        if item.get("outbox") and item.get("outbox_rows"):
            files.append((f"output {name}, waiting rows", item["outbox"]))
    where = summary.get("files", {})
    if where.get("summary"):
        files.append(("this summary", where["summary"]))
    if not files:
        return []
    width = max(len(what) for what, _ in files)
    return ["files:", *(f"  {what:<{width}}  {path}" for what, path in files)]
