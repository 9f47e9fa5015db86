"""Configuration errors: one line naming the file, the key path and what is wrong."""

from __future__ import annotations


class ConfigError(Exception):
    """A user mistake in a configuration; printed as one line, exit status 2."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.key = key

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key) if part)
        return f"{where}: {self.message}" if where else self.message
