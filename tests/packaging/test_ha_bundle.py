"""The Home Assistant release zip and the repository layout HACS reads.

``python integrations/homeassistant/bundle.py OUTDIR`` is run as a release would run it;
the zip it writes is checked against HACS's published rules and against the source tree
(the vendored core is the source, imports made relative, nothing else). Runs on any
Python: no Home Assistant needed (tests/homeassistant runs the bundle inside HA).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUNDLER = ROOT / "integrations" / "homeassistant" / "bundle.py"
COMPONENT = ROOT / "custom_components" / "vemonitor"


def _bundler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vemonitor_ha_bundle_test", BUNDLER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bundle = _bundler()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The zip, built by the command line a release runs."""
    out = tmp_path_factory.mktemp("release")
    done = subprocess.run([sys.executable, str(BUNDLER), str(out)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "vemonitor.zip")
    return zipfile.ZipFile(out / "vemonitor.zip")


def test_zip_release_has_the_component_at_its_root(release: zipfile.ZipFile) -> None:
    """HACS zip_release: the zip is unpacked AS custom_components/<domain>/."""
    names = set(release.namelist())
    own = {p.relative_to(COMPONENT).as_posix() for p in COMPONENT.rglob("*")
           if p.is_file() and "__pycache__" not in p.parts}
    assert own <= names
    assert {"manifest.json", "__init__.py", "quality_scale.yaml", "translations/en.json",
            "_vemonitor/__init__.py", "_vemonitor/serial_reader.py",
            "_vemonitor/vedirect/fields.py", "brand/icon.png"} <= names
    assert not any(n.startswith(("custom_components/", "/")) or "__pycache__" in n
                   for n in names)
    manifest = json.loads(release.read("manifest.json"))
    assert manifest["domain"] == "vemonitor"
    # Reproducible: fixed dates, sorted entries.
    assert {i.date_time for i in release.infolist()} == {bundle.ZIP_DATE}
    assert release.namelist() == sorted(release.namelist())


def test_vendored_core_is_the_source_with_relative_imports(release: zipfile.ZipFile) -> None:
    """Each vendored file = its vemonitor/ source line for line; only `from vemonitor` heads differ."""
    vendored = [n for n in release.namelist() if n.startswith("_vemonitor/")]
    assert vendored
    for name in vendored:
        source = (ROOT / "vemonitor" / name.removeprefix("_vemonitor/")).read_text("utf-8")
        copy = release.read(name).decode("utf-8")
        src_lines, copy_lines = source.splitlines(), copy.splitlines()
        assert len(src_lines) == len(copy_lines), name
        for old, new in zip(src_lines, copy_lines, strict=True):
            if old != new:
                assert re.match(r"\s*from vemonitor[. ]", old), (name, old)
                assert re.match(r"\s*from \.+[A-Za-z_ ]", new), (name, new)
                assert old.split(" import ", 1)[1] == new.split(" import ", 1)[1]
        assert not _absolute_core_imports(copy), name


def _absolute_core_imports(source: str | bytes) -> list[int]:
    """Return the lines of the import statements of ``source`` that name `vemonitor`.

    Judged on the statements (ast), not the text: a docstring's usage example
    (vemonitor/control/__init__.py shows `from vemonitor.control import ...`) is no import.
    """
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name.split(".")[0] == "vemonitor" for name in names):
            lines.append(node.lineno)
    return lines


def test_vendoring_follows_imports(release: zipfile.ZipFile) -> None:
    """What is vendored is what the component imports, recursively (not a fixed list)."""
    vendored = {n.removeprefix("_vemonitor/") for n in release.namelist()
                if n.startswith("_vemonitor/")}
    # serial_reader imports clock and the codec; the config, engine, CLI are not needed.
    assert {"__init__.py", "serial_reader.py", "clock.py", "scan.py",
            "vedirect/__init__.py", "vedirect/decoder.py", "vedirect/snapshot.py"} <= vendored
    assert not any(n.startswith(("config", "engine", "cli", "hydra_app", "launch"))
                   for n in vendored)


def test_component_imports_only_the_vendored_core(release: zipfile.ZipFile) -> None:
    """No module of the zip imports the `vemonitor` distribution (see _absolute_core_imports)."""
    for name in release.namelist():
        if name.endswith(".py"):
            assert not _absolute_core_imports(release.read(name)), name


def test_plain_import_of_the_core_stops_the_build(tmp_path: Path) -> None:
    """`import vemonitor.x` cannot be made relative: one line naming file and line."""
    module = tmp_path / "bad.py"
    module.write_text("from __future__ import annotations\nimport vemonitor.clock\n")
    with pytest.raises(bundle.BundleError, match=r"bad\.py:2: `import vemonitor.clock`"):
        bundle.core_closure([module])


def test_unknown_third_party_import_stops_the_build(tmp_path: Path) -> None:
    """A vendored import that is not a manifest requirement would fail in HA: refuse it."""
    module = tmp_path / "needs.py"
    module.write_text("import requests\nimport serial\nimport json\n")
    with pytest.raises(bundle.BundleError, match=r"imports `requests`"):
        bundle._check_requirements(module, {"pyserial"})
    module.write_text("import serial\nimport json\nimport homeassistant.core\n")
    bundle._check_requirements(module, {"pyserial"})


def test_rewrite_depths() -> None:
    """Relative imports resolve to the vendored root from any depth."""
    src = "from vemonitor.vedirect.fields import X\nfrom vemonitor import clock\n"
    assert bundle.rewrite(src, 0, "_vemonitor") == (
        "from ._vemonitor.vedirect.fields import X\nfrom ._vemonitor import clock\n")
    assert bundle.rewrite(src, 1, "") == "from ..vedirect.fields import X\nfrom .. import clock\n"
    assert bundle.rewrite(src, 0, "") == "from .vedirect.fields import X\nfrom . import clock\n"


# ------------------------------------------------------------------ HACS's rules
# From https://hacs.xyz/docs/publish/integration and /docs/publish/start (read
# 2026-12): hacs.json at the root with a name; zip_release needs filename; one
# integration under custom_components/; its manifest.json has domain, documentation,
# issue_tracker, codeowners, name, version; brand assets in a root brand/ folder with at
# least icon.png.

def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_repository_follows_hacs_structure_rules() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert hacs["name"]
    assert hacs["zip_release"] is True and hacs["filename"] == "vemonitor.zip"
    assert not hacs.get("content_in_root", False)
    assert [p.name for p in (ROOT / "custom_components").iterdir() if p.is_dir()
            and p.name != "__pycache__"] == ["vemonitor"]
    manifest = json.loads((COMPONENT / "manifest.json").read_text())
    for key in ("domain", "documentation", "issue_tracker", "codeowners", "name", "version"):
        assert manifest[key], key
    assert manifest["domain"] == COMPONENT.name
    assert _png_size(ROOT / "brand" / "icon.png") == (256, 256)  # HA brands: 256x256
    assert _png_size(ROOT / "brand" / "icon@2x.png") == (512, 512)


def test_minimum_home_assistant_is_the_oldest_tested() -> None:
    """hacs.json's minimum HA is the release the oldest test venv pins (same month)."""
    hacs = json.loads((ROOT / "hacs.json").read_text())
    pin = (ROOT / "integrations" / "homeassistant" / "requirements_test.txt").read_text()
    # 0.13.236 pins homeassistant 2025.4.4 (stated in the file's comment).
    tested = re.search(r"homeassistant==(\d+\.\d+)\.\d+", pin)
    assert tested is not None
    assert hacs["homeassistant"].rsplit(".", 1)[0] == tested.group(1)


def test_manifest_version_is_the_package_version() -> None:
    init = (ROOT / "vemonitor" / "__init__.py").read_text()
    version = re.search(r'__version__ = "([^"]+)"', init)
    assert version is not None
    assert json.loads((COMPONENT / "manifest.json").read_text())["version"] == version.group(1)


def test_python_for_newest_home_assistant_uses_a_private_apt_configuration() -> None:
    """get_python.sh never reads or changes the machine's apt sources or dpkg database."""
    script = (ROOT / "integrations" / "homeassistant" / "get_python.sh").read_text()
    for option in ("Dir::Etc=$CACHE", "Dir::Etc::sourcelist=$CACHE", "Dir::Etc::sourceparts=-",
                   "Dir::State::status=$CACHE", "Dir::Cache=$CACHE", "Dir::State::Lists=$CACHE"):
        assert option in script, option
    assert "install -y -d" in script  # download only; unpacked with dpkg-deb -x under CACHE
    assert not re.search(r"\b(sudo|dpkg -i|apt-get install -y [^-])", script)
    assert not re.search(r"(?<![A-Za-z/])/etc/apt", script)  # only $CACHE/apt/etc/...
