"""Every bad configuration gives one line naming the file and key path, exit status 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vemonitor.cli import main

GOOD_BLOCK = """
appBlocks:
  - name: mon
    app: batSerialMonitor
    inputs:
      serial:
        - name: bmv700
          source: bmv700
          time_interval: 1
          columns: [V, I]
    outputs:
      sqlite:
        - name: store
          time_interval: 1
          cache_interval: 5
"""
CONNECTORS = """
appConnectors:
  serial:
    bmv700:
      serialPort: /tmp/vemonitor-test-nonexistent/ttyVE_bmv700
"""


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run `vemonitor args`, expect exit status 2, return the single stderr line."""
    with pytest.raises(SystemExit) as exited:
        main(["duration=2", *args])  # a case that wrongly validates must not run for long
    assert exited.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("vemonitor: config error: ")
    return lines[0]


def _legacy(tmp_path: Path, conf: str, **others: str) -> Path:
    """Write a legacy config directory: vm_conf.yaml plus other files."""
    folder = tmp_path / "legacy"
    folder.mkdir(exist_ok=True)
    (folder / "vm_conf.yaml").write_text(textwrap.dedent(conf))
    for name, text in others.items():
        (folder / name.replace("__", ".")).write_text(textwrap.dedent(text))
    return folder


HYDRA_CASES = [
    # (overrides, text the message must contain)
    (["block=Nope"], "unknown block 'Nope' (available: BatteryAndPannelsMonitor, BatteryMonitor, Demo"),
    (["duration=abc"], "Error merging override duration=abc: Value 'abc' of type 'str' could "
                       "not be converted to Float (full_key: duration)"),
    (["duration=-5"], "duration: must be > 0"),
    (["speed=0"], "speed: must be > 0"),
    (["speed=5000"], "speed: must be > 0 and <= 1000"),
    (["metrics.port=notaport"], "metrics.port"),
    (["block.inputs.serial.bmv700.time_interval=0"],
     "block.inputs.serial.bmv700.time_interval: must be between 1 and 86400"),
    (["block.inputs.serial.bmv700.time_interval=abc"],
     "block.inputs.serial.bmv700.time_interval: Value 'abc'"),
    (["block.inputs.serial.bmv700.source=ghost"],
     "block.inputs.serial.bmv700.source: unknown source 'ghost' (appConnectors.serial: bmv700, mppt)"),
    (["block.outputs.sqlite.store.cache_interval=0"],
     "block.outputs.sqlite.store.cache_interval: must be between 1 and 3600"),
    (["+block.outputs.nosuch.x.time_interval=1"],
     "block.outputs.nosuch: unknown integration 'nosuch' (available: "),
    (["+block.inputs.serial.bmv700.bogus=1"], "block.inputs.serial.bmv700.bogus: unknown key"),
    (["+block.outputs.sqlite.store.columns={ghost:[V]}"],
     "block.outputs.sqlite.store.columns.ghost: unknown input 'ghost'"),
    (["block.inputs.serial.bmv700.columns=V"],
     "conf/block/Demo.yaml: block.inputs.serial.bmv700.columns: Invalid value assigned"),
    (["block.inputs.serial.bmv700.nosuch=1"], "To append to your config use +"),
    (["+block.inputs.serial.bmv700.ref_cols=[[a]]"],
     "block.inputs.serial.bmv700.ref_cols[0]: each ref_cols entry must be [standard_name, column]"),
    (["+block.outputs.console.screen.mode=fancy"], "fancy"),
    (["+block.inputs.sqlite.x.source=y"], "integration 'sqlite' provides no input"),
    (["config_dir=/nonexistent/vemonitor"], "config_dir: /nonexistent/vemonitor does not exist"),
    (["block.max_data_points=0"], "block.max_data_points: must be >= 1 and <= 1e+07"),
    # The cache sections are typed and range-checked by their schema (CacheConfig,
    # RedisCacheConfig), also when given whole on the command line (OmegaConf #1360).
    (["block.cache={domain: redis, source: local, max_data_points: 0}"],
     "block.cache.max_data_points: must be between 1 and 10000000, got 0"),
    (["block.redis_cache={source: local, max_data_points: 2.5}"],
     "block.redis_cache.max_data_points: Value '2.5' of type 'float' could not be converted"),
    (["block.redis_cache={source: local, points: 5}"],
     "block.redis_cache.points: unknown key (allowed: source, max_data_points)"),
    (["block.cache={domain: nosuch, source: local}"], "block.cache.domain: unknown integration"),
    (["block.cache={source: local}"], "block.cache.domain: missing required value"),
]


@pytest.mark.parametrize(("overrides", "expected"), HYDRA_CASES,
                         ids=[" ".join(case[0]) for case in HYDRA_CASES])
def test_bad_override(capsys: pytest.CaptureFixture[str], overrides: list[str],
                      expected: str) -> None:
    """Bad command-line overrides are reported with the key path."""
    assert expected in _run(capsys, *overrides)


LEGACY_CASES = [
    # (vm_conf.yaml, other files, text the message must contain)
    ("Imports: ['sub/x.yaml']" + GOOD_BLOCK, {}, "Imports[0]: invalid import name 'sub/x.yaml'"),
    ("Imports: ['../x.yaml']" + GOOD_BLOCK, {}, "Imports[0]: invalid import name '../x.yaml'"),
    ("Imports: ['x.json']" + GOOD_BLOCK, {}, "Imports[0]: invalid import name 'x.json'"),
    ("Imports: ['_x.yaml']" + GOOD_BLOCK, {}, "Imports[0]: invalid import name '_x.yaml'"),
    ("Imports: ['missing.yaml']" + GOOD_BLOCK, {},
     "Imports[0]: imported file 'missing.yaml' not found"),
    ("Imports: 'c.yaml'" + GOOD_BLOCK, {}, "Imports: Imports must be a list of file names"),
    ("appBlocks: [\n  - name: x\n    inputs: {serial: [}\n", {}, "vm_conf.yaml: line "),
    (CONNECTORS, {}, "appBlocks: appBlocks must be a non-empty list"),
    (CONNECTORS + GOOD_BLOCK.replace("          cache_interval: 5",
                                     "          cache_interval: 5\n        - name: store"),
     {}, "duplicate output name 'store'"),
    (CONNECTORS + GOOD_BLOCK.replace("          columns: [V, I]", "          columns: [V, I]\n"
                                     "        - name: bmv700\n          source: bmv700"),
     {}, "block.inputs: duplicate input name 'bmv700'"),
    ("Imports: ['c.yaml']\n" + CONNECTORS + GOOD_BLOCK, {"c__yaml": CONNECTORS},
     "'appConnectors' is defined in both"),
    (CONNECTORS + GOOD_BLOCK.replace("    app: batSerialMonitor",
                                     "    app: batSerialMonitor\n    args: {batteryBanks: p1}"),
     {}, "batteryBanks: block args name battery bank 'p1' but there is no batteryBanks section"),
    (CONNECTORS + GOOD_BLOCK.replace("    app: batSerialMonitor", "    inptus: {}"), {},
     "appBlocks[0].inptus: unknown key"),
    (CONNECTORS.replace("      serialPort", "      active: false\n      serialPort") + GOOD_BLOCK,
     {}, "source: connector 'bmv700' is used but not active"),
    (CONNECTORS.replace("serialPort: /tmp/vemonitor-test-nonexistent/ttyVE_bmv700",
                        "baud: 19200") + GOOD_BLOCK,
     {}, "appConnectors.serial.bmv700: needs serialPort or serialTest"),
    (CONNECTORS.replace("serialPort: /tmp/vemonitor-test-nonexistent/ttyVE_bmv700",
                        "serialTest: {t: {typeTest: value, value: '0x203'}}") + GOOD_BLOCK,
     {}, "a 'value' test needs key and value"),
    (CONNECTORS.replace("serialPort: /tmp/vemonitor-test-nonexistent/ttyVE_bmv700",
                        "serialTest: {t: {typeTest: regex, key: PID}}") + GOOD_BLOCK,
     {}, "appConnectors.serial.bmv700.serialTest.t.typeTest"),
    (CONNECTORS.replace("/tmp/vemonitor-test-nonexistent", "${VEMONITOR_TEST_UNSET_VAR}")
     + GOOD_BLOCK, {}, "environment variable VEMONITOR_TEST_UNSET_VAR is not set"),
    (CONNECTORS.replace("serialPort: /tmp", "baud: 9600\n      serialPort: /tmp") + GOOD_BLOCK,
     {}, "VE.Direct runs at 19200 baud"),
    (CONNECTORS + GOOD_BLOCK.replace("    app: batSerialMonitor",
                                     "    app: batSerialMonitor\n    redis_cache: {source: x}"),
     {}, "block.redis_cache"),
    (CONNECTORS + GOOD_BLOCK.replace("time_interval: 1\n          columns",
                                     "time_interval: 100000\n          columns"),
     {}, "block.inputs.serial[0].time_interval: must be between 1 and 86400"),
    (CONNECTORS + GOOD_BLOCK.replace("time_interval: 1\n          columns",
                                     "time_interval: fast\n          columns"),
     {}, "block.inputs.serial[0].time_interval: Value 'fast'"),
    (CONNECTORS + GOOD_BLOCK.split("    inputs:")[0], {},
     "block.inputs: a block needs at least one input"),
]


@pytest.mark.parametrize(("conf", "others", "expected"), LEGACY_CASES,
                         ids=[f"legacy-{i}" for i in range(len(LEGACY_CASES))])
def test_bad_legacy_config(capsys: pytest.CaptureFixture[str], tmp_path: Path, conf: str,
                           others: dict[str, str], expected: str) -> None:
    """Bad legacy vm_conf.yaml sets are reported with the file and key path."""
    folder = _legacy(tmp_path, conf, **others)
    line = _run(capsys, f"config_dir={folder}", "block=mon")
    assert expected in line
    assert str(folder) in line or "config_dir" in line


def test_legacy_unknown_block_lists_blocks(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    """Asking a legacy set for a block it lacks lists shipped and legacy blocks."""
    folder = _legacy(tmp_path, CONNECTORS + GOOD_BLOCK)
    line = _run(capsys, f"config_dir={folder}", "block=other")
    assert "unknown block 'other'" in line and "mon (legacy)" in line
