"""Hydra composition: from a command line to one resolved configuration (or one error line).

The command (:mod:`vemonitor.cli`) calls this module; it never calls back. It

* translates the seed's flags (``--block X --debug``) and picks where the block
  comes from (a legacy ``vm_conf.yaml`` set, the user's config dirs, ``conf/``):
  :func:`prepare`, which also says which file each section came from (origins);
* composes and resolves with Hydra's compose API (:func:`compose_job`,
  :func:`resolved`), every failure one :class:`ConfigError` line;
* hands a command line to Hydra's own runner for what only Hydra does (``-m``
  sweeps, ``--help``): :func:`run_hydra`, whose task receives each job's config
  and gets the origins by closure (no module global);
* answers ``--cfg job`` with secrets redacted (:func:`print_config`).

Services found through the ``vemonitor.services`` entry points (the simulator)
add their config section's schema and their resolvers here, so the core's own
schema does not know them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from vemonitor.config.legacy import SEARCH_DIRS, LegacyConfig, find_legacy_dir, load_legacy
from vemonitor.config.paths import CONFIG_PACKAGE
from vemonitor.errors import ConfigError
from vemonitor.registry import discover_services
from vemonitor.schema import BlockConfig, VemonitorConfig

CONFIG_MODULE = CONFIG_PACKAGE  # the repo folder conf/, installed under our name
CONFIG_NAME = "config"
LEGACY_PREFIX = "legacy__"


@dataclass
class Prepared:
    """The command line after legacy translation, and where each config section came from."""

    argv: list[str]
    origins: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------- preparation
def register_resolvers() -> None:
    """Register the resolvers the shipped config and the services use (idempotent)."""
    from vemonitor.config.paths import default_state_dir

    def state_dir(configured: str | None) -> str:
        return str(Path(configured).expanduser()) if configured else str(default_state_dir())

    from vemonitor.secretpolicy import install_env_resolver

    install_env_resolver()  # ${oc.env:...} values are remembered as secrets
    resolvers: dict[str, Callable[..., Any]] = {"vm_state_dir": state_dir}
    for service in discover_services().values():
        resolvers.update(service.resolvers)
    for name, func in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, func)


def register_schema() -> None:
    """Register the primary schema in Hydra's ConfigStore, with a section per service."""
    sections = [(key, service.schema, field(default_factory=service.schema))
                for key, service in discover_services().items()]
    schema = (make_dataclass("VemonitorConfig", sections, bases=(VemonitorConfig,))
              if sections else VemonitorConfig)
    ConfigStore.instance().store(name="vemonitor_schema", node=schema)


def hydra_blocks() -> dict[str, str]:
    """Return block name -> file for Hydra blocks: the user's config dirs first, then conf/."""
    found: dict[str, str] = {}
    for directory in SEARCH_DIRS:
        folder = Path(directory).expanduser() / "block"
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                found.setdefault(path.stem, str(path))
    packaged = resources.files(CONFIG_MODULE) / "block"
    for entry in sorted(packaged.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            found.setdefault(entry.name[:-5], f"conf/block/{entry.name}")
    return found


def shipped_blocks() -> list[str]:
    """Return the names of the blocks packaged in conf/block."""
    return sorted(name for name, path in hydra_blocks().items() if path.startswith("conf/"))


def prepare(args: list[str]) -> Prepared:
    """Translate the seed's flags and decide where the block comes from.

    Precedence: ``config_dir=`` (a legacy set) if given; else a block of the user's
    legacy ``vm_conf.yaml`` found in the search directories; else a Hydra block of
    the user's config directories; else a packaged one. No block means ``Demo``.
    """
    argv = _translate_legacy_flags(args) + _user_searchpath()
    block = _override_value(argv, "block")
    config_dir = _override_value(argv, "config_dir")
    blocks = hydra_blocks()
    legacy_dir = find_legacy_dir(config_dir)
    if config_dir is not None and legacy_dir is None:
        missing = "does not exist" if not Path(config_dir).expanduser().exists() else \
            "holds no vm_conf.yaml"
        raise ConfigError(f"{config_dir} {missing}", key="config_dir")
    if block is None and config_dir is None:
        return Prepared(argv, _hydra_origins(blocks, "Demo"))
    legacy = load_legacy(legacy_dir) if legacy_dir is not None else None
    if config_dir is not None or (legacy is not None and legacy.block(str(block)) is not None):
        return _use_legacy(argv, block, legacy, sorted(blocks))
    if block in blocks:
        return Prepared(argv, _hydra_origins(blocks, str(block)))
    seed_flags = any(a == "--block" or a.startswith("--block=") for a in args)
    return _use_legacy(argv, block, legacy, sorted(blocks), seed_flags)


def _use_legacy(argv: list[str], block: str | None, legacy: LegacyConfig | None,
                shipped: list[str], seed_flags: bool = False) -> Prepared:
    """Register the legacy block as a config option and point the overrides at it."""
    names = legacy.block_names() if legacy else []
    if block is None:
        if len(names) != 1:
            raise ConfigError(f"choose a block with block=NAME (blocks: {', '.join(names)})",
                              key="block")
        block = names[0]
    chosen = legacy.block(block) if legacy else None
    if chosen is None or legacy is None:
        available = ", ".join(shipped + [f"{n} (legacy)" for n in names])
        looked = "" if legacy is not None or not seed_flags else (
            "; no legacy vm_conf.yaml found in " + ", ".join(SEARCH_DIRS)
            + " (give config_dir=DIR, e.g. config_dir=examples/legacy)")
        raise ConfigError(f"unknown block '{block}' (available: {available}){looked}",
                          key="block")
    root = legacy.origins.get("appBlocks", str(legacy.directory / "vm_conf.yaml"))
    _check_block_keys(chosen, root, names.index(block))
    chosen, sections = seed_meanings(legacy, chosen, root, names.index(block))
    store = ConfigStore.instance()
    store.store(group="block", name=LEGACY_PREFIX + block, node=chosen)
    store.store(group="connectors", name="legacy", node=sections, package="_global_")
    argv = [a for a in argv if not a.startswith(("block=", "config_dir=", "connectors="))]
    argv += [f"block={LEGACY_PREFIX}{block}", "connectors=legacy"]
    origins = {"block": root, "appConnectors": legacy.origins.get("appConnectors", root),
               "batteryBanks": legacy.origins.get("batteryBanks", root)}
    return Prepared(argv, origins)


def seed_meanings(legacy: LegacyConfig, block: dict[str, Any], file: str,
                  index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the block and sections with vemonitor_m8's meanings (vemonitor.config.seed)."""
    from vemonitor.config.seed import translate_block, translate_connectors

    chosen = translate_block(block, file, index)
    sections = {k: v for k, v in legacy.sections.items() if k in ("appConnectors", "batteryBanks")}
    connectors_file = legacy.origins.get("appConnectors", file)
    sections["appConnectors"], notices = translate_connectors(sections.get("appConnectors"),
                                                              connectors_file)
    if sections["appConnectors"] is None:
        del sections["appConnectors"]
    chosen["notices"] = [*chosen["notices"], *notices]
    return chosen, sections


def _check_block_keys(block: dict[str, Any], file: str, index: int) -> None:
    """Reject keys a block does not have, naming them (Hydra would print a traceback-ish error)."""
    allowed = set(BlockConfig.__dataclass_fields__)
    for key in block:
        if key not in allowed:
            raise ConfigError(f"unknown key (allowed: {', '.join(sorted(allowed))})", file=file,
                              key=f"appBlocks[{index}].{key}")


def _user_searchpath() -> list[str]:
    """Return a hydra.searchpath override for the user config dirs that exist (if any)."""
    existing = [Path(d).expanduser() for d in SEARCH_DIRS if Path(d).expanduser().is_dir()]
    if not existing:
        return []
    from vemonitor.config.yamlguard import check_file

    for folder in existing:  # Hydra may load any of them: bound them all first
        for path in sorted(folder.glob("**/*.y*ml"))[:1000]:
            check_file(path)
    return ["hydra.searchpath=[" + ",".join(f"file://{d}" for d in existing) + "]"]


def _hydra_origins(blocks: dict[str, str], block: str) -> dict[str, str]:
    return {"block": blocks.get(block, f"conf/block/{block}.yaml"),
            "appConnectors": "conf/connectors/default.yaml"}


def _translate_legacy_flags(args: list[str]) -> list[str]:
    """Return args with ``--block X`` / ``--block=X`` / ``--debug`` as Hydra overrides."""
    out: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--block":
            value = next(items, None)
            if value is None:
                raise ConfigError("--block needs a block name", key="block")
            out.append(f"block={value}")
        elif arg.startswith("--block="):
            out.append("block=" + arg.split("=", 1)[1])
        elif arg == "--debug":
            out.append("debug=true")
        else:
            out.append(arg)
    return out


def _override_value(argv: list[str], key: str) -> str | None:
    for arg in argv:
        for prefix in (f"{key}=", f"+{key}=", f"++{key}="):
            if arg.startswith(prefix):
                return arg[len(prefix):]
    return None


def _overrides(argv: list[str]) -> list[str]:
    """Return the key=value overrides of a command line (flags and their values removed)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-dir",
                   "-cd", "--config-path", "-cp"):
            skip = True
            continue
        if not arg.startswith("-"):
            out.append(arg)
    return out


# ------------------------------------------------------------------ validation
def compose_config(prepared: Prepared) -> Any:
    """Compose the job config with Hydra's compose API, as one ConfigError on failure."""
    return compose_job(prepared)[0]


def compose_job(prepared: Prepared) -> tuple[Any, dict[str, Any]]:
    """Return the composed job config and Hydra's ``job_logging`` for it.

    The ``hydra`` node is taken off the job config (its sweep settings only
    resolve inside a multirun).
    """
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = compose(CONFIG_NAME, overrides=_overrides(prepared.argv),
                          return_hydra_config=True)
        with open_dict(cfg):
            hydra_node = cfg.pop("hydra")
        logging_config = OmegaConf.to_container(hydra_node.job_logging, resolve=True)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise ConfigError(_one_line(err)) from err
    assert isinstance(logging_config, dict)
    return cfg, {str(key): value for key, value in logging_config.items()}


def resolved(cfg: Any, origins: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the config as plain data with interpolations resolved, or a ConfigError.

    A missing environment variable names itself, the file of its section (``origins``)
    and the way to give a default.
    """
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        unset = re.search(r"Environment variable '([^']+)' not found", str(err))
        if unset:
            file = (origins or {}).get(str(key or "").split(".")[0])
            raise ConfigError(f"environment variable {unset[1]} is not set (${{oc.env:"
                              f"{unset[1]}}}); set it, or give a default: "
                              f"${{oc.env:{unset[1]},DEFAULT}}", file=file, key=key) from err
        raise ConfigError(_one_line(err), key=key) from err
    assert isinstance(container, dict)
    return {str(key): value for key, value in container.items()}


def print_config(prepared: Prepared) -> int:
    """Print the composed job config with every secret replaced by '***'."""
    cfg = compose_config(prepared)
    container = OmegaConf.to_container(cfg, resolve="--resolve" in prepared.argv)
    assert isinstance(container, dict)
    from vemonitor.secretpolicy import mask_tree

    safe = mask_tree(container)
    print(yaml.safe_dump(safe, sort_keys=False), end="")
    return 0


def _one_line(err: BaseException) -> str:
    """Return one informative line from a Hydra/OmegaConf error (and the error it wraps)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    text = lines[0]
    if text.startswith(("In ", "Could not override")) and len(lines) > 1:
        text = f"{text} {lines[1]}"
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        cause_lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        text = f"{text}: {cause_lines[0]}"
        lines += cause_lines[1:]
    keys = [line for line in lines[1:] if line.startswith("full_key:")]
    if keys:
        text += f" ({keys[0]})"
    return text


def compose_run(args: list[str]) -> dict[str, Any]:
    """Compose and resolve a single run: the plain config, its origins and its logging config."""
    register_resolvers()
    register_schema()
    prepared = prepare(args)
    cfg, logging_config = compose_job(prepared)
    container = resolved(cfg, prepared.origins)
    from vemonitor.secretpolicy import from_env

    return {"container": container, "origins": prepared.origins, "logging": logging_config,
            "env_secrets": from_env()}


def run_hydra(prepared: Prepared, task: Callable[[Any, dict[str, str]], None]) -> None:
    """Run the command line with Hydra's own runner (``-m`` sweeps, ``--help``, ``--info``...).

    ``task(cfg, origins)`` runs each job; the origins of this command line reach it
    by closure. ``@hydra.main`` is applied here, once, to that closure.
    """
    import sys

    import hydra

    origins = dict(prepared.origins)

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME)
    def vemonitor_job(cfg: Any) -> None:
        task(cfg, origins)

    sys.argv = [sys.argv[0], *prepared.argv]
    vemonitor_job()
