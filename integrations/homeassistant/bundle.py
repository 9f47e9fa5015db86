"""Build the self-contained Home Assistant component: ``python bundle.py OUTDIR``.

Writes ``OUTDIR/vemonitor.zip`` in HACS ``zip_release`` form: the files of
``custom_components/vemonitor/`` at the zip's root, plus the part of the vemonitor core
they need, vendored as the private subpackage ``_vemonitor/``. Home Assistant installs
only the manifest's requirements (all on PyPI); the ``vemonitor`` distribution is not
needed (nor wanted: it is not on PyPI, and the name could be anyone's).

What is vendored is found by following imports, not from a list: starting at the
component's modules, every ``from vemonitor.x import ...`` pulls in ``vemonitor/x.py``
(or the package ``vemonitor/x/``) and, recursively, what that imports, with every parent
package's ``__init__.py``. The vendored files are the source files with one change, the
one pip's ``vendoring`` tool makes too: absolute ``from vemonitor... import`` statements
become relative to the vendored root. Nothing else differs (tests/homeassistant proves
it). A plain ``import vemonitor...`` cannot be made relative: the build stops, naming the
file and line. Third-party imports of the vendored code must be manifest requirements
(THIRD_PARTY below) or the build stops.

The zip is reproducible: sorted entries, fixed timestamps.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "custom_components" / "vemonitor"
CORE = ROOT / "vemonitor"
CORE_NAME = "vemonitor"
VENDOR = "_vemonitor"  # the vendored core's folder inside the component
ZIP_NAME = "vemonitor.zip"
ZIP_DATE = (2024, 1, 1, 0, 0, 0)

# Top-level third-party modules the vendored code may import -> the PyPI distribution
# that provides them (it must be in the manifest's requirements).
THIRD_PARTY: dict[str, str] = {"serial": "pyserial"}
# Modules Home Assistant itself provides to a component (never manifest requirements).
HOME_ASSISTANT_PROVIDED = frozenset({"homeassistant", "voluptuous"})

_FROM_CORE = re.compile(r"from(\s+)vemonitor(\.|\s)")


class BundleError(Exception):
    """The component cannot be bundled (one line: file, line, what)."""


@dataclass(frozen=True)
class Bundle:
    """The files of the bundle: zip path -> bytes."""

    files: dict[str, bytes]

    @property
    def vendored(self) -> dict[str, bytes]:
        """Return the vendored core files (zip path -> bytes)."""
        return {k: v for k, v in self.files.items() if k.startswith(VENDOR + "/")}


def _module_file(module: str) -> Path | None:
    """Return the source file of a ``vemonitor...`` module, or None when it is none."""
    parts = module.split(".")[1:]
    base = CORE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(path: Path) -> Iterator[Path]:
    """Yield the ``__init__.py`` of every core package containing ``path``."""
    folder = path.parent
    while folder == CORE or CORE in folder.parents:
        yield folder / "__init__.py"
        folder = folder.parent


def _core_imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """Yield (line, module, names) of each absolute ``vemonitor`` import in ``path``."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == CORE_NAME:
                    raise BundleError(f"{path}:{node.lineno}: `import {alias.name}` cannot be "
                                      f"vendored: write `from {alias.name} import ...`")
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] == CORE_NAME):
            yield node.lineno, node.module, [a.name for a in node.names]


def _third_party(path: Path) -> set[str]:
    """Return the top-level non-stdlib, non-core modules ``path`` imports."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != CORE_NAME
            and n != "__future__"}


def core_closure(starts: list[Path]) -> list[Path]:
    """Return the core files the ``starts`` files need, following their imports."""
    needed: set[Path] = set()
    todo = list(starts)
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for line, module, names in _core_imports(path):
            target = _module_file(module)
            if target is None:
                raise BundleError(f"{path}:{line}: `{module}` is not a module of {CORE}")
            found = [target] + [sub for name in names
                                if (sub := _module_file(f"{module}.{name}")) is not None]
            for file in found:
                for dep in (file, *_parents(file)):
                    if dep not in needed:
                        needed.add(dep)
                        todo.append(dep)
    return sorted(needed)


def rewrite(source: str, depth: int, vendor_prefix: str) -> str:
    """Make the ``from vemonitor`` imports of a module relative to the vendored root.

    ``depth`` is how many packages the module sits below its root package (the component
    for component modules, ``_vemonitor`` for vendored ones); ``vendor_prefix`` is
    ``_vemonitor`` for component modules and ``""`` for vendored ones. Only the
    statements' ``from vemonitor`` heads change: ``from vemonitor.a import x`` becomes
    ``from ._vemonitor.a import x`` in the component, ``from ..a import x`` in a vendored
    module one package deep.
    """
    dots = "." * (depth + 1)

    def relative(match: re.Match[str]) -> str:
        if vendor_prefix:
            return f"from{match.group(1)}{dots}{vendor_prefix}{match.group(2)}"
        return f"from{match.group(1)}{dots}" + (" " if match.group(2) != "." else "")

    lines = source.splitlines(keepends=True)
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                and node.module.split(".")[0] == CORE_NAME):
            index = node.lineno - 1
            line = lines[index]
            head, count = _FROM_CORE.subn(relative, line[node.col_offset:], 1)
            if count != 1:
                raise BundleError(f"line {node.lineno}: cannot rewrite `{line.strip()}`")
            lines[index] = line[:node.col_offset] + head
    return "".join(lines)


def _vendored_name(path: Path) -> str:
    """Return the zip path of a core file."""
    return f"{VENDOR}/{path.relative_to(CORE).as_posix()}"


def _component_files() -> list[Path]:
    """Return the component's own files (no caches)."""
    return sorted(p for p in COMPONENT.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
                  and VENDOR not in p.relative_to(COMPONENT).parts)


def _requirements() -> set[str]:
    """Return the distribution names of the manifest's requirements."""
    manifest = json.loads((COMPONENT / "manifest.json").read_text(encoding="utf-8"))
    return {re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower()
            for req in manifest.get("requirements", [])}


def build() -> Bundle:
    """Return the bundle's files: the component, its imports rewritten, plus the core it needs."""
    files: dict[str, bytes] = {}
    sources = _component_files()
    py_sources = [p for p in sources if p.suffix == ".py"]
    for path in sources:
        name = path.relative_to(COMPONENT).as_posix()
        data = path.read_bytes()
        if path.suffix == ".py":
            depth = len(path.relative_to(COMPONENT).parts) - 1
            data = rewrite(data.decode("utf-8"), depth, VENDOR).encode("utf-8")
        files[name] = data
    # The brand images, also inside the component: Home Assistant shows a custom
    # integration's own brand/ folder (HACS reads the repository's root brand/).
    for path in sorted((ROOT / "brand").glob("*.png")):
        files[f"brand/{path.name}"] = path.read_bytes()
    requirements = _requirements()
    for path in py_sources:
        _check_requirements(path, requirements)
    for path in core_closure(py_sources):
        depth = len(path.relative_to(CORE).parts) - 1
        files[_vendored_name(path)] = rewrite(path.read_text(encoding="utf-8"), depth,
                                              "").encode("utf-8")
        _check_requirements(path, requirements)
    return Bundle(files)


def _check_requirements(path: Path, requirements: set[str]) -> None:
    """Stop when ``path`` imports a third-party module the manifest does not require."""
    for module in sorted(_third_party(path) - HOME_ASSISTANT_PROVIDED):
        dist = THIRD_PARTY.get(module)
        if dist is None or dist.lower() not in requirements:
            raise BundleError(f"{path}: imports `{module}`, which is not a requirement in "
                              f"{COMPONENT / 'manifest.json'}")


def write_tree(bundle: Bundle, dest: Path) -> Path:
    """Write the bundle's files under ``dest`` (what unzipping the release gives)."""
    for name, data in bundle.files.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest


def write_zip(bundle: Bundle, outdir: Path) -> Path:
    """Write ``outdir/vemonitor.zip`` (reproducible: sorted, fixed dates)."""
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / ZIP_NAME
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(bundle.files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, bundle.files[name])
    return path


def main(argv: list[str]) -> int:
    """Build the zip into the folder given on the command line."""
    if len(argv) != 1:
        print("usage: python integrations/homeassistant/bundle.py OUTDIR", file=sys.stderr)
        return 2
    try:
        path = write_zip(build(), Path(argv[0]))
    except BundleError as err:
        print(f"bundle: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
