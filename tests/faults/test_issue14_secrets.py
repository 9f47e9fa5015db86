"""Issue 14 item 3: one secret policy for every output path (vemonitor/secretpolicy.py)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vemonitor import secretpolicy

PASSWORD = "S3cr3tPassword"
ENV_VALUE = "FromTheEnvironment42"
CONNECTORS = ["+appConnectors.redis.r.host=127.0.0.1", f"+appConnectors.redis.r.password={PASSWORD}",
              "+appConnectors.emoncms.e.addr=http://127.0.0.1:9",
              "+appConnectors.emoncms.e.apikey=abcdef0123456789abcdef0123456789",
              "+appConnectors.emoncms.e.note=${oc.env:VM_TEST_NOTE}"]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"), VM_TEST_NOTE=ENV_VALUE)
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


@pytest.mark.parametrize("flags", [["--info", "config"], ["--info", "all"], ["-i", "config"],
                                   ["--cfg", "job"], ["--cfg", "job", "--resolve"]])
def test_printed_configuration_masks_every_secret(tmp_path: Path, flags: list[str]) -> None:
    """`--info config|all`, `-i config`, `--cfg job [--resolve]`: no password, api key or
    ${oc.env:} value (even under a non-secret key) is printed."""
    result = _run(["block=BatteryMonitor", *CONNECTORS, *flags], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "apikey" in out or "password" in out or "Config" in out
    for secret in (PASSWORD, "abcdef0123456789abcdef0123456789", ENV_VALUE):
        assert secret not in out, flags


def test_multirun_file_is_masked_and_private(tmp_path: Path) -> None:
    """A -m sweep writes multirun.yaml 0600 with every secret masked (was 0644, in clear)."""
    state = tmp_path / "state"
    result = _run(["-m", "block=BatteryMonitor", "simulator.devices=[bmv700]", "duration=1",
                   f"state_dir={state}", f"simulator.dir={tmp_path / 'sim'}",
                   f"+appConnectors.redis.r.password={PASSWORD}"], tmp_path)
    assert result.returncode == 0, result.stderr
    files = list((state / "multirun").glob("*/multirun.yaml"))
    assert len(files) == 1
    assert PASSWORD not in files[0].read_text()
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


@pytest.mark.parametrize("override", [f"+appConnectors.redis.r.password={PASSWORD}=x",
                                      "+appConnectors.redis.r.password={" + PASSWORD + ":1}"])
def test_config_errors_never_echo_a_secret(tmp_path: Path, override: str) -> None:
    """A config error about a secret (a parse error, a wrong type) does not quote it."""
    result = _run(["block=BatteryMonitor", "+appConnectors.redis.r.host=127.0.0.1",
                   "+block.outputs.redis.ts.source=r", "+block.outputs.redis.ts.redis_node=x",
                   override], tmp_path)
    assert result.returncode == 2
    assert "config error" in result.stderr and PASSWORD not in result.stderr, result.stderr


@pytest.mark.parametrize("domain", ["redis", "mqtt"])
def test_credentials_in_host_are_refused_with_a_hint(tmp_path: Path, domain: str) -> None:
    """`host: redis://:password@127.0.0.1`: one line, exit 2, the hint, no password."""
    output = ("+block.outputs.redis.ts.source=r", "+block.outputs.redis.ts.redis_node=x") \
        if domain == "redis" else ("+block.outputs.mqtt.m.source=r",)
    result = _run(["block=BatteryMonitor", f"+appConnectors.{domain}.r.host="
                   f"{domain}://:{PASSWORD}@127.0.0.1", *output], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "password key" in result.stderr and PASSWORD not in result.stderr


def test_short_secret_never_garbles_logs(caplog: pytest.LogCaptureFixture) -> None:
    """apikey=k: log lines keep 'checking' and 'background' (masking by substring revealed
    the secret); a real secret is masked as a whole token."""
    log = logging.getLogger("vemonitor.test14")
    caplog.handler.addFilter(secretpolicy.RedactingFilter(
        secretpolicy.collect({"apikey": "k", "password": "hunter2hunter2",
                              "delivery": {"auth_retry": 900}})))
    with caplog.at_level(logging.INFO):
        log.info("checking the background worker; retry in 900 s")
        log.info("auth with hunter2hunter2 failed; url http://u:pw123456@host/x")
    assert caplog.messages[0] == "checking the background worker; retry in 900 s"
    assert "hunter2hunter2" not in caplog.messages[1] and "pw123456" not in caplog.messages[1]


def test_values_from_the_environment_are_secrets_under_any_key() -> None:
    """A value read through ${oc.env:} is masked in a printed tree even under 'note'."""
    secretpolicy.remember("ValueFromEnv99")
    masked = secretpolicy.mask_tree({"a": {"note": "ValueFromEnv99", "host": "h"}})
    assert masked == {"a": {"note": "***", "host": "h"}}
