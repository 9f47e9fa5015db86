"""A strict command line: a mistake is one line with the closest name and exit 2, nothing runs.

Each case runs the real command (``vemonitor.cli.main``) in a fresh environment with
no duration: if a mistake started the Demo or a port scan, it would not end and the
test's timeout would say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vemonitor.cli_strict import key_defaults, run_level_keys

ROOT = Path(__file__).resolve().parents[2]


def _vemonitor(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"))
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                           *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("args", "says"), [
    (["--dry-run"], "unknown option --dry-run: use dry_run=true"),
    (["-v"], "unknown option -v: use --version"),
    (["--foo"], "unknown option --foo"),
    (["--verbose"], "use debug=true"),
    (["--state-dir", "/tmp/x"], "use state_dir=PATH"),
    (["--block", "BatteryMonitor", "--dry-run"], "unknown option --dry-run"),
    (["durration=10"], "durration: unknown key (did you mean duration?)"),
    (["+durration=10"], "durration: unknown key (did you mean duration?)"),
    (["++stale_afer=3"], "stale_afer: unknown key (did you mean stale_after?)"),
    (["simulator.device=[bmv700]"], "(did you mean simulator.devices?)"),
    (["metrics.prot=9100"], "(did you mean metrics.port?)"),
    (["BatteryMonitor"], "'BatteryMonitor': to run that block, give block=BatteryMonitor"),
    (["scna"], "did you mean `vemonitor scan`?"),
])
def test_a_mistake_is_one_line_exit_2_and_nothing_runs(tmp_path: Path, args: list[str],
                                                      says: str) -> None:
    result = _vemonitor(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vemonitor: command line: "), lines
    assert says in lines[0]
    assert not (tmp_path / "xdg").exists()  # nothing ran: no state written


def test_version(tmp_path: Path) -> None:
    result = _vemonitor(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "vemonitor 0.1.0"


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], ["block=BatteryMonitor", "--help"]])
def test_help_lists_run_level_keys_with_defaults_and_the_blocks(tmp_path: Path,
                                                                args: list[str]) -> None:
    result = _vemonitor(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for key in run_level_keys():
        assert f"  {key}=" in out, key
    assert "  duration=null" in out and "  speed=1.0" in out and "simulator.start=null" in out
    for block in ("BatteryMonitor", "BatteryAndPannelsMonitor", "Demo"):
        assert f"  {block} " in out
    assert "exit status: 0 done, 2 configuration" in out
    assert not (tmp_path / "xdg").exists()


def test_help_names_legacy_blocks_found(tmp_path: Path) -> None:
    """A legacy vm_conf.yaml in ~/.vemonitor: its blocks are listed too."""
    home = tmp_path / "home" / ".vemonitor"
    home.mkdir(parents=True)
    for name in ("vm_conf.yaml", "vm_appConnectors.yaml"):
        (home / name).write_text((ROOT / "examples" / "legacy" / name).read_text())
    result = _vemonitor(tmp_path, "--help")
    assert f"  bmvFakeSerial  (legacy, {home})" in result.stdout


def test_every_run_level_key_has_a_default_and_a_meaning() -> None:
    """--help reads conf/config.yaml: each key there has its comment (the meaning shown)."""
    rows = {key: (default, doc) for key, default, doc in key_defaults()}
    assert set(rows) == set(run_level_keys())
    assert all(doc for _, doc in rows.values()), [k for k, (_, d) in rows.items() if not d]


def test_valid_command_lines_pass(tmp_path: Path) -> None:
    """Overrides of blocks and connectors, Hydra's flags and the seed's flags are not refused."""
    result = _vemonitor(tmp_path, "--cfg", "job", "block=BatteryMonitor", "--block",
                        "BatteryMonitor", "+block.outputs.sqlite.store.retention_days=3",
                        "~block.outputs.sqlite.store.cache_interval", "debug=true",
                        "metrics.port=9100")
    assert result.returncode == 0, result.stderr
    assert "retention_days: 3" in result.stdout


def test_an_outbox_this_user_may_not_write_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An outbox file owned by another user: a setup mistake, one line naming the file and
    the fix, exit 2 (systemd's RestartPreventExitStatus=2 then stops restarting).

    The suite runs as root, whom file modes do not stop, so "not writable" is simulated at
    the one edge that decides it (``os.access``). A directory or a corrupt file in place of
    an outbox is moved aside instead (tests/faults/test_issue14_*).
    """
    import vemonitor.job as job
    from vemonitor.errors import ConfigError, OutboxError

    state = tmp_path / "state"
    state.mkdir()
    foreign = state / "store.sqlite"
    foreign.write_bytes(b"")
    real_access = os.access
    monkeypatch.setattr(job.os, "access", lambda path, mode: False if Path(path) == foreign
                        else real_access(path, mode))

    def refuse(spec: object, registry: object) -> None:
        raise OutboxError(f"outbox {foreign}: attempt to write a readonly database")

    monkeypatch.setattr(job, "run", refuse)
    spec = type("Spec", (), {"notices": (), "secrets": (), "runtime": type("R", (), {
        "state_dir": state, "dry_run": False, "budget_override": True})()})()
    monkeypatch.setattr(job.budget, "check", lambda *a: [])
    monkeypatch.setattr(job.risks, "warn", lambda spec: None)
    with pytest.raises(ConfigError) as err:
        job.execute(spec, None)  # type: ignore[arg-type]
    assert err.value.key == "state_dir" and f"fix: make {foreign} writable" in str(err.value)


def test_a_directory_in_place_of_the_outbox_is_moved_aside_and_the_run_goes_on(
        tmp_path: Path) -> None:
    """A folder where the outbox file goes: moved aside in one line, a new outbox, exit 0."""
    state = tmp_path / "state"
    (state / "outbox" / "store.sqlite").mkdir(parents=True)
    result = _vemonitor(tmp_path, "block=BatteryMonitor", "simulator.devices=[bmv700]",
                        "duration=5", f"state_dir={state}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert sum("moved aside" in line or ".broken-" in line
               for line in result.stderr.splitlines()) >= 1


def test_systemd_unit_does_not_restart_on_configuration_errors() -> None:
    unit = (ROOT / "packaging" / "vemonitor.service").read_text()
    assert "RestartPreventExitStatus=2" in unit and "Restart=on-failure" in unit


def test_simulator_folder_is_not_left_behind(tmp_path: Path) -> None:
    """Each simulator run made /tmp/vemonitor-sim-<pid>; it is removed at exit."""
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"),
               TMPDIR=str(env_tmp))
    result = subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                             "duration=3"], env=env, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert "vemonitor-sim-" in result.stderr  # the simulator ran there
    assert list(env_tmp.iterdir()) == []


def test_legacy_block_not_found_says_where_it_looked(tmp_path: Path) -> None:
    """--block NAME with no legacy set anywhere: the folders searched and config_dir=."""
    result = _vemonitor(tmp_path, "--block", "bmvFakeSerial", "--debug")
    assert result.returncode == 2
    assert "no legacy vm_conf.yaml found in /opt/vemonitor_m8/conf, /opt/vemonitor/conf, " \
           "~/.vemonitor (give config_dir=DIR" in result.stderr


def test_config_dir_without_vm_conf_is_said(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _vemonitor(tmp_path, f"config_dir={tmp_path / 'empty'}")
    assert result.returncode == 2
    assert f"config_dir: {tmp_path / 'empty'} holds no vm_conf.yaml" in result.stderr


def test_integrations_list_is_aligned(tmp_path: Path) -> None:
    """Every row's origin starts in the same column, whatever the domain's length."""
    result = _vemonitor(tmp_path, "integrations")
    lines = result.stdout.splitlines()
    assert len(lines) >= 6
    columns = {line.index("built-in") for line in lines if "built-in" in line}
    assert len(columns) == 1, result.stdout


def test_a_short_command_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """`vemonitor integrations | head -1`: no BrokenPipeError traceback."""
    code = "from vemonitor.cli import main; main()"
    result = subprocess.run(f"'{sys.executable}' -c '{code}' integrations | head -1; "
                            f"'{sys.executable}' -c '{code}' --help | head -1",
                            shell=True, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, HOME=str(tmp_path)))
    assert result.stdout.splitlines()[1] == "vemonitor 0.1.0"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


@pytest.mark.parametrize("override", ["+block.outputs.sqlite.store.bogus=1",
                                      "block.outputs.sqlite.store.cache_interval=-1"])
def test_a_wrong_command_line_key_blames_the_command_line(tmp_path: Path, override: str) -> None:
    """A key typed on the command line is not blamed on conf/block/BatteryMonitor.yaml."""
    result = _vemonitor(tmp_path, "block=BatteryMonitor", override, "dry_run=true")
    assert result.returncode == 2
    key = override.lstrip("+").split("=", 1)[0]
    assert result.stderr.startswith(
        f"vemonitor: config error: command line, over conf/block/BatteryMonitor.yaml: {key}: ")


def test_a_missing_environment_variable_names_the_file_and_key(tmp_path: Path) -> None:
    """${oc.env:VAR} unset in a block file: the file, the key, the variable, how to default."""
    folder = tmp_path / "home" / ".vemonitor" / "block"
    folder.mkdir(parents=True)
    (folder / "Mine.yaml").write_text(
        "name: Mine\napp: batSerialMonitor\ninputs:\n  serial:\n    bmv700: {source: bmv700}\n"
        "outputs:\n  sqlite:\n    store: {path: '${oc.env:VM_TEST_UNSET_PATH}'}\n")
    env_free = {k: v for k, v in os.environ.items() if k != "VM_TEST_UNSET_PATH"}
    result = subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()",
                             "block=Mine", "dry_run=true"], capture_output=True, text=True,
                            timeout=60, env={**env_free, "HOME": str(tmp_path / "home")})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"vemonitor: config error: {folder / 'Mine.yaml'}: block.outputs.sqlite.store.path: "
        "environment variable VM_TEST_UNSET_PATH is not set (${oc.env:VM_TEST_UNSET_PATH}); "
        "set it, or give a default: ${oc.env:VM_TEST_UNSET_PATH,DEFAULT}")
