"""Issue 14 items 9, 11 and 12: decode output escaped, HA diagnostics redacted, sim folder."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hw_sim.privdir import PREFIX, fresh_name, private_dir
from vemonitor.decode_cli import main
from vemonitor.vedirect.encoder import encode_block


def test_decode_text_mode_escapes_terminal_sequences(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Item 9: ESC/CSI/BEL bytes of a capture's HEX line never reach the terminal raw."""
    capture = tmp_path / "evil.dump"
    capture.write_bytes(encode_block([("V", "12800")]) + b":\x1b]0;pwned\x07\x1b[2J\x9b31m\n"
                        + encode_block([("V", "12801")]))
    assert main([str(capture)]) == 0
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\x9b"), out
    assert "\\x1b]0;pwned\\x07" in out


# Item 11 (HA diagnostics hide a USB adapter's serial) is tested with the component,
# on the bundle: tests/homeassistant/test_init.py::test_diagnostics_port_hides_any_adapters_usb_serial


def test_simulator_folder_is_private_unpredictable_and_removed(tmp_path: Path) -> None:
    """Item 12: not /tmp/vemonitor-sim-<pid>; created 0700 (fails if someone made it first),
    removed at exit; a folder owned by someone else or writable by others is refused."""
    name = fresh_name()
    assert Path(name).name.startswith(PREFIX) and str(os.getpid()) != Path(name).name[len(PREFIX):]
    target = tmp_path / "sim"
    with private_dir(str(target)) as folder:
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert not target.exists()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    from vemonitor.errors import ConfigError

    with pytest.raises(ConfigError, match="others can write"), private_dir(str(shared)):
        pass
    assert shared.exists()  # never removed: not ours


def test_demo_run_leaves_no_simulator_folder(tmp_path: Path) -> None:
    """Item 12: a run of the Demo block removes its simulator folder on exit."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, HOME=str(tmp_path / "home"), TMPDIR=str(tmp))
    result = subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                             "block=Demo", "duration=3", f"state_dir={tmp_path / 'state'}"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "frames ok" in result.stdout
    assert f"{tmp}/{PREFIX}" in result.stderr  # it was there while running
    assert not list(tmp.glob(PREFIX + "*"))
