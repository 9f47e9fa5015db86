"""Issue 14 item 7: a YAML alias bomb is one line and exit 2, at once, in bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vemonitor.config.yamlguard import MAX_BYTES, check_text
from vemonitor.errors import ConfigError


def _bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("layout", ["legacy", "hydra"])
def test_alias_bomb_is_refused_in_one_line(tmp_path: Path, layout: str) -> None:
    """A ~540-byte file with 9 levels of anchors (as a legacy vm_conf.yaml or a user's Hydra
    block in ~/.vemonitor): exit 2 within seconds (was: 100 % CPU, 831 MB after 30 s)."""
    home = tmp_path / "home"
    conf = home / ".vemonitor"
    if layout == "legacy":
        conf.mkdir(parents=True)
        (conf / "vm_conf.yaml").write_text(_bomb())
        args = ["--block", "Bomb"]
    else:
        (conf / "block").mkdir(parents=True)
        (conf / "block" / "Bomb.yaml").write_text("# @package block\nname: Bomb\n" + _bomb())
        args = ["block=Bomb"]
    env = dict(os.environ, HOME=str(home))
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                             *args], env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - began < 30
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "alias" in lines[0], result.stderr


def test_size_limit_and_normal_anchors() -> None:
    """A file over the size limit is refused; ordinary anchors (shared sections) are fine."""
    with pytest.raises(ConfigError, match="bytes"):
        check_text("a: " + "x" * (MAX_BYTES + 1))
    check_text("base: &b {host: h, port: 1}\none: *b\ntwo: *b\n")
    with pytest.raises(ConfigError, match="alias"):
        check_text(_bomb(7))
