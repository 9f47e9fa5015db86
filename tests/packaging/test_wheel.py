"""The wheel holds exactly what a user needs, and works once installed outside the source tree.

The wheel is built from a clean copy of the source tree (no stale ``build/`` of an
earlier build can leak in, and nothing is written into the work tree), installed into
a fresh virtual environment that borrows its dependencies from this interpreter's
site-packages (no network), and run from an empty working directory, so the repo's own
``vemonitor/``, ``conf/`` and ``integrations/`` folders cannot be imported by accident.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from importlib import metadata, util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = {"vemonitor", "hw_sim", "vemonitor_integrations", "vemonitor_conf"}  # our names only
SCRIPTS = {"vemonitor", "vemonitor-sim", "vemonitor-decode"}
COPY_IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                     ".nox", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                                     ".hypothesis", ".benchmarks", "*.pyc")
NETWORK_HINTS = ("Could not find a version that satisfies", "No matching distribution",
                 "NewConnectionError", "Network is unreachable", "Temporary failure in name")

pytestmark = pytest.mark.timeout(240)


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _builds_without_isolation() -> bool:
    """Return True when this interpreter's setuptools can build a wheel by itself.

    setuptools >= 70.1 has bdist_wheel built in; older ones need the ``wheel`` package.
    """
    if util.find_spec("wheel") is not None:
        return True
    try:
        major, minor = (int(p) for p in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1)


def _clean_env(**extra: str) -> dict[str, str]:
    """Return the environment without anything that would point Python at the work tree."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a clean copy of the source tree; return its path."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE, symlinks=True)
    out = base / "dist"
    args = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
            "-w", str(out), str(source)]
    if _builds_without_isolation():
        args.insert(5, "--no-build-isolation")  # offline: this interpreter's setuptools
    # else pip fetches the build requirements (setuptools, wheel) from the configured index.
    result = _run(args, cwd=base, env=_clean_env(), timeout=180)
    if result.returncode != 0 and any(h in result.stdout + result.stderr for h in NETWORK_HINTS):
        pytest.skip("cannot build the wheel: build requirements unavailable (no network, and "
                    "this interpreter's setuptools needs the 'wheel' package)")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels = list(out.glob("vemonitor-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _borrow_site_packages(python: Path) -> None:
    """Put this interpreter's site-packages after the new venv's own, through a .pth file.

    ``venv --system-site-packages`` would borrow the *base* interpreter's packages, which
    is not this one when the tests run inside a venv (the README's fresh venv: hydra and
    the other dependencies live there, not in the base). A plain path line in a .pth file
    only appends the folder to ``sys.path``: the .pth files *inside* it (such as this
    venv's editable install of the work tree) are not processed, so the wheel's own copy
    is the one imported. pip is borrowed the same way (``--without-pip``: no ensurepip).
    """
    own = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
               cwd=python.parent, env=_clean_env())
    assert own.returncode == 0, own.stderr
    borrowed = [p for p in site.getsitepackages() if Path(p).is_dir()]
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        borrowed.append(site.getusersitepackages())
    (Path(own.stdout.strip()) / "_vemonitor_test_borrowed.pth").write_text(
        "\n".join(borrowed) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the wheel (and nothing else) into a fresh venv; return the venv's bin dir."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(folder)],
                   cwd=folder.parent, env=_clean_env())
    assert created.returncode == 0, created.stderr
    bin_dir = folder / "bin"
    _borrow_site_packages(bin_dir / "python")
    installed = _run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index",
                      "--disable-pip-version-check", str(wheel)], cwd=folder.parent,
                     env=_clean_env())
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return bin_dir


@pytest.fixture
def outside(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Return an empty working directory and an environment with its own state directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd, _clean_env(XDG_STATE_HOME=str(tmp_path / "state"), HOME=str(tmp_path / "home"))


def test_wheel_holds_only_the_packages_and_their_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    assert dist_info == {"vemonitor-0.1.0.dist-info"}
    assert {n.split("/")[0] for n in names} == TOP_LEVEL | dist_info
    for unwanted in ("tests/", "benchmarks/", "examples/", "packaging/", "docs/"):
        assert not [n for n in names if n.startswith(unwanted)], unwanted

    # The repo folders conf/ and integrations/ install under the project's names.
    expected = {"vemonitor_conf/config.yaml"}
    expected |= {f"vemonitor_conf/block/{p.name}"
                 for p in (ROOT / "conf" / "block").glob("*.yaml")}
    expected |= {f"vemonitor_conf/connectors/{p.name}"
                 for p in (ROOT / "conf" / "connectors").glob("*.yaml")}
    expected |= {f"vemonitor_integrations/{p.parent.name}/{f.name}"
                 for p in (ROOT / "integrations").glob("*/manifest.json")
                 for f in p.parent.glob("*.py")}
    assert "vemonitor_conf/block/BatteryMonitor.yaml" in expected
    assert "vemonitor_integrations/vedirect/__init__.py" in expected
    assert not expected - set(names), sorted(expected - set(names))  # no package forgotten
    # The packages are importable data folders: every folder with Python files is a package.
    for folder in {n.rsplit("/", 1)[0] for n in names if n.endswith(".py")}:
        assert f"{folder}/__init__.py" in names, folder


def test_wheel_declares_the_console_scripts(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("vemonitor-0.1.0.dist-info/entry_points.txt").decode()
    section = text.split("[console_scripts]", 1)[1].split("\n[", 1)[0]
    declared = {line.split("=", 1)[0].strip() for line in section.splitlines() if "=" in line}
    assert declared == SCRIPTS


def test_wheel_declares_the_simulator_service(wheel: Path) -> None:
    """The core finds the simulator through this entry point (it never imports hw_sim)."""
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("vemonitor-0.1.0.dist-info/entry_points.txt").decode()
    section = text.split("[vemonitor.services]", 1)[1].split("\n[", 1)[0]
    assert "simulator = hw_sim.service:SERVICE" in section


def test_installed_modules_come_from_the_venv(venv: Path,
                                              outside: tuple[Path, dict[str, str]]) -> None:
    cwd, env = outside
    code = ("import vemonitor_conf, hw_sim, vemonitor_integrations, vemonitor; "
            "print('\\n'.join(m.__file__ for m in "
            "(vemonitor_conf, hw_sim, vemonitor_integrations, vemonitor)))")
    result = _run([str(venv / "python"), "-c", code], cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    files = result.stdout.split()
    assert len(files) == 4
    for file in files:
        assert Path(file).resolve().is_relative_to(venv.parent.resolve()), file


def test_dry_run_of_a_shipped_block(venv: Path, outside: tuple[Path, dict[str, str]]) -> None:
    cwd, env = outside
    result = _run([str(venv / "vemonitor"), "dry_run=true", "block=BatteryMonitor"], cwd=cwd,
                  env=env)
    assert result.returncode == 0, result.stderr
    assert "block BatteryMonitor (dry run: nothing started)" in result.stdout
    assert "input  bmv700: vedirect:bmv700 every 1 s" in result.stdout
    assert "output store: sqlite every 1 s, batches of 5 ticks" in result.stdout
    assert "expected per hour:" in result.stdout
    assert "Traceback" not in result.stderr
    assert list(cwd.iterdir()) == []  # nothing written to the working directory


def test_config_error_is_one_line_with_status_2(venv: Path,
                                                outside: tuple[Path, dict[str, str]]) -> None:
    cwd, env = outside
    result = _run([str(venv / "vemonitor"), "dry_run=true", "block=NoSuchBlock"], cwd=cwd,
                  env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("vemonitor: config error:")
    assert "BatteryMonitor" in result.stderr  # the shipped blocks are listed
    assert "Traceback" not in result.stderr


def test_integrations_are_found_in_the_wheel(venv: Path,
                                             outside: tuple[Path, dict[str, str]]) -> None:
    cwd, env = outside
    result = _run([str(venv / "vemonitor"), "integrations", "--json"], cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["domain"]: row for row in json.loads(result.stdout)}
    builtin = {p.parent.name for p in (ROOT / "integrations").glob("*/manifest.json")}
    assert {"vedirect", "sqlite", "console", "redis", "emoncms"} <= builtin
    assert builtin <= set(rows)
    for domain in builtin:
        assert rows[domain]["error"] is None, rows[domain]
        assert rows[domain]["origin"] == f"built-in vemonitor_integrations.{domain}"


@pytest.mark.parametrize(("script", "usage"), [
    ("vemonitor-decode", "usage: vemonitor-decode"),
    ("vemonitor-sim", "usage: vemonitor-sim"),
])
def test_helper_scripts_run(venv: Path, outside: tuple[Path, dict[str, str]], script: str,
                            usage: str) -> None:
    cwd, env = outside
    result = _run([str(venv / script), "--help"], cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage)
