"""One vemonitor job: validate, start the services (the simulator) if asked, run the engine.

Shutdown work is done in our own try/finally (Ctrl-C skips Hydra's callbacks):
SIGINT and SIGTERM stop the inputs, outputs flush what they gathered, the summary
is printed and written to ``summary.json`` in the state directory (and in the
job's output directory in a multirun), and the exit status is 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vemonitor import budget, exits, logsafe, risks, statelock, stopsignals, supervise
from vemonitor.api import ServiceContext
from vemonitor.clock import Clock, ScaledClock, SystemClock
from vemonitor.config.build import RunSpec, build_run
from vemonitor.errors import ConfigError, IntegrationError, OutboxError
from vemonitor.registry import Registry

log = logging.getLogger("vemonitor")


def prepare_run(container: dict[str, Any], origins: dict[str, str]) -> tuple[RunSpec, Registry]:
    """Validate a composed configuration completely, before anything starts.

    Builds the run, checks the write budget and the state directory, and wires
    the run once (:func:`vemonitor.engine.wiring.wire`): every source and sink is
    constructed without I/O (their contract), so a sink's own settings are
    checked too. Any mistake is a ConfigError (one line).
    """
    spec, registry = prepare_spec(container, origins)
    check_wiring(spec, registry)
    return spec, registry


def prepare_spec(container: dict[str, Any], origins: dict[str, str]) -> tuple[RunSpec, Registry]:
    """The first half of :func:`prepare_run`: build the run, check the budget and state dir.

    A single run does this half in its configuration child (vemonitor.cli), which
    already holds omegaconf, and the second, :func:`check_wiring`, in the daemon, which
    needs the integrations' modules anyway: the child never imports those (redis-py is
    20 MiB), so the two processes' sum at start-up stays small (docs/performance.md).
    """
    registry = Registry().discover()
    spec = build_run(container, registry, origins)
    budget.check(spec, registry, spec.runtime.budget_override)
    check_state_dir(spec.runtime.state_dir)
    return spec, registry


def check_wiring(spec: RunSpec, registry: Registry) -> None:
    """Construct every source and sink once, without I/O: their own settings are checked."""
    from vemonitor.engine.wiring import wire

    try:
        wire(spec, registry, SystemClock())
    except IntegrationError as err:
        raise ConfigError(str(err)) from err


def check_state_dir(path: Path) -> None:
    """Create the state directory now, so a bad one is one line, not a traceback."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {path} ({err.strerror or err})", key="state_dir") \
            from err
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{path} is not writable", key="state_dir")


def execute(spec: RunSpec, registry: Registry) -> None:
    """Run one validated job: warnings (budget, security), dry run or the engine, summary.

    A mistake found only now (a metrics port in use...) is raised as a ConfigError
    for the command to print.
    """
    logsafe.install(spec.secrets)  # before the first warning: every line goes through it
    for notice in spec.notices:
        log.warning("%s", notice)
    for problem in budget.check(spec, registry, spec.runtime.budget_override):
        log.warning("budget override: %s", problem)
    risks.warn(spec)  # a dry run says every security warning a real start says
    if spec.runtime.dry_run:
        print(plan(spec, registry))
        return
    try:
        summary = run(spec, registry)
    except OutboxError as err:
        unwritable = _unwritable(spec.runtime.state_dir)
        if unwritable is None:
            raise  # a disk that cannot be used: exit 3 (the command says it in one line)
        # Not ours to write: a setup mistake, so exit 2 (systemd's
        # RestartPreventExitStatus=2: no restart loop every 5 s).
        raise ConfigError(f"{err}; fix: make {unwritable} writable by this user, "
                          "or set state_dir=", key="state_dir") from err
    summary["files"] = {"summary": str(spec.runtime.state_dir / "summary.json")}
    print_summary(summary, _job_label())
    try:
        write_summary(summary, spec.runtime.state_dir, _job_dir())
    except OSError as err:
        print(f"vemonitor: cannot write summary.json ({exits.describe_disk_error(err)}); "
              f"the previous one is kept", file=sys.stderr)
        sys.exit(exits.STATE)
    if supervise.FATAL.is_set():
        sys.exit(exits.BUG)


def _unwritable(state_dir: Path) -> Path | None:
    """Return the state directory or a file in it (an outbox) this user may not write."""
    if not os.access(state_dir, os.W_OK | os.X_OK):
        return state_dir
    for path in sorted(state_dir.glob("*")):
        if path.is_file() and not os.access(path, os.W_OK):
            return path
    return None


def run(spec: RunSpec, registry: Registry) -> dict[str, Any]:
    """Run a validated spec to its end; return the summary."""

    logsafe.install(spec.secrets)
    if spec.runtime.debug:
        logging.getLogger().setLevel(logging.DEBUG)
    spec.runtime.state_dir.mkdir(parents=True, exist_ok=True)
    with statelock.hold(spec.runtime.state_dir):
        return _run_locked(spec, registry)


def _run_locked(spec: RunSpec, registry: Registry) -> dict[str, Any]:
    """Run the engine (the state directory's lock is held)."""
    from vemonitor.engine import Engine

    clock = run_clock(spec, registry)
    with services(spec, registry, clock) as port_globs:
        engine = Engine(spec, registry, clock, port_globs=port_globs)
        log.info("block %s: %d inputs, %d outputs; %s", spec.block, len(spec.inputs),
                 len(spec.outputs), budget.describe(spec, registry))
        server = _metrics(engine, spec)
        restarts_before = supervise.restarts()  # a multirun runs jobs in one process
        try:
            with stopsignals.watching(engine.stop):
                engine.run(spec.runtime.duration)
        finally:
            if server is not None:
                server.shutdown()
        summary = engine.summary()
        summary["thread_restarts"] = {
            name: count - restarts_before.get(name, 0)
            for name, count in supervise.restarts().items()
            if count > restarts_before.get(name, 0)}
        summary["budget"] = {b.output: b.as_dict() for b in budget.budget(spec, registry)}
        return summary


def _metrics(engine: Any, spec: RunSpec) -> Any:
    """Start the Prometheus endpoint when metrics.port is set."""
    metrics = spec.runtime.metrics
    if metrics.port is None:
        return None
    from vemonitor.metrics import serve

    try:
        server = serve(engine, metrics.port, metrics.host)
    except OSError as err:
        raise ConfigError(f"cannot listen on {metrics.host}:{metrics.port} ({err.strerror})",
                          key="metrics.port") from err
    log.info("metrics on http://%s:%d/metrics", metrics.host, metrics.port)
    return server


def run_clock(spec: RunSpec, registry: Registry) -> Clock:
    """Return the run's clock: ``speed`` times wall time, from now or from where a service
    asks it to start (``ServiceSpec.clock_start``: the Demo's simulated noon)."""
    now = SystemClock().now()
    origin = next((start for key, service in registry.services.items()
                   if key in spec.services and service.clock_start is not None
                   and (start := service.clock_start(spec.services[key], now)) is not None),
                  None)
    if spec.runtime.speed == 1 and origin is None:
        return SystemClock()
    return ScaledClock(SystemClock(), spec.runtime.speed, origin)


@contextlib.contextmanager
def services(spec: RunSpec, registry: Registry, clock: Clock) -> Iterator[tuple[str, ...]]:
    """Run the installed services around the engine (the simulator: ``simulator.devices``).

    Yields the serial ports they add to every scan. They share the engine's clock.
    """
    context = ServiceContext(clock=clock, state_dir=str(spec.runtime.state_dir))
    with contextlib.ExitStack() as stack:
        globs: list[str] = []
        for key, service in registry.services.items():
            if key in spec.services:
                globs += stack.enter_context(service.start(spec.services[key], context)).port_globs
        yield tuple(globs)


def plan(spec: RunSpec, registry: Registry) -> str:
    """Return what a run would do: inputs, outputs and the write budget (dry_run=true)."""
    lines = [f"block {spec.block} (dry run: nothing started)"]
    for item in spec.inputs:
        lines.append(f"  input  {item.name}: {item.domain}:{item.connector} every "
                     f"{item.time_interval:g} s, columns {', '.join(item.columns) or 'all'}")
    for out in spec.outputs:
        lines.append(f"  output {out.name}: {out.domain} every {out.time_interval:g} s, "
                     f"batches of {out.cache_interval} ticks")
    return "\n".join([*lines, budget.describe(spec, registry)])


def _job_dir() -> Path | None:
    """Return the job's output directory in a multirun (None for a single run)."""
    if "hydra" not in sys.modules:  # a single run never loads Hydra (vemonitor.cli)
        return None
    from hydra.core.hydra_config import HydraConfig

    try:
        config = HydraConfig.get()
    except ValueError:
        return None
    if config.mode is None or config.mode.name != "MULTIRUN":
        return None
    return Path(config.runtime.output_dir)


def write_summary(summary: dict[str, Any], state_dir: Path, job_dir: Path | None) -> None:
    """Write summary.json to the state directory (and the multirun job's directory)."""
    text = json.dumps(summary, indent=2, sort_keys=True)
    for folder in (state_dir, job_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomic(folder / "summary.json", text + "\n")


def _write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all (a full disk keeps the previous one, never 0 bytes)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def print_summary(summary: dict[str, Any], label: str = "") -> None:
    """Print the exit summary: rows per input, frames per device, batches per output, files."""
    from vemonitor.exit_summary import summary_lines

    print("\n".join(summary_lines(summary, label)), flush=True)


def _job_label() -> str:
    """Return 'job N: overrides' in a multirun (its summaries would look alike), else ''."""
    if "hydra" not in sys.modules:
        return ""
    from hydra.core.hydra_config import HydraConfig

    try:
        config = HydraConfig.get()
    except ValueError:
        return ""
    if config.mode is None or config.mode.name != "MULTIRUN":
        return ""
    from vemonitor.secretpolicy import mask_overrides

    return f"job {config.job.num}: {' '.join(mask_overrides(config.overrides.task))}"
