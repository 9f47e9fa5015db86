"""Find integrations (built-in folders and pip packages) and hold what they register.

An integration is a package with a ``manifest.json`` and a small
``setup(registry, manifest)`` that registers its schemas and worker factories.
Built-in ones live in the top-level ``integrations`` package; external ones are
pip packages exposing the entry-point group ``vemonitor.integrations`` (the entry
point names the package). Manifests are read for every integration (cheap JSON);
``setup`` runs only for the domains a configuration uses, so a broken
integration only matters when it is used, and then it is named in the error.

What integrations may use lives in :mod:`vemonitor.api` (the contract); this
module only finds them (manifests, entry points) and keeps what they register.
Services (the simulator) are found here too, through ``vemonitor.services``.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from vemonitor.api import (
    CacheFactory,
    Connector,
    InputItem,
    IntegrationError,
    OutputItem,
    SendCost,
    ServiceSpec,
    SinkFactory,
    SourceFactory,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vemonitor.integrations"
BUILTIN_PACKAGE = "vemonitor_integrations"  # the repo folder integrations/, installed under our name
PROVIDES = ("input", "output", "cache")
SERVICE_GROUP = "vemonitor.services"


@dataclass(frozen=True)
class Manifest:
    """The plain data of ``manifest.json``."""

    domain: str
    name: str
    version: str
    provides: tuple[str, ...]
    iot_class: str = "local_polling"
    requirements: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    origin: str = "built-in"

    @classmethod
    def from_dict(cls, data: Any, origin: str) -> Manifest:
        """Build a manifest from JSON data, naming the integration and the field in any error.

        Every field is checked for its type, so a typo in a third-party manifest is
        reported here rather than as a strange failure later.
        """
        try:
            if not isinstance(data, dict):
                raise ValueError("it must hold a JSON object")
            provides = _texts(data, "provides", required=True)
            unknown = [p for p in provides if p not in PROVIDES]
            if unknown:
                raise ValueError(f"unknown 'provides' {unknown}, expected {list(PROVIDES)}")
            domain = _text(data, "domain")
            if not DOMAIN_PATTERN.fullmatch(domain):
                raise ValueError(f"'domain' {domain!r} must be lower case letters, digits and _")
            return cls(domain=domain, name=_text(data, "name"), version=_text(data, "version"),
                       provides=provides, iot_class=_text(data, "iot_class", "local_polling"),
                       requirements=_texts(data, "requirements"),
                       aliases=_texts(data, "aliases"), origin=origin)
        except ValueError as err:
            raise IntegrationError(f"{origin}: invalid manifest.json ({err})") from err


DOMAIN_PATTERN = re.compile(r"[a-z][a-z0-9_]*")  # a domain is a config key (block.outputs.<domain>)


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    """Return a manifest's non-empty string field (``default`` when absent, else required)."""
    if key not in data and default is not None:
        return default
    if key not in data:
        raise ValueError(f"missing '{key}'")
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{key}' must be a non-empty string, got {value!r}")
    return value


def _texts(data: dict[str, Any], key: str, required: bool = False) -> tuple[str, ...]:
    """Return a manifest's list-of-strings field (empty when absent and not required)."""
    if key not in data:
        if required:
            raise ValueError(f"missing '{key}'")
        return ()
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"'{key}' must be a list of strings, got {value!r}")
    return tuple(value)


@dataclass
class Registration:
    """What one integration registered."""

    manifest: Manifest
    connector: type[Connector] | None = None
    input_item: type[InputItem] | None = None
    output_item: type[OutputItem] | None = None
    source_factory: SourceFactory | None = None
    sink_factory: SinkFactory | None = None
    cache_factory: CacheFactory | None = None
    durable: bool = True  # False: the output's outbox lives in memory (e.g. the console)
    cost: SendCost = field(default_factory=SendCost)


class Registry:
    """Integrations found, and the schemas and factories of those set up."""

    def __init__(self) -> None:
        self.manifests: dict[str, Manifest] = {}
        self.failed: dict[str, str] = {}  # name -> why it could not be found or loaded
        self._modules: dict[str, Callable[[], ModuleType]] = {}
        self._aliases: dict[str, str] = {}
        self._registered: dict[str, Registration] = {}
        self.services: dict[str, ServiceSpec] = {}  # config key -> service (the simulator)

    # ------------------------------------------------------------- discovery
    def discover(self) -> Registry:
        """Read the manifests of built-in integrations and of installed entry points,
        and find the installed services."""
        self._discover_builtin()
        self._discover_entry_points()
        self.services = discover_services()
        return self

    def _discover_builtin(self) -> None:
        from importlib import resources  # noqa: PLC0415 (see _discover_entry_points)

        root = resources.files(BUILTIN_PACKAGE)
        for folder in sorted(root.iterdir(), key=lambda p: p.name):
            manifest_file = folder / "manifest.json"
            if not manifest_file.is_file():
                continue
            module = f"{BUILTIN_PACKAGE}.{folder.name}"
            self._add_manifest(manifest_file.read_text(), f"built-in {module}", module,
                               folder.name)

    def _discover_entry_points(self) -> None:
        # Imported where used: importlib.metadata (with email) is ~4.6 MiB of RSS, and the
        # daemon imports this module only to unpickle the Registry its configuration
        # child discovered (docs/performance.md).
        from importlib import metadata, resources  # noqa: PLC0415

        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            origin = f"package {entry.dist.name if entry.dist else '?'} ({entry.value})"
            try:
                text = (resources.files(entry.value) / "manifest.json").read_text()
            except (ModuleNotFoundError, FileNotFoundError, TypeError, ImportError) as err:
                self.failed[entry.name] = f"{origin}: no manifest.json ({err})"
                continue
            self._add_manifest(text, origin, entry.value, entry.name)

    def _add_manifest(self, text: str, origin: str, module: str, key: str) -> None:
        """Record a manifest; a broken one is recorded in ``failed`` under ``key``.

        ``key`` is what the user can find in their setup: the entry point's name for an
        installed package, the folder's name for a built-in integration.
        """
        try:
            manifest = Manifest.from_dict(json.loads(text), origin)
        except json.JSONDecodeError as err:
            self.failed[key] = f"{origin}: manifest.json is not JSON ({err})"
            return
        except IntegrationError as err:
            self.failed[key] = str(err)
            return
        if manifest.domain in self.manifests:
            first = self.manifests[manifest.domain].origin
            self.failed[key] = f"{origin}: domain '{manifest.domain}' already provided by {first}"
            return
        self.manifests[manifest.domain] = manifest
        # A partial, not a lambda: the registry is pickled from the configuration child
        # to the daemon (vemonitor.cli.compose_payload).
        self._modules[manifest.domain] = functools.partial(importlib.import_module, module)
        for alias in manifest.aliases:
            self._aliases[alias] = manifest.domain

    # ------------------------------------------------------------- registration
    def register(self, domain: str, *, connector: type[Connector] | None = None,
                 input_item: type[InputItem] | None = None,
                 output_item: type[OutputItem] | None = None,
                 source_factory: SourceFactory | None = None,
                 sink_factory: SinkFactory | None = None,
                 cache_factory: CacheFactory | None = None, durable: bool = True,
                 cost: SendCost | None = None) -> None:
        """Record an integration's schemas and worker factories (called from its setup).

        ``durable=False`` keeps the output's outbox in memory: for outputs whose
        rows are worth nothing after a restart (a screen), so they cost no disk writes.
        ``cost`` says what one send costs, for the write budget (vemonitor.budget).
        """
        self._registered[domain] = Registration(
            self.manifests[domain], connector, input_item, output_item, source_factory,
            sink_factory, cache_factory, durable, cost or SendCost())

    def canonical(self, domain: str) -> str:
        """Return the domain for a name or a legacy alias (``serial`` -> ``vedirect``)."""
        return self._aliases.get(domain, domain)

    def known(self) -> list[str]:
        """Return the domains found, sorted."""
        return sorted(self.manifests)

    def get(self, domain: str) -> Registration:
        """Return an integration's registration, running its setup on first use."""
        domain = self.canonical(domain)
        if domain in self._registered:
            return self._registered[domain]
        if domain not in self.manifests:
            known = ", ".join(self.known()) or "none"
            raise IntegrationError(f"unknown integration '{domain}' (available: {known})")
        try:
            module = self._modules[domain]()
            module.setup(self, self.manifests[domain])
        except Exception as err:  # an integration's own bug must not take the others down
            raise IntegrationError(
                f"integration '{domain}' ({self.manifests[domain].origin}) failed to load: "
                f"{type(err).__name__}: {err}") from err
        if domain not in self._registered:
            raise IntegrationError(f"integration '{domain}' did not register itself in setup()")
        return self._registered[domain]

    def load_all(self) -> dict[str, str]:
        """Set up every integration found; return domain -> error for those that failed."""
        errors = dict(self.failed)
        for domain in self.known():
            try:
                self.get(domain)
            except IntegrationError as err:
                errors[domain] = str(err)
        return errors


def discover_services() -> dict[str, ServiceSpec]:
    """Return the installed services (entry points ``vemonitor.services``) by config key.

    A service that cannot be loaded is an IntegrationError naming it: its config
    section would otherwise be reported as an unknown key.
    """
    from importlib import metadata  # noqa: PLC0415 (see Registry._discover_entry_points)

    found: dict[str, ServiceSpec] = {}
    for entry in metadata.entry_points(group=SERVICE_GROUP):
        try:
            spec = entry.load()
        except Exception as err:  # a broken package must be named, not a traceback
            raise IntegrationError(f"service '{entry.name}' ({entry.value}) failed to load: "
                                   f"{type(err).__name__}: {err}") from err
        if not isinstance(spec, ServiceSpec):
            raise IntegrationError(f"service '{entry.name}' ({entry.value}) is not a "
                                   f"vemonitor.api.ServiceSpec")
        found.setdefault(spec.key, spec)
    return found
