"""Hydra's own job runner, for what only Hydra does: ``-m`` multirun sweeps and its flags.

A single run does not come here (see :mod:`vemonitor.launch`); this module is the
only one that applies ``@hydra.main``.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from vemonitor.config.build import build_run
from vemonitor.config.errors import ConfigError
from vemonitor.job import execute
from vemonitor.registry import IntegrationError, Registry


@hydra.main(version_base="1.3", config_path="pkg://conf", config_name="config")
def hydra_entry(cfg: DictConfig) -> None:
    """Hydra's entry point: run one job and exit non-zero on a config error."""
    from vemonitor.cli import ORIGINS, resolved
    from vemonitor.secretpolicy import protect_sweep

    protect_sweep()  # multirun.yaml: secrets masked, mode 0600
    try:
        container = resolved(cfg)
        registry = Registry().discover()
        spec = build_run(container, registry, ORIGINS)
    except (ConfigError, IntegrationError) as err:
        from vemonitor.secretpolicy import scrub

        print(f"vemonitor: config error: {scrub(str(err), sys.argv)}", file=sys.stderr)
        sys.exit(2)
    execute(spec, registry)
