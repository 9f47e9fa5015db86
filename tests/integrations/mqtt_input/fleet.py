"""A fleet on loopback: edge engines publishing through mosquitto to central vemonitor processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.servers import MosquittoServer


class PersistentMosquitto(MosquittoServer):
    """mosquitto keeping sessions and queued QoS 1 messages across a restart (as deployed)."""

    def command(self) -> list[str]:
        """Return mosquitto's command line with persistence in the temp dir."""
        command = super().command()
        text = self.config.read_text().replace(
            "persistence false", f"persistence true\npersistence_location {self.dir}/")
        self.config.write_text(text)
        return command


def central_conf(folder: Path, broker_port: int, vm_url: str, **input_keys: Any) -> Path:
    """Write a legacy vm_conf.yaml of a central block: mqtt input (shared) -> influxDb2 output."""
    folder.mkdir(parents=True, exist_ok=True)
    item = {"name": "fleet", "source": "broker", "time_interval": 1,
            "topic": "fleet/{site}/{node}/state", "share_group": "central", "ack_after": 3,
            **input_keys}
    conf = {
        "appBlocks": [{"name": "central", "app": "batSerialMonitor",
                       "inputs": {"mqtt": [item]},
                       "outputs": {"influxDb2": [{"source": "vm", "db": "fleet",
                                                  "time_interval": 1, "cache_interval": 1}]}}],
        "appConnectors": {"mqtt": {"broker": {"host": "127.0.0.1", "port": broker_port,
                                              "protocol": "5"}},
                          "influxDb2": {"vm": {"host": vm_url}}},
    }
    (folder / "vm_conf.yaml").write_text(json.dumps(conf, indent=1))  # JSON is YAML
    return folder


class Central:
    """One central vemonitor process (restartable with the same state dir: same client id)."""

    def __init__(self, conf_dir: Path, state_dir: Path, home: Path) -> None:
        self.args = [sys.executable, "-c", "from vemonitor.cli import main; main()",
                     f"config_dir={conf_dir}", "block=central", f"state_dir={state_dir}"]
        self.env = dict(os.environ, HOME=str(home), XDG_STATE_HOME=str(home / "x"))
        self.log = state_dir.parent / f"{state_dir.name}.log"
        self.state_dir = state_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon (no duration: it runs until stopped)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)

    def wait_subscribed(self, deadline: float = 60.0) -> None:
        """Wait until the daemon logged its (re)connection, after it sent SUBSCRIBE."""
        end = time.monotonic() + deadline
        while "connected to mqtt broker" not in self.log.read_text(errors="replace"):
            assert self.process is not None and self.process.poll() is None, \
                self.log.read_text(errors="replace")[-2000:]
            if time.monotonic() > end:
                raise AssertionError(f"central did not connect: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(0.5)  # the broker handles its SUBSCRIBE before our next publishes

    def kill(self) -> None:
        """SIGKILL: rows not yet acknowledged to the broker come back when it restarts."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait: the daemon flushes its outputs and writes its summary."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def summary(self) -> dict[str, Any]:
        """Return the summary the daemon wrote at exit."""
        return dict(json.loads((self.state_dir / "summary.json").read_text()))
