"""Where vemonitor keeps its state by default (light: imported by the compose child too)."""

from __future__ import annotations

import os
from pathlib import Path

# The packaged Hydra config: the repo folder conf/, installed under the project's name.
CONFIG_PACKAGE = "vemonitor_conf"


def default_state_dir() -> Path:
    """Return $XDG_STATE_HOME/vemonitor, or ~/.local/state/vemonitor."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "vemonitor"
