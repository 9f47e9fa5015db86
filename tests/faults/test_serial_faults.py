"""Serial faults under a running engine: zero crashes, only clean frames used, availability right."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from hw_sim import FaultConfig, Simulator
from tests.engine.helpers import Recorder, block_config, registry_with_recorders, running
from vemonitor.clock import SystemClock
from vemonitor.config.build import build_run
from vemonitor.engine import Engine
from vemonitor.vedirect import Decoder


def test_storm_of_faults_uses_only_clean_frames(tmp_path: Path) -> None:
    """5 % corrupted, HEX after every block and mid-block, noise bursts, split writes, stalls,
    unplug/replug every few seconds: rows only ever carry values a clean frame carried."""
    recorders: dict[str, Recorder] = {}
    inputs = {"bmv": {"source": "bmv700", "time_interval": 1, "columns": ["V", "I", "CE"]},
              "solar": {"source": "mppt", "time_interval": 1, "columns": ["VPV", "PPV"]}}
    outputs = {"record": {"out": {"time_interval": 1, "cache_interval": 1}}}
    config = block_config(tmp_path / "sim", inputs, outputs, tmp_path / "state", stale_after=3)
    faults = FaultConfig(corrupt=0.05, hex=1.0, hex_mid=0.3, noise=0.05, noise_max=40,
                         split=0.3, stall=0.01, stall_seconds=4, seed=11)
    with running(config, recorders, ["bmv700", "mppt"], tmp_path / "sim", speed=3,
                 faults=faults) as (engine, sim):
        stop = threading.Event()

        def unplugger() -> None:
            while not stop.wait(4.0):
                sim.unplug("bmv700", seconds=3.0)

        thread = threading.Thread(target=unplugger, daemon=True)
        thread.start()
        engine.run(60)
        stop.set()
        history = {name: list(device.history) for name, device in sim.devices.items()}
    clean = {name: {(label, value) for block in blocks if block.clean
                    for label, value in block.records} for name, blocks in history.items()}
    rows = recorders["out"].rows()
    assert len(rows) > 40
    for row in rows:
        device = "bmv700" if row.input == "bmv" else "mppt"
        for label, value in row.values.items():
            wire = str(round(value * 1000)) if label in ("V", "I", "CE", "VPV") else str(value)
            assert (label, wire) in clean[device], (row, label)
    summary = engine.summary()
    assert summary["devices"]["bmv700"]["reconnects"] >= 3
    assert summary["inputs"]["bmv"]["missed"] > 0  # unplugged spans made no rows


def test_two_devices_swapping_ports_are_followed(tmp_path: Path) -> None:
    """A BMV and an MPPT swap ports: each connector drops the wrong device and finds its own."""
    sim_dir = tmp_path / "sim"
    recorders: dict[str, Recorder] = {}
    registry = registry_with_recorders(recorders)
    glob = f"{sim_dir}/ttyVE_*"
    config = {
        "block": {"name": "Swap", "inputs": {"serial": {
            "house": {"source": "house", "columns": ["SOC"]},
            "solar": {"source": "solar", "columns": ["PPV"]}}},
            "outputs": {"record": {"out": {"cache_interval": 1}}}},
        "appConnectors": {"serial": {
            "house": {"serialTest": {"t": {"typeTest": "value", "key": "PID", "value": "0x203"}},
                      "scan_globs": [glob], "rescan_after": 2},
            "solar": {"serialTest": {"t": {"typeTest": "columns", "columns": ["VPV"]}},
                      "scan_globs": [glob], "rescan_after": 2}}},
        "state_dir": str(tmp_path / "state"), "stale_after": 3,
    }
    spec = build_run(config, registry)
    before = Simulator(["bmv700:a", "mppt:b"], sim_dir)
    before.__enter__()
    engine = Engine(spec, registry, SystemClock())
    runner = threading.Thread(target=engine.run, args=(40,), daemon=True)
    runner.start()
    time.sleep(4)
    assert engine.sources["vedirect:house"].stats()["port"].endswith("ttyVE_a")
    before.__exit__(None, None, None)
    swapped_at = time.time()
    with Simulator(["mppt:a", "bmv700:b"], sim_dir):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                engine.sources["vedirect:house"].stats()["port"] == f"{sim_dir}/ttyVE_b"
                and engine.sources["vedirect:solar"].stats()["port"] == f"{sim_dir}/ttyVE_a"):
            time.sleep(0.2)
        time.sleep(3)
        engine.stop()
        runner.join(30)
    assert engine.sources["vedirect:house"].stats()["port"] == f"{sim_dir}/ttyVE_b"
    assert engine.sources["vedirect:solar"].stats()["port"] == f"{sim_dir}/ttyVE_a"
    rows = recorders["out"].rows()
    # Never a row of the wrong device: house rows carry SOC only, solar rows PPV only.
    assert all(set(r.values) == {"SOC"} for r in rows if r.input == "house")
    assert all(set(r.values) == {"PPV"} for r in rows if r.input == "solar")
    assert any(r.time > swapped_at + 1 for r in rows if r.input == "house")


def test_a_million_fuzzed_chunks_never_crash_the_decoder() -> None:
    """10^6 random chunks (noise, fragments, HEX-like lines): no exception, bounded memory."""
    import random

    rng = random.Random(1234)
    pieces = [b"\r\n", b"Checksum\t", b":A4F10\n", b"PID\t0x203", b"\t", b":", b"\x00", b"V\t1"]
    decoder = Decoder()
    events = 0
    for _ in range(1_000_000):
        if rng.random() < 0.3:
            chunk = pieces[rng.randrange(len(pieces))]
        else:
            chunk = rng.randbytes(rng.randrange(1, 16))
        events += len(decoder.feed(chunk))
    events += len(decoder.finish())
    assert events > 0
    assert decoder.pending < decoder.limits.discard_run + decoder.limits.block
