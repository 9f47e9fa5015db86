"""``vemonitor-decode``: decode a VE.Direct capture file (or stdin) and show what is in it."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.events import Block, Event, HexMessage, Rejected
from vemonitor.vedirect.fields import jsonable
from vemonitor.vedirect.snapshot import Snapshot, SnapshotAssembler

CHUNK = 65536


@dataclass
class Summary:
    """Counts over one decoded stream (the ``--summary`` object)."""

    bytes: int = 0
    blocks_valid: int = 0
    blocks_rejected: Counter[str] = field(default_factory=Counter)
    hex_valid: int = 0
    hex_invalid: int = 0
    snapshots: int = 0
    truncated_bytes: int = 0
    # Fields left out of valid blocks, per label: a value outside its physical range
    # costs that field, not the block (blocks_valid counts the block).
    fields_out_of_range: Counter[str] = field(default_factory=Counter)

    def count(self, item: Event | Snapshot) -> None:
        """Add one event or snapshot to the counts."""
        if isinstance(item, Block):
            self.blocks_valid += 1
            self.fields_out_of_range.update(label for label, _ in item.out_of_range)
        elif isinstance(item, HexMessage):
            if item.valid:
                self.hex_valid += 1
            else:
                self.hex_invalid += 1
        elif isinstance(item, Rejected):
            # A partial block at the end of a file is not a protocol error.
            if item.reason == "truncated":
                self.truncated_bytes += item.end - item.start
            else:
                self.blocks_rejected[item.reason] += 1
        else:
            self.snapshots += 1

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dict."""
        return {
            "bytes": self.bytes,
            "blocks_valid": self.blocks_valid,
            "blocks_rejected": dict(sorted(self.blocks_rejected.items())),
            "hex_valid": self.hex_valid,
            "hex_invalid": self.hex_invalid,
            "snapshots": self.snapshots,
            "truncated_bytes": self.truncated_bytes,
            "fields_out_of_range": dict(sorted(self.fields_out_of_range.items())),
        }


def iter_items(stream: IO[bytes], summary: Summary) -> Iterator[Event | Snapshot]:
    """Yield every event and snapshot of a byte stream, in stream order."""
    decoder = Decoder()
    assembler = SnapshotAssembler()
    while chunk := stream.read(CHUNK):
        summary.bytes += len(chunk)
        yield from _with_snapshots(decoder.feed(chunk), assembler)
    yield from _with_snapshots(decoder.finish(), assembler)
    yield from assembler.flush()


def _with_snapshots(events: list[Event], assembler: SnapshotAssembler) -> Iterator[Event | Snapshot]:
    """Yield each event followed by the snapshots it completes."""
    for event in events:
        yield event
        yield from assembler.feed([event])


def as_json(item: Event | Snapshot) -> dict[str, Any]:
    """Return one event or snapshot as a JSON object."""
    if isinstance(item, Block):
        return {"type": "block", "start": item.start, "end": item.end, "fields": item.fields,
                "out_of_range": dict(item.out_of_range)}
    if isinstance(item, HexMessage):
        return {"type": "hex", "start": item.start, "end": item.end, "valid": item.valid,
                "raw": item.raw.decode("latin-1")}
    if isinstance(item, Rejected):
        return {"type": "rejected", "reason": item.reason, "start": item.start, "end": item.end,
                "detail": item.detail}
    return {"type": "snapshot", "start": item.start, "end": item.end, "complete": item.complete,
            "product": item.product, "values": {k: jsonable(v) for k, v in item.values.items()},
            "out_of_range": item.out_of_range}


def as_text(item: Event | Snapshot) -> str:
    """Return one event or snapshot as a human-readable line (control bytes escaped)."""
    return escape(_text(item))


_ESCAPES = {c: f"\\x{c:02x}" for c in range(256) if not 0x20 <= c <= 0x7E}
_ESCAPES[ord("\\")] = "\\\\"


def escape(text: str) -> str:
    """Return ``text`` with every byte outside printable ASCII as ``\\xNN`` (and ``\\`` doubled).

    A capture is data from outside: an ESC or CSI byte in a HEX line would
    otherwise reach the terminal as an escape sequence (issue 14 item 9).
    """
    return text.translate(_ESCAPES)


def _text(item: Event | Snapshot) -> str:
    where = f"[{item.start}:{item.end}]"
    if isinstance(item, Block):
        return (f"{where} block " + " ".join(f"{k}={v}" for k, v in item.fields.items())
                + _left_out(dict(item.out_of_range)))
    if isinstance(item, HexMessage):
        state = "valid" if item.valid else "INVALID"
        return f"{where} hex {state} :{item.raw.decode('latin-1')}"
    if isinstance(item, Rejected):
        return f"{where} rejected {item.reason}" + (f" ({item.detail})" if item.detail else "")
    values = ", ".join(f"{k}={v}" for k, v in item.values.items())
    state = "" if item.complete else " (incomplete)"
    return f"{where} snapshot {item.product}{state}: {values}" + _left_out(item.out_of_range)


def _left_out(fields: dict[str, str]) -> str:
    """Return `` (out of range, left out: H7=999999999)`` for fields a block left out."""
    if not fields:
        return ""
    return " (out of range, left out: " + " ".join(f"{k}={v}" for k, v in fields.items()) + ")"


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="vemonitor-decode",
        description="Decode a VE.Direct capture: events and snapshots, JSON lines, or a summary.")
    parser.add_argument("file", help="capture file, or - for standard input")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="one JSON object per line")
    mode.add_argument("--summary", action="store_true", help="one JSON object with the counts")
    return parser


def run(args: argparse.Namespace, stream: IO[bytes], out: IO[str]) -> None:
    """Decode ``stream`` and write what ``args`` asks for to ``out``."""
    summary = Summary()
    for item in iter_items(stream, summary):
        summary.count(item)
        if args.json:
            out.write(json.dumps(as_json(item)) + "\n")
        elif not args.summary:
            out.write(as_text(item) + "\n")
    if args.summary:
        out.write(json.dumps(summary.as_dict()) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit status (2 for a file that cannot be read)."""
    args = build_parser().parse_args(argv)
    try:
        if args.file == "-":
            run(args, sys.stdin.buffer, sys.stdout)
        else:
            with open(args.file, "rb") as stream:
                run(args, stream, sys.stdout)
    except BrokenPipeError:  # e.g. piped into head: not an error
        return 0
    except OSError as err:
        print(f"vemonitor-decode: cannot read {args.file}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
