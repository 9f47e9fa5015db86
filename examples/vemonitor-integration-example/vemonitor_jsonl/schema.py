"""Configuration schema of a ``jsonl`` output item."""

from __future__ import annotations

from dataclasses import dataclass

from vemonitor.api import OutputItem


@dataclass
class JsonlOutputItem(OutputItem):
    """One JSON Lines file: where it is and how durable each write is."""

    # None -> <state_dir>/<output name>.jsonl; a relative path is relative to the state dir.
    path: str | None = None
    # fsync after each batch: a power cut then loses nothing the outbox already let go.
    fsync: bool = True

    def validate(self) -> None:
        """Reject an empty or directory-like path (no I/O: the file is opened by start())."""
        if self.path is not None and (not self.path.strip() or self.path.endswith(("/", "\\"))):
            raise ValueError(f"path must name a file (or be null), got {self.path!r}")
