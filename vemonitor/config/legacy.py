"""Load the original project's configuration sets (``vm_conf.yaml`` + ``Imports``).

The layout, as vemonitor_m8 documents it: a directory holding ``vm_conf.yaml``
with ``appBlocks`` (a list of blocks) and ``Imports`` (file names of the same
directory whose top-level keys, e.g. ``appConnectors`` and ``batteryBanks``, are
merged in). Directories searched, first found wins: the one given
(``config_dir=PATH``), then ``/opt/vemonitor_m8/conf``, ``/opt/vemonitor/conf``,
``~/.vemonitor``.

Decisions (what the seed's README promises, even where its code did not):

* Import names start with a letter or digit, hold only ``[A-Za-z0-9_-]``, end in
  ``.yaml`` or ``.yml``, and name a file of the same directory: no paths, no ``..``.
* ``${NAME}`` in a string is replaced by the environment variable NAME (the seed's
  samples use ``/${HOME}/vmodem1``); ``${oc.env:NAME}`` is kept for OmegaConf, so
  secrets can stay in the environment. An unset variable is an error.
* A top-level key defined by two files is an error naming both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vemonitor.config import yamlguard
from vemonitor.config.seed import check_unique_blocks
from vemonitor.errors import ConfigError
from vemonitor.secretpolicy import remember

ROOT_FILES = ("vm_conf.yaml", "vm_conf.yml")
SEARCH_DIRS = ("/opt/vemonitor_m8/conf", "/opt/vemonitor/conf", "~/.vemonitor")
IMPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\.ya?ml")
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
KNOWN_KEYS = ("appBlocks", "appConnectors", "batteryBanks", "Imports", "solarPlant")


@dataclass
class LegacyConfig:
    """A loaded legacy set: its blocks, its other sections, and which file each came from."""

    directory: Path
    blocks: list[dict[str, Any]]
    sections: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)

    def block(self, name: str) -> dict[str, Any] | None:
        """Return the block called ``name``, if there is one."""
        return next((b for b in self.blocks if b.get("name") == name), None)

    def block_names(self) -> list[str]:
        """Return the names of the blocks, in file order."""
        return [str(b.get("name")) for b in self.blocks]


def find_legacy_dir(config_dir: str | None = None) -> Path | None:
    """Return the first directory holding a ``vm_conf.yaml`` (``config_dir`` first)."""
    candidates = [config_dir] if config_dir else list(SEARCH_DIRS)
    for candidate in candidates:
        directory = Path(candidate).expanduser()
        if any((directory / name).is_file() for name in ROOT_FILES):
            return directory
    return None


def load_legacy(directory: Path) -> LegacyConfig:
    """Load and merge ``vm_conf.yaml`` and its Imports from ``directory``."""
    root = next((directory / n for n in ROOT_FILES if (directory / n).is_file()), None)
    if root is None:
        raise ConfigError(f"no {ROOT_FILES[0]} in {directory}", file=str(directory))
    data = _read_mapping(root)
    origins = {key: str(root) for key in data}
    for index, name in enumerate(_imports(data, root)):
        path = _import_path(directory, name, root, index)
        for key, value in _read_mapping(path).items():
            if key in data:
                raise ConfigError(f"'{key}' is defined in both {origins[key]} and {path}",
                                  file=str(path), key=key)
            data[key] = value
            origins[key] = str(path)
    blocks = data.pop("appBlocks", None)
    if not isinstance(blocks, list) or not blocks:
        raise ConfigError("appBlocks must be a non-empty list of blocks", file=str(root),
                          key="appBlocks")
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise ConfigError("each block must be a mapping", file=str(root),
                              key=f"appBlocks[{index}]")
    data.pop("Imports", None)
    check_unique_blocks(blocks, origins.get("appBlocks", str(root)))
    return LegacyConfig(directory, blocks, data, origins)


def _imports(data: dict[str, Any], root: Path) -> list[str]:
    """Return the Imports list, checked to be a list of strings."""
    imports = data.get("Imports") or []
    if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
        raise ConfigError("Imports must be a list of file names", file=str(root), key="Imports")
    return imports


def _import_path(directory: Path, name: str, root: Path, index: int) -> Path:
    """Return the path of one Import after checking its name."""
    key = f"Imports[{index}]"
    if not IMPORT_NAME.fullmatch(name):
        raise ConfigError(
            f"invalid import name '{name}': a file name of this directory, starting with a "
            "letter or digit, of [A-Za-z0-9_-], ending in .yaml or .yml (no paths)",
            file=str(root), key=key)
    path = directory / name
    if not path.is_file():
        raise ConfigError(f"imported file '{name}' not found in {directory}", file=str(root),
                          key=key)
    return path


def _read_mapping(path: Path) -> dict[str, Any]:
    """Parse a YAML file that must hold a mapping, expanding ${VAR} from the environment."""
    yamlguard.check_file(path)
    import yaml  # here, not at the top: the daemon imports this module but reads no YAML

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}invalid YAML ({problem})", file=str(path)) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read ({err})", file=str(path)) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping of sections", file=str(path))
    return {str(k): _expand(v, str(path), str(k)) for k, v in data.items()}


def _expand(value: Any, file: str, key: str) -> Any:
    """Replace ${VAR} by environment values in every string of ``value``."""
    if isinstance(value, dict):
        return {k: _expand(v, file, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        def env(match: re.Match[str]) -> str:
            name = match[1]
            if name not in os.environ:
                raise ConfigError(f"environment variable {name} is not set", file=file, key=key)
            remember(os.environ[name])  # from the environment: a secret wherever it lands
            return os.environ[name]
        return _ENV_VAR.sub(env, value)
    return value


SEED_CACHE_DOMAIN = "redis"  # the seed's ``redis_cache`` keeps the rows in a Redis connector


def cache_section(block: Mapping[str, Any]) -> tuple[str, Any, str | None]:
    """Return (key path, section, the domain its key implies) of a block's cache.

    The section is None without one. The seed's ``redis_cache: {source,
    max_data_points}`` is a cache whose key implies its domain (``redis``); vemonitor's
    ``cache`` names it (``domain``). The key path stays the one the user wrote, so a
    mistake is named where it is.
    """
    seed = block.get("redis_cache")
    if block.get("cache") is not None or seed is None:
        return "block.cache", block.get("cache"), None
    return "block.redis_cache", seed, SEED_CACHE_DOMAIN
