"""The command line as real processes on the simulator's pty (issue 23 point 4 and its tests):
each control end to end, consent, kill -9 mid-write, the lease from the CLI, two processes
on one port."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw_sim.simulator import Simulator
from tests.shared import wait_until
from vemonitor.serial_reader import SerialReader

HERE = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"))


def _hex(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vemonitor", "hex", *args], cwd=HERE,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=timeout,
                          check=False)


def _popen(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "vemonitor", *args], cwd=HERE,
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Simulator:
    with Simulator(["mppt", "bmv700"], tmp_path_factory.mktemp("clisim")) as running:
        yield running  # type: ignore[misc]


def _log(tmp_path: Path, state: Path) -> list[dict[str, object]]:
    done = _hex(tmp_path, "log", "--state-dir", str(state), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_each_control_from_the_cli(sim: Simulator, tmp_path: Path) -> None:
    """load_output, charger and the current limit written by `hex set --enable`; the relay of a
    BMV in remote mode; each frame and read-back printed, and each in `hex log`."""
    state = tmp_path / "state"
    mppt, bmv = str(sim.path("mppt")), str(sim.path("bmv700"))
    hexdev, bmvdev = sim.devices["mppt"].hex, sim.devices["bmv700"].hex
    assert hexdev is not None and bmvdev is not None
    bmvdev.settings[0x034F] = b"\x02"  # relay mode remote (set on the device's own menu)
    load = "on" if hexdev.settings[0xEDAB] != b"\x04" else "off"
    charger = "off" if hexdev.settings[0x0200] != b"\x04" else "on"
    relay = "on" if bmvdev.settings[0x034E] != b"\x01" else "off"
    cases = [("load_output", load, mppt), ("charger", charger, mppt),
             ("charge_current_limit", "12.5", mppt), ("relay", relay, bmv)]
    for control, value, port in cases:
        done = _hex(tmp_path, "set", control, value, "--port", port, "--state-dir", str(state),
                    "--enable")
        assert done.returncode == 0, done.stderr
        assert f"-> {value}: ok   sent :8" in done.stdout and f"read back {value}" in done.stdout
        if control == "charge_current_limit":
            assert "use vemonitor hex lease to hold it" in done.stdout
    assert hexdev.settings[0x2015] == (125).to_bytes(2, "little")
    assert bmvdev.settings[0x034E] == (b"\x01" if relay == "on" else b"\x00")
    # A keep-alive is right whenever a command outlives the refresh period (25 s: a machine
    # loaded 30 deep stretches a 2 s command that far); it is not what this test is about.
    rows = [r for r in _log(tmp_path, state) if r["event"] != "keepalive"]
    # `hex set` of the limit holds no lease past the command: its end is logged at once
    assert [(r["control"], r["event"], r["result"]) for r in rows] == [
        ("load_output", "write", "ok"), ("charger", "write", "ok"),
        ("charge_current_limit", "write", "ok"), ("charge_current_limit", "lease_end", "ok"),
        ("relay", "write", "ok")]
    assert rows[2]["frame"] == ":81520007D009B"  # HEX.md §2.3 example 2 (12.5 A)
    text = _hex(tmp_path, "log", "--state-dir", str(state))
    assert text.returncode == 0 and text.stdout.count("\n") == len(_log(tmp_path, state))
    assert "cli:" in text.stdout


def test_consent_rules(sim: Simulator, tmp_path: Path) -> None:
    """No --enable and no configured consent: refused, nothing sent. --dry-run needs none.
    A consent recorded for this serial (as the daemon records its configuration) suffices."""
    state, port = tmp_path / "state", str(sim.path("mppt"))
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None
    sets = len(hexdev.sets)
    refused = _hex(tmp_path, "set", "load_output", "on", "--port", port, "--state-dir", str(state))
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "refused: disabled: load_output" in refused.stderr
    dry = _hex(tmp_path, "set", "load_output", "on", "--port", port, "--state-dir", str(state),
               "--dry-run")
    assert dry.returncode == 0 and "would send :8ABED0004B1" in dry.stdout
    assert len(hexdev.sets) == sets
    raw = _hex(tmp_path, "set", "0x034D", "1", "--port", port, "--state-dir", str(state),
               "--enable")
    assert raw.returncode == 1 and "raw register 0x034D is never written" in raw.stderr
    serial = sim.devices["mppt"].written_fields["SER#"]
    with sqlite3.connect(state / "control.sqlite") as db:
        db.execute("INSERT INTO consent VALUES (?, 'charger', 1, 0, 0)", (serial,))
    value = "off" if hexdev.settings[0x0200] != b"\x04" else "on"
    configured = _hex(tmp_path, "set", "charger", value, "--port", port, "--state-dir",
                      str(state))
    assert configured.returncode == 0, configured.stderr
    assert len(hexdev.sets) == sets + 1


def test_kill_9_mid_write_leaves_a_row_that_says_what_is_known(sim: Simulator,
                                                               tmp_path: Path) -> None:
    """The Set is lost on the line; the CLI is killed while it waits for the reply. After a
    restart the audit row is `interrupted`, with the value read at the next connect; the
    device holds its old value; the write counted against rate limit and NV budget."""
    state, port = tmp_path / "state", str(sim.path("mppt"))
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None
    before = hexdev.settings[0xEDAB]
    target = "off" if before != b"\x00" else "on"
    hexdev.drop_sets = True
    dropped = hexdev.counters.dropped_sets
    try:
        proc = _popen(tmp_path, "hex", "set", "load_output", target, "--port", port,
                      "--state-dir", str(state), "--enable")

        def pending() -> bool:
            if not (state / "control.sqlite").exists():
                return False
            try:
                with sqlite3.connect(state / "control.sqlite", timeout=5) as db:
                    return bool(db.execute("SELECT 1 FROM audit WHERE state='pending'")
                                .fetchone())
            except sqlite3.OperationalError:  # the tables are being made
                return False
        assert wait_until(pending, 30.0)
        # the frame reached the device, which lost it: the CLI now waits for a reply
        assert wait_until(lambda: hexdev.counters.dropped_sets > dropped, 10.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        hexdev.drop_sets = False
    rows = _log(tmp_path, state)
    assert rows[-1]["result"] == "interrupted" and rows[-1]["state"] == "done"
    assert rows[-1]["frame"] in (":8ABED0000B5", ":8ABED0004B1") and rows[-1]["new"] == target
    assert "may or may not have reached the device" in str(rows[-1]["reason"])
    # restart: a new process connects and reads the register; the row learns the value
    again = _hex(tmp_path, "set", "load_output", target, "--port", port, "--state-dir",
                 str(state), "--enable")
    assert again.returncode == 1 and "rate limit: load_output" in again.stderr
    rows = _log(tmp_path, state)
    interrupted = next(r for r in rows if r["result"] == "interrupted")
    old_name = {b"\x00": "off", b"\x01": "auto", b"\x04": "on"}[before]
    assert interrupted["readback"] == old_name and hexdev.settings[0xEDAB] == before
    assert f"read at the next connect: {old_name}" in str(interrupted["reason"])


def test_lease_from_the_cli_ends_and_the_device_falls_back(sim: Simulator,
                                                          tmp_path: Path) -> None:
    """`hex lease ... --for 3s`: the limit is set, the lease ends and is reported, the
    simulator's 0x2015 falls back to not-available (TTL shortened to 4 s for the test)."""
    state, port = tmp_path / "state", str(sim.path("mppt"))
    hexdev = sim.devices["mppt"].hex
    assert hexdev is not None and hexdev.charger is not None
    hexdev.link_ttl_s = 4.0
    try:
        done = _hex(tmp_path, "lease", "charge_current_limit", "7.5", "--for", "3s", "--port",
                    port, "--state-dir", str(state), "--enable")
        assert done.returncode == 0, done.stderr
        assert "-> 7.5: ok" in done.stdout
        assert "lease ended (not renewed)" in done.stdout
        assert "falls back to its own maximum" in done.stdout
        assert wait_until(lambda: hexdev.settings[0x2015] == b"\xff\xff", 10.0)
        assert hexdev.charger.current_limit_a is None
    finally:
        hexdev.link_ttl_s = 60.0
    events = [(r["event"], r["result"]) for r in _log(tmp_path, state)]
    assert events == [("write", "ok"), ("lease_end", "ok")]


def test_cli_holding_the_port_serialises_the_reader(sim: Simulator, tmp_path: Path) -> None:
    """While `hex lease` holds the port, the daemon's reader cannot open it (the same flock)
    and reads only after the CLI ends: the two never share the wire."""
    port = str(sim.path("bmv700"))
    bmvdev = sim.devices["bmv700"].hex
    assert bmvdev is not None
    bmvdev.settings[0x034F] = b"\x02"  # relay mode remote
    errors = bmvdev.counters.frame_errors
    proc = _popen(tmp_path, "hex", "set", "relay", "on", "--port", port, "--state-dir",
                  str(tmp_path / "state"), "--dry-run")
    assert wait_until(lambda: _held(port), 20.0)
    reader = SerialReader("daemon-reader", port)
    reader.start()
    try:
        time.sleep(0.5)
        assert not reader.available or proc.poll() is not None
        _out, _err = proc.communicate(timeout=30)
        assert proc.returncode == 0, _err
        assert wait_until(lambda: reader.available, 20.0)
    finally:
        reader.close()
    assert bmvdev.counters.frame_errors == errors  # nothing garbled on the device's side


def _held(port: str) -> bool:
    """Return True when another process holds the port's exclusive lock."""
    import fcntl
    fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def test_daemon_holding_the_port_refuses_the_cli(tmp_path: Path) -> None:
    """A real daemon (Demo, load_output enabled) reads the MPPT; `hex set` on its port is
    refused with one line and the daemon runs on and ends cleanly; the daemon recorded its
    configured consent for the device, and Context.controls carried the control."""
    state, simdir = tmp_path / "state", tmp_path / "sim"
    simdir.mkdir()
    daemon = _popen(tmp_path, "block=Demo", f"simulator.dir={simdir}", f"state_dir={state}",
                    "duration=20", "+appConnectors.serial.mppt.controls.load_output.enabled=true")
    try:
        port = simdir / "ttyVE_mppt"

        def consent() -> bool:
            if not (state / "control.sqlite").exists():
                return False
            try:
                with sqlite3.connect(state / "control.sqlite", timeout=5) as db:
                    return bool(db.execute("SELECT 1 FROM consent WHERE control='load_output'"
                                           " AND enabled=1").fetchone())
            except sqlite3.OperationalError:  # the tables are being made
                return False
        assert wait_until(consent, 40.0)
        done = _hex(tmp_path, "set", "load_output", "on", "--port", str(port), "--state-dir",
                    str(state), "--dry-run")
        assert done.returncode == 1 and done.stderr.count("\n") == 1
        assert "is in use by another process" in done.stderr
        _out, err = daemon.communicate(timeout=90)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err
    assert "control load_output is ENABLED in dry-run" in err and err.count("is ENABLED") == 1


def test_lease_command_stopped_by_sigterm_ends_the_lease(sim: Simulator, tmp_path: Path) -> None:
    """SIGTERM to `hex lease --for 10m`: the lease ends at once, said on stdout, exit 0, and
    the audit log has the lease's end; nothing keeps the limit alive afterwards."""
    state, port = tmp_path / "state", str(sim.path("mppt"))
    proc = _popen(tmp_path, "hex", "lease", "charge_current_limit", "3", "--for", "10m",
                  "--port", port, "--state-dir", str(state), "--enable")
    try:
        def leased() -> bool:
            try:
                with sqlite3.connect(state / "control.sqlite", timeout=5) as db:
                    return bool(db.execute("SELECT 1 FROM audit WHERE result='ok'"
                                           " AND event='write'").fetchone())
            except sqlite3.OperationalError:
                return False
        assert wait_until(leased, 30.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "lease ended (the command was stopped)" in out and "falls back" in out
    assert [r["event"] for r in _log(tmp_path, state)] == ["write", "lease_end"]
