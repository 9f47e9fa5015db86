"""The plugin contract: everything an integration may use from the core, in one file.

An integration (built-in under ``integrations/`` or a pip package exposing the
``vemonitor.integrations`` entry point) imports this module and the VE.Direct
codec (``vemonitor.vedirect``, ``vemonitor.serial_reader``, ``vemonitor.scan``),
nothing else of the core; ``tests/test_import_graph.py`` keeps it so.

What is here:

* the workers: :class:`Source` (an input connection), :class:`Sink` (an output
  connection), :class:`Cache` (where rows wait); validation does no I/O,
  ``start()`` connects, ``close()`` is idempotent, ``write(batch)`` succeeds or raises;
* optional abilities, each a ``runtime_checkable`` Protocol the engine checks with
  ``isinstance`` (never a ``getattr`` probe): :class:`PushesUpdates`,
  :class:`ServesItems`, :class:`ForwardsRows`, :class:`AcknowledgesRows`,
  :class:`DescribesDevice`,
  :class:`Lifecycle`;
* what workers receive: :class:`Context`, :class:`InputInfo`; what an
  integration's ``setup(registry, manifest)`` may call: :class:`Registrar`;
  what a send costs (for the write budget): :class:`SendCost`;
* the data: :class:`Row`, :class:`Batch`, :class:`DropRow`, ``Value``;
* the item types integrations subclass: :class:`Connector`, :class:`InputItem`,
  :class:`OutputItem` (with :class:`DeliveryConfig`), and :func:`load_item`, which
  types a mapping by such a schema the way validation does;
* the error taxonomy (:mod:`vemonitor.errors`): integrations subclass
  :class:`SinkUnavailable`, :class:`SinkAuthFailed`, :class:`SinkRejected`,
  :class:`BatchRejected`; the sender decides by class, never by name;
* control (issue 23, docs/control.md): :class:`Controls`, :class:`ControlView`,
  :class:`ControlResult`; a surface (the MQTT sink) uses only ``Context.controls``;
  a source that owns device controls says so with :class:`ProvidesControls`;
* services (the simulator): :class:`ServiceSpec`, found through the
  ``vemonitor.services`` entry points and started around a run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from vemonitor import __version__ as __version__
from vemonitor.clock import Clock as Clock
from vemonitor.controltypes import ControlKind as ControlKind
from vemonitor.controltypes import ControlResult as ControlResult
from vemonitor.controltypes import Controls as Controls
from vemonitor.controltypes import ControlView as ControlView
from vemonitor.controltypes import ResultKind as ResultKind
from vemonitor.datacache import DataCache as DataCache
from vemonitor.errors import BatchRejected as BatchRejected
from vemonitor.errors import ConfigError as ConfigError
from vemonitor.errors import IntegrationError as IntegrationError
from vemonitor.errors import SinkAuthFailed as SinkAuthFailed
from vemonitor.errors import SinkError as SinkError
from vemonitor.errors import SinkRejected as SinkRejected
from vemonitor.errors import SinkUnavailable as SinkUnavailable
from vemonitor.errors import VemonitorError as VemonitorError
from vemonitor.logsafe import MASK as MASK
from vemonitor.model import Batch as Batch
from vemonitor.model import DropRow as DropRow
from vemonitor.model import Row as Row
from vemonitor.outside import MAX_TEXT as MAX_ROW_TEXT  # noqa: F401 (re-exported)
from vemonitor.outside import BadRow as BadRow
from vemonitor.outside import loads as load_json  # noqa: F401 (re-exported)
from vemonitor.outside import parse_fields as parse_fields
from vemonitor.outside import parse_values as parse_values
from vemonitor.schema import Connector as Connector
from vemonitor.schema import DeliveryConfig as DeliveryConfig
from vemonitor.schema import FieldError as FieldError
from vemonitor.schema import InputItem as InputItem
from vemonitor.schema import OutputItem as OutputItem
from vemonitor.schema import load_item as load_item
from vemonitor.secretpolicy import check_host as check_host
from vemonitor.secretpolicy import check_host_port as check_host_port
from vemonitor.secretpolicy import check_http_url as check_http_url
from vemonitor.supervise import supervised as supervised
from vemonitor.vedirect.fields import Value as Value


# ----------------------------------------------------------------- workers
class Source(Protocol):
    """An input connection shared by every input item that names it.

    ``latest()`` returns the newest values and their clock time, or None when
    there is nothing yet or the device is unavailable. Validation does no I/O:
    ``start()`` connects; ``close()`` is idempotent.
    """

    name: str

    def start(self) -> None: ...

    def close(self) -> None: ...

    def latest(self) -> tuple[dict[str, Value], float] | None: ...

    def stats(self) -> dict[str, Any]: ...


class Sink(Protocol):
    """An output connection: ``write(batch)`` succeeds or raises; ``close()`` is idempotent.

    A failed write raises a subclass of :class:`SinkError`; anything else is
    treated as an outage (retried with backoff) and logged with its type.
    """

    def start(self) -> None: ...

    def write(self, batch: Batch) -> None: ...

    def close(self) -> None: ...


class Cache(Protocol):
    """Where rows wait between inputs and outputs (memory by default, or redis_cache).

    Outputs take rows by arrival: ``seq`` is the arrival number of the last row
    added, ``arrived_after(input, seq)`` the (number, row) pairs added after it,
    so a row forwarded late with an old time is taken like any other.
    """

    dropped: int
    seq: int

    def add(self, row: Row) -> None: ...

    def arrived_after(self, input_name: str, seq: int) -> list[tuple[int, Row]]: ...


# ------------------------------------------------------- optional abilities
@runtime_checkable
class PushesUpdates(Protocol):
    """A source that says when a new snapshot is complete (the engine then makes rows early)."""

    def notify_on_update(self, callback: Callable[[], None]) -> None: ...


@runtime_checkable
class ServesItems(Protocol):
    """A source serving several inputs that learns each input item it serves."""

    def subscribe(self, item: Any) -> None: ...


@runtime_checkable
class ForwardsRows(Protocol):
    """A source of rows with their own times (Redis written by another vemonitor).

    Its rows are passed on one by one, never sampled at ticks.
    """

    def rows_since(self, after: float, input_name: str | None = None) -> list[Row]: ...


@runtime_checkable
class AcknowledgesRows(Protocol):
    """A forwarding source that acknowledges its rows only once they are stored (MQTT).

    The engine calls ``stored(input_name, count)`` when the next ``count`` rows it took
    from ``rows_since`` for that input, in the order they were handed, are in every
    output's durable outbox (or were left out on purpose: a row the steps dropped).
    """

    def stored(self, input_name: str, count: int) -> None: ...


@runtime_checkable
class DescribesDevice(Protocol):
    """A source that knows its device: available (bool), pid, product, serial, firmware."""

    def device(self) -> dict[str, Any]: ...


@runtime_checkable
class ProvidesControls(Protocol):
    """A source whose device has controls enabled (the VE.Direct source, issue 23): the
    engine gathers them into ``Context.controls`` before the sinks are built."""

    def controls(self) -> Controls | None: ...


@runtime_checkable
class KeepsStats(Protocol):
    """A sink that counts what it did (requests, points, values left out...): exported as
    ``vemonitor_integration_stat`` on the metrics endpoint. Numbers only count."""

    def stats(self) -> dict[str, Any]: ...


@runtime_checkable
class Lifecycle(Protocol):
    """A worker with a start and a close (a Redis cache connects and closes; memory does not)."""

    def start(self) -> None: ...

    def close(self) -> None: ...


# ------------------------------------------------------- what workers receive
@dataclass
class InputInfo:
    """What a sink may know about one input of the block (e.g. for Home Assistant discovery)."""

    name: str
    domain: str
    connector: str
    columns: tuple[str, ...]
    standard_names: dict[str, str]  # device column -> standard name (the input's ref_cols)
    source: Any  # the Source serving it

    def device(self) -> dict[str, Any]:
        """Return the live device identity and availability (empty when unknown).

        Keys: available (bool), pid, product, serial, firmware.
        """
        return dict(self.source.device()) if isinstance(self.source, DescribesDevice) else {}


@dataclass
class Context:
    """What workers may use: the clock, the state directory, the block and its inputs.

    ``port_globs`` are serial ports a service (the simulator) adds to every scan;
    ``shared`` holds per-run state an integration shares between its workers,
    under its domain (the vedirect integration keeps its port scanner there).
    ``controls`` is every device control of the run (issue 23, docs/control.md), None
    when no serial device has a control enabled; set before the sinks are built.
    """

    clock: Clock
    state_dir: str
    debug: bool = False
    stale_after: float = 5.0
    max_time_skew: float = 86400.0  # a forwarded row further from the clock is refused
    port_globs: tuple[str, ...] = ()
    block: str = ""
    inputs: dict[str, InputInfo] = field(default_factory=dict)  # filled before sinks are built
    shared: dict[str, Any] = field(default_factory=dict)
    controls: Controls | None = None


# Factories receive their own integration's typed item/connector (hence Any here).
SourceFactory = Callable[[str, Any, Context], Source]
SinkFactory = Callable[[Any, Any, Context], Sink]
CacheFactory = Callable[[Any, int, Context], Cache]


@dataclass(frozen=True)
class SendCost:
    """What one send of an output costs, declared by its integration (for the write budget).

    ``local_writes``: writes to local storage per send besides the outbox's own;
    ``requests``: ``"send"`` (one request per send), ``"row"`` (one per row) or None;
    ``redis_commands(item, inputs, sends, rows)``: Redis commands per hour, or None.
    """

    local_writes: int = 0
    requests: str | None = None
    redis_commands: Callable[[OutputItem, int, float, float], float] | None = None

    def __post_init__(self) -> None:
        if self.requests not in (None, "send", "row"):
            raise ValueError(f"SendCost.requests must be 'send', 'row' or None, "
                             f"got {self.requests!r}")


class ManifestInfo(Protocol):
    """The manifest an integration's ``setup`` receives (read from its manifest.json)."""

    @property
    def domain(self) -> str: ...

    @property
    def version(self) -> str: ...


class Registrar(Protocol):
    """What an integration's ``setup(registry, manifest)`` may call."""

    def register(self, domain: str, *, connector: type[Connector] | None = None,
                 input_item: type[InputItem] | None = None,
                 output_item: type[OutputItem] | None = None,
                 source_factory: SourceFactory | None = None,
                 sink_factory: SinkFactory | None = None,
                 cache_factory: CacheFactory | None = None, durable: bool = True,
                 cost: SendCost | None = None) -> None: ...


# ----------------------------------------------------------------- services
@dataclass(frozen=True)
class ServiceContext:
    """What a service is started with: the run's clock and state directory."""

    clock: Clock
    state_dir: str


@dataclass(frozen=True)
class ServiceRun:
    """What a started service offers the run: serial ports to add to every scan."""

    port_globs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceSpec:
    """A service found through the ``vemonitor.services`` entry points (the simulator).

    ``key`` is its top-level config section, typed by ``schema`` (a dataclass);
    ``start(config, context)`` returns a context manager around the run (it imports
    its heavy parts only when the config asks for something); ``resolvers`` are
    OmegaConf resolvers its default config uses (``${name:}``); ``port_glob`` is the
    name pattern of the serial ports it makes in a directory (``vemonitor scan --sim-dir``).
    ``clock_start(config, now)``, when given, may return the epoch the run's clock starts
    at instead of ``now`` (the simulator: at its simulated time of day, so rows are
    stamped with the time its simulated sun shows); None keeps ``now``.
    """

    key: str
    schema: type
    start: Callable[[Any, ServiceContext], AbstractContextManager[ServiceRun]]
    resolvers: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    port_glob: str | None = None
    clock_start: Callable[[Any, float], float | None] | None = None
