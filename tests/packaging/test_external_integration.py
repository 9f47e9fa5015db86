"""Integrations installed as packages: pip-built, found through their entry point, run end to end.

The example package (``examples/vemonitor-integration-example``, domain ``jsonl``) and a
package of broken integrations made here are built by pip from clean copies and installed
with ``pip install --target`` into a temporary folder that only the subprocesses see (on
their PYTHONPATH). Discovery is the real one: ``importlib.metadata`` reads the installed
``*.dist-info/entry_points.txt``. Nothing is installed into this interpreter's
site-packages, so no teardown is needed and a killed run, or tests running alongside,
are never affected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata, util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vemonitor-integration-example"
COPY_IGNORE = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*_cache",
                                     ".benchmarks")
NETWORK_HINTS = ("Could not find a version that satisfies", "No matching distribution",
                 "NewConnectionError", "Network is unreachable", "Temporary failure in name")
BROKEN_DIST = "vemonitor-broken-example"
BROKEN_PYPROJECT = f"""\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{BROKEN_DIST}"
version = "0.0.1"

[project.entry-points."vemonitor.integrations"]
boom = "vm_boom"
badmanifest = "vm_badmanifest"
ghost = "vm_not_installed"

[tool.setuptools]
packages = ["vm_boom", "vm_badmanifest"]

[tool.setuptools.package-data]
"*" = ["manifest.json"]
"""
BOOM_MANIFEST = {"domain": "boom", "name": "Setup raises", "version": "9.9.9",
                 "provides": ["output"]}
BOOM_INIT = '''def setup(registry, manifest):
    """Fail as a buggy integration would."""
    raise RuntimeError("boom: cannot set up")
'''
BAD_MANIFEST = {"domain": "badmanifest", "name": "No version", "provides": ["output"]}
JSONL_ITEM = ("+block.outputs.jsonl.file.time_interval=1",
              "+block.outputs.jsonl.file.cache_interval=1")

pytestmark = pytest.mark.timeout(180)


def _builds_without_isolation() -> bool:
    """Return True when this interpreter's setuptools can build a wheel offline (>= 70.1 or wheel)."""
    if util.find_spec("wheel") is not None:
        return True
    try:
        major, minor = (int(p) for p in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1)


def _write_broken_project(folder: Path) -> Path:
    """Write a project exposing three broken integrations: setup raises, bad manifest, missing."""
    folder.mkdir()
    (folder / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    for package, manifest, init in (("vm_boom", BOOM_MANIFEST, BOOM_INIT),
                                    ("vm_badmanifest", BAD_MANIFEST, "")):
        (folder / package).mkdir()
        (folder / package / "__init__.py").write_text(init)
        (folder / package / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _pip_install(target: Path, projects: list[Path]) -> None:
    """Build and install the projects into ``target`` with pip (no dependencies)."""
    args = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
            "-q", "--target", str(target)]
    if _builds_without_isolation():
        args.append("--no-build-isolation")  # offline: this interpreter's setuptools
    # else pip fetches the build requirements (setuptools, wheel) from the configured index.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([*args, *map(str, projects)], capture_output=True, text=True,
                          timeout=150, env=env, cwd=target.parent)
    if proc.returncode != 0 and any(h in proc.stdout + proc.stderr for h in NETWORK_HINTS):
        pytest.skip("cannot build the packages: no network, and this interpreter's setuptools "
                    "needs the 'wheel' package")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a folder holding the installed example and broken packages (for PYTHONPATH)."""
    base = tmp_path_factory.mktemp("external")
    example = base / "example"
    shutil.copytree(EXAMPLE, example, ignore=COPY_IGNORE)  # pip builds in the source tree
    target = base / "site"
    _pip_install(target, [example, _write_broken_project(base / "broken")])
    return target


def _env(tmp_path: Path, site: Path) -> dict[str, str]:
    """Return an environment isolated from the user's config and state, seeing ``site``."""
    env = dict(os.environ)
    env.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "xdg"),
               PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])))
    return env


def _vemonitor(tmp_path: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from vemonitor.cli import main; main()", *args],
                          env=_env(tmp_path, site), capture_output=True, text=True, timeout=60)


def _run_block(tmp_path: Path, site: Path, *overrides: str) -> tuple[Path, dict[str, object]]:
    """Run BatteryMonitor on a simulated BMV for 4 s; return the state dir and summary."""
    state = tmp_path / "state"
    proc = _vemonitor(tmp_path, site, "block=BatteryMonitor", "simulator.devices=[bmv700]",
                      "duration=4", f"state_dir={state}", *overrides)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return state, json.loads((state / "summary.json").read_text())


def test_installed_package_is_listed_with_version_and_origin(site: Path, tmp_path: Path) -> None:
    """`vemonitor integrations --json` lists jsonl from its package, set up without error."""
    proc = _vemonitor(tmp_path, site, "integrations", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["domain"]: row for row in json.loads(proc.stdout)}
    assert rows["jsonl"] == {
        "domain": "jsonl", "name": "JSON Lines file", "version": "0.1.0",
        "provides": ["output"], "error": None,
        "origin": "package vemonitor-integration-example (vemonitor_jsonl)"}
    for domain in ("vedirect", "sqlite", "console"):  # the built-ins are still there, intact
        assert rows[domain]["error"] is None
    code = ("import importlib.resources as r, vemonitor_jsonl as m; print(m.__file__); "
            "print(r.files(m).joinpath('sample.yaml').is_file())")
    proc = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path, site),
                          capture_output=True, text=True, timeout=30)
    module, has_sample = proc.stdout.split()
    assert Path(module).is_relative_to(site) and has_sample == "True"  # data files installed


def test_broken_packages_are_listed_as_failed_with_their_reason(site: Path,
                                                                tmp_path: Path) -> None:
    """A raising setup(), an invalid manifest and a missing package are each named with why."""
    proc = _vemonitor(tmp_path, site, "integrations", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {row["domain"]: row for row in json.loads(proc.stdout)}
    boom = rows["boom"]
    assert boom["version"] == "9.9.9"
    assert boom["error"] == (f"integration 'boom' (package {BROKEN_DIST} (vm_boom)) failed to "
                             "load: RuntimeError: boom: cannot set up")
    # Failures are keyed by the entry point's name (what the package's pyproject declares).
    assert rows["badmanifest"]["error"] == (
        f"package {BROKEN_DIST} (vm_badmanifest): invalid manifest.json (missing 'version')")
    assert rows["ghost"]["error"].startswith(
        f"package {BROKEN_DIST} (vm_not_installed): no manifest.json (No module named")
    assert rows["jsonl"]["error"] is None
    text = _vemonitor(tmp_path, site, "integrations").stdout
    assert "boom" in text and "FAILED: integration 'boom'" in text
    assert "jsonl        0.1.0    output" in text


def test_block_with_the_package_output_writes_json_lines(site: Path, tmp_path: Path) -> None:
    """A block using jsonl (next to the built-in sqlite store) fills the JSON Lines file."""
    state, summary = _run_block(tmp_path, site, *JSONL_ITEM)
    lines = (state / "file.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) >= 2
    assert {row["source"] for row in rows} == {"bmv700"}
    assert len({row["time"] for row in rows}) == len(rows)  # one line per tick, no duplicate
    assert {"bat_voltage", "SOC"} <= set(rows[0]["values"])  # ref_cols renamed V -> bat_voltage
    outputs = summary["outputs"]
    assert isinstance(outputs, dict)
    assert outputs["file"]["rows"] == len(rows) and outputs["file"]["errors"] == 0
    assert outputs["store"]["points"] > 0


def test_broken_packages_do_not_stop_a_block_of_built_ins(site: Path, tmp_path: Path) -> None:
    """With the broken packages installed, a block using only built-ins runs as usual."""
    _state, summary = _run_block(tmp_path, site)
    outputs = summary["outputs"]
    assert isinstance(outputs, dict)
    assert outputs["store"]["points"] > 0 and outputs["store"]["errors"] == 0


def test_using_a_broken_integration_is_one_clear_config_error(site: Path, tmp_path: Path) -> None:
    """A block naming the broken integration stops with status 2 and one line saying why."""
    proc = _vemonitor(tmp_path, site, "block=BatteryMonitor", "dry_run=true",
                      "+block.outputs.boom.x.time_interval=1")
    assert proc.returncode == 2
    assert "block.outputs.boom" in proc.stderr
    assert "failed to load: RuntimeError: boom: cannot set up" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_example_tests_pass_against_the_installed_package(site: Path, tmp_path: Path) -> None:
    """The example's own tests (sink, schema, setup) pass with the package as installed."""
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests, ignore=COPY_IGNORE)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tests)], env=_env(tmp_path, site),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout
