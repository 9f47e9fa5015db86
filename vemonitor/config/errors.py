"""Configuration errors: one line naming the file, the key path and what is wrong.

The class lives in :mod:`vemonitor.errors` with the rest of the taxonomy.
"""

from __future__ import annotations

from vemonitor.errors import ConfigError

__all__ = ["ConfigError"]
