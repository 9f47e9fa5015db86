"""`vemonitor-decode`: summary, JSON lines and text, from a file or stdin."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.shared import CAPTURES, require_shared
from vemonitor.decode_cli import main


def test_summary_of_bluesolar_capture(capsys) -> None:  # type: ignore[no-untyped-def]
    """--summary prints one JSON object with the README's counts."""
    path = require_shared(CAPTURES) / "bluesolar_75_15_fw123.dump"
    assert main([str(path), "--summary"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"bytes": path.stat().st_size, "blocks_valid": 247,
                       "blocks_rejected": {"framing": 1}, "hex_valid": 7, "hex_invalid": 0,
                       "snapshots": 247, "truncated_bytes": 0, "fields_out_of_range": {}}


def test_json_lines_from_stdin_via_installed_script() -> None:
    """`vemonitor-decode - --json` reads stdin and prints one JSON object per event."""
    data = (require_shared(CAPTURES) / "smartsolar_100_20_fw139.dump").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "vemonitor.decode_cli", "-", "--json"],
                          input=data, capture_output=True, check=True)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [line["type"] for line in lines]
    assert kinds.count("block") == 493 and kinds.count("snapshot") == 493
    assert kinds.count("hex") == 2
    snapshot = next(line for line in lines if line["type"] == "snapshot")
    assert snapshot["product"] == "SmartSolar MPPT 100/20"


def test_text_output_names_rejections_with_offsets(capsys) -> None:  # type: ignore[no-untyped-def]
    """The default output is one readable line per event, with byte offsets."""
    path = require_shared(CAPTURES) / "negative_bad_packets.dump"
    assert main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[0:") and "rejected framing" in out[0]


def test_missing_file_is_one_line_and_exit_2(capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A file that cannot be read gives one error line naming it, exit status 2."""
    assert main([str(tmp_path / "nope.dump")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.dump" in err[0]
