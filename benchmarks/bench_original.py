"""Side by side: the original vemonitor_m8 and vemonitor, at the same time, on the same sample.

Each program gets its own simulated BMV-700 (``hw_sim`` in a separate process, so its CPU
is not counted), its own ``redis-server`` on a free loopback port and the original's
``vedirect_to_redis`` sample (../shared/seed_configs/vemonitor_m8/vedirect_to_redis), with
only the serial port and the Redis port changed. Both start at the same moment, so the
machine's load is the same for both. Printed for both, and the ratio vemonitor/original:

- CPU, % of one core, over the measured window (after the warm-up);
- RSS steady, MiB: the median of one sample a second over the window, whole process tree;
- RSS start-up peak, MiB: the largest sum of the tree's RSS, sampled every 20 ms from the
  start to the end of the warm-up (vemonitor's configuration child included where it forks one);
- row age when it appears, median s: how long after its time stamp a row's field shows in
  the sample's HmapTimeSeries hash (``bmv700_bmv700`` in db 3), polled every 50 ms (the
  issue's figure);
- beside it, for vemonitor, the phase-free figure: the median wait from the moment the
  device's data of a row was complete to the moment the row shows (the batch's wait plus
  what vemonitor adds). The age above also holds the device's phase: where in each second
  the simulated BMV completes its cycle, set by the moment its simulator started and
  chosen by neither program. Each simulator (``benchmarks/phased_sim.py``) says when its
  first cycle was complete; that modulo 1 s is the phase, printed for both devices. A
  vemonitor row keeps its slot's start as its time stamp and holds the cycle completed
  ``phase`` s into the slot, so its wait is its age less the phase. (The original stamps
  a row with its own loop's time, truncated to the second in the hash, so the same cannot
  be worked out for it from outside.)

``--wire usb`` runs both simulated BMVs of the side by side on hw_sim's usb wire (19200
baud 8N1 in an FTDI cable's chunks, hw_sim/wire.py: how a Pi receives the bytes); the
default ``instant`` is the bare pty of the earlier rounds. The device costs below stay
on the instant wire.

Then the cost of one and of eight devices for vemonitor (a generated legacy block: N BMVs,
one Redis output), so the per-device cost shows.

The original runs from a checkout (``--original PATH`` or ``VEMONITOR_ORIGINAL``) with a
Python that has its requirements (``--original-python`` or ``VEMONITOR_ORIGINAL_PYTHON``,
default: this one). Without a checkout the benchmark prints one ``skipped:`` line and
exits 0. The original only opens virtual ports named ``~/vmodemN`` (vedirect_m8's
serconnect), so its HOME is a temp dir holding ``vmodem1`` -> the simulator's pty.

Run from the repo root: ``python benchmarks/bench_original.py --original ../vemonitor_m8
--original-python ../venv-orig/bin/python [--seconds 300] [--warm-up 60]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_daemon import _start_sim, _stop, _write_block, machine  # noqa: E402
from benchmarks.procstat import _tick_cpu, cpu_rss  # noqa: E402
from tests.servers import RedisServer  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "seed_configs" / "vemonitor_m8" / "vedirect_to_redis"
BLOCK = "bmvFakeSerial"
AGE_KEY, AGE_DB = "bmv700_bmv700", 3  # the sample's output: redis_node bmv700, db 3
PEAK_PERIOD = 0.02  # s between start-up RSS samples


@dataclass
class Figures:
    """What one program cost."""

    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    peak_mb: float = 0.0
    age_s: float = float("nan")
    phase_s: float = float("nan")  # the device's phase (see the module's docstring)
    wait_s: float = float("nan")  # the median age less the phase (vemonitor)
    rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _tree(pid: int) -> list[int]:
    """Return ``pid`` and its live descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _tree_cpu_rss(pid: int) -> tuple[float, int]:
    """Return the CPU seconds and RSS bytes of the live process tree of ``pid``.

    CPU is /proc/<pid>/stat's utime + stime (clock ticks): unlike the live threads' sched
    times (procstat.cpu_rss) it keeps the time of threads that have ended, and over a
    window of minutes the 10 ms tick is precise enough.
    """
    cpu, rss = 0.0, 0
    for member in _tree(pid):
        try:
            member_rss = cpu_rss(member)[1]
            member_cpu = _tick_cpu(member)
        except (OSError, StopIteration, IndexError, ValueError):
            continue  # exited meanwhile
        cpu, rss = cpu + member_cpu, rss + member_rss
    return cpu, rss


class AgeWatcher(threading.Thread):
    """Polls the sample's hash and notes when each row's field first shows."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis(host="127.0.0.1", port=port, db=AGE_DB)
        self.seen: dict[int, float] = {}  # row time stamp -> wall time it was first seen
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.05):
            try:
                fields = self.client.hkeys(AGE_KEY)
            except Exception:  # noqa: BLE001 (the server is starting or stopping)
                continue
            now = time.time()
            for name in fields:
                stamp = int(float(name))
                self.seen.setdefault(stamp, now)

    def median_age(self, since: float, until: float, phase: float = 0.0) -> tuple[float, int]:
        """Return the median age of the rows first seen in [since, until], less ``phase``,
        and their count."""
        ages = [seen - stamp - phase for stamp, seen in self.seen.items()
                if since <= seen <= until]
        return (statistics.median(ages) if ages else float("nan")), len(ages)


@dataclass
class Program:
    """One program under test: its command, environment, directory and servers."""

    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    redis_port: int
    process: subprocess.Popen[bytes] | None = None
    watcher: AgeWatcher | None = None
    phase: float = float("nan")  # its device's phase, s into each second
    peak: int = 0
    samples: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.watcher = AgeWatcher(self.redis_port)
        self.watcher.start()
        self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop_event.set()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def _original_program(base: Path, checkout: Path, python: str, sim_dir: Path,
                      redis_port: int, cache_interval: int | None = None) -> Program:
    """Return the original on a copy of the sample (its serial port and Redis port changed)."""
    conf, home = base / "conf", base / "home"
    conf.mkdir(parents=True)
    home.mkdir()
    (home / "vmodem1").symlink_to(sim_dir / "ttyVE_bmv700")
    for source in SAMPLE.glob("*.yaml"):
        (conf / source.name).write_text(source.read_text())
    connectors_file = conf / "vm_appConnectors.yaml"
    connectors = yaml.safe_load(connectors_file.read_text())
    connectors["appConnectors"]["serial"]["bmv700"]["serialPort"] = str(home / "vmodem1")
    connectors["appConnectors"]["redis"]["local"]["port"] = redis_port
    connectors_file.write_text(yaml.safe_dump(connectors))
    if cache_interval is not None:
        conf_file = conf / "vm_conf.yaml"
        blocks = yaml.safe_load(conf_file.read_text())
        blocks["appBlocks"][0]["outputs"]["redis"][0]["cache_interval"] = cache_interval
        conf_file.write_text(yaml.safe_dump(blocks))
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(checkout))
    # The checkout's __main__.py is outside the package: call its entry point directly.
    command = [python, "-c", "import vemonitor_m8; vemonitor_m8.main()", "--block", BLOCK]
    return Program("original", command, env, conf, redis_port)


def _vemonitor_program(base: Path, sim_dir: Path, redis_port: int,
                       config_dir: Path = SAMPLE, block: str = BLOCK,
                       overrides: tuple[str, ...] = ()) -> Program:
    """Return vemonitor on the sample as a user runs it (the same two changes, as overrides)."""
    env = dict(os.environ, HOME=str(base), XDG_STATE_HOME=str(base))
    command = [sys.executable, "-m", "vemonitor", f"config_dir={config_dir}", f"block={block}",
               f"state_dir={base}/state", *overrides]
    if config_dir == SAMPLE:
        command += [f"appConnectors.redis.local.port={redis_port}",
                    f"appConnectors.serial.bmv700.serialPort={sim_dir}/ttyVE_bmv700"]
    return Program("vemonitor", command, env, base, redis_port)


def measure(programs: list[Program], seconds: float, warm_up: float) -> dict[str, Figures]:
    """Start the programs together, sample their start-up peaks, then measure the window."""
    for program in programs:
        program.start()
    began = time.monotonic()
    while time.monotonic() - began < warm_up:
        for program in programs:
            assert program.process is not None
            program.peak = max(program.peak, _tree_cpu_rss(program.process.pid)[1])
        time.sleep(PEAK_PERIOD)
    start_cpu = {p.name: _tree_cpu_rss(p.process.pid)[0] for p in programs if p.process}
    window_start, wall_start = time.monotonic(), time.time()
    while time.monotonic() - window_start < seconds:
        time.sleep(1.0)
        for program in programs:
            assert program.process is not None
            program.samples.append(_tree_cpu_rss(program.process.pid)[1])
    elapsed = time.monotonic() - window_start
    end_cpu = {p.name: _tree_cpu_rss(p.process.pid)[0] for p in programs if p.process}
    wall_end = time.time()
    results: dict[str, Figures] = {}
    for program in programs:
        assert program.watcher is not None
        age, rows = program.watcher.median_age(wall_start, wall_end)
        wait = program.watcher.median_age(wall_start, wall_end, program.phase)[0]
        results[program.name] = Figures(
            cpu_percent=100 * (end_cpu[program.name] - start_cpu[program.name]) / elapsed,
            rss_mb=statistics.median(program.samples) / 2**20, peak_mb=program.peak / 2**20,
            age_s=age, phase_s=program.phase, wait_s=wait, rows=rows)
        program.stop()
    return results


def side_by_side(checkout: Path, python: str, seconds: float, warm_up: float,
                 cache_interval: int | None = None, wire: str = "instant"
                 ) -> dict[str, Figures]:
    """Run the original and vemonitor on the sample at the same time; return their figures."""
    with tempfile.TemporaryDirectory() as tmp_o, tempfile.TemporaryDirectory() as tmp_v, \
            RedisServer(workdir=Path(tmp_o) / "redis") as redis_o, \
            RedisServer(workdir=Path(tmp_v) / "redis") as redis_v:
        sim_o, phase_o = _start_phased_sim(Path(tmp_o) / "sim", wire)
        sim_v, phase_v = _start_phased_sim(Path(tmp_v) / "sim", wire)
        try:
            overrides = (() if cache_interval is None else
                         (f"block.outputs.redis.0.cache_interval={cache_interval}",))
            programs = [_original_program(Path(tmp_o), checkout, python, Path(tmp_o) / "sim",
                                          redis_o.port, cache_interval),
                        _vemonitor_program(Path(tmp_v), Path(tmp_v) / "sim", redis_v.port,
                                           overrides=overrides)]
            programs[0].phase, programs[1].phase = phase_o, phase_v
            try:
                return measure(programs, seconds, warm_up)
            finally:
                for program in programs:
                    program.stop()
        finally:
            _stop(sim_o)
            _stop(sim_v)


def _start_phased_sim(directory: Path, wire: str = "instant"
                      ) -> tuple[subprocess.Popen[str], float]:
    """Start a simulated BMV-700 (benchmarks/phased_sim.py); return it and its phase (s).

    The phase is where in each second its cycles complete: the end of its first cycle
    modulo 1 s (the simulator keeps a steady 1 s schedule from it).
    """
    sim = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "phased_sim.py"),
                            "--wire", wire, str(directory), "bmv700"], stdout=subprocess.PIPE, text=True,
                           cwd=ROOT)
    assert sim.stdout is not None
    sim.stdout.readline()  # the device's path
    line = sim.stdout.readline().split()  # "cycle NAME WALL", "" if it never completed one
    return sim, (float(line[2]) % 1.0 if len(line) == 3 else float("nan"))


def device_cost(devices: int, seconds: float, warm_up: float) -> Figures:
    """Return vemonitor's figures for ``devices`` BMVs at 1 Hz into one Redis output."""
    with tempfile.TemporaryDirectory() as tmp, \
            RedisServer(workdir=Path(tmp) / "redis") as server:
        base = Path(tmp)
        sim = _start_sim([f"bmv700:d{i}" for i in range(devices)], base / "sim")
        _write_block(base / "conf", devices, base / "sim", server.port)
        program = _vemonitor_program(base, base / "sim", server.port, base / "conf", "bench")
        try:
            return measure([program], seconds, warm_up)["vemonitor"]
        finally:
            program.stop()
            _stop(sim)


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else "n/a"


def report(figures: dict[str, Figures]) -> list[str]:
    """Return the side-by-side table (Markdown) of the two programs."""
    ours, theirs = figures["vemonitor"], figures["original"]
    rows = [("CPU, % of one core", "cpu_percent", "{:.3f}"),
            ("RSS steady, MiB", "rss_mb", "{:.1f}"),
            ("RSS start-up peak, process tree, MiB", "peak_mb", "{:.1f}"),
            ("row age when it appears, median s", "age_s", "{:.2f}")]
    lines = ["| figure | vemonitor | original | ratio |", "|---|---|---|---|"]
    for label, name, fmt in rows:
        a, b = getattr(ours, name), getattr(theirs, name)
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {_ratio(a, b)} |")
    lines.append(f"| device phase (its cycles complete this far into each second), s | "
                 f"{ours.phase_s:.3f} | {theirs.phase_s:.3f} | |")
    lines.append(f"| phase-free: data complete -> row shows (the batch's wait + vemonitor's), "
                 f"median s | {ours.wait_s:.3f} "
                 f"| n/a | |")
    lines.append(f"| rows seen in the window | {ours.rows} | {theirs.rows} | |")
    return lines


def main() -> int:
    """Run the side-by-side measurement and the device costs; print them."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", default=os.environ.get("VEMONITOR_ORIGINAL", ""),
                        help="the vemonitor_m8 checkout (or VEMONITOR_ORIGINAL)")
    parser.add_argument("--original-python",
                        default=os.environ.get("VEMONITOR_ORIGINAL_PYTHON", sys.executable),
                        help="a Python with the original's requirements")
    parser.add_argument("--seconds", type=float, default=300.0, help="measured window")
    parser.add_argument("--warm-up", type=float, default=60.0)
    parser.add_argument("--devices", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--cache-interval", type=int, default=None,
                        help="set the sample output's cache_interval in both programs")
    parser.add_argument("--wire", choices=("instant", "usb"), default="instant",
                        help="the side by side's simulated wire (hw_sim/wire.py): instant "
                             "(bare pty) or usb (19200 baud through an FTDI cable)")
    opts = parser.parse_args()
    checkout = Path(opts.original) if opts.original else None
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"warm-up {opts.warm_up:g} s, window {opts.seconds:g} s, wire {opts.wire}")
    if checkout is None or not (checkout / "vemonitor_m8" / "__init__.py").is_file():
        print("skipped: no checkout of the original vemonitor_m8 (give --original PATH or "
              "VEMONITOR_ORIGINAL)")
    elif not SAMPLE.is_dir():
        print(f"skipped: the original's sample is not at {SAMPLE} (../shared is absent)")
    else:
        if opts.cache_interval is not None:
            print(f"the sample's output with cache_interval: {opts.cache_interval}")
        for line in report(side_by_side(checkout, opts.original_python, opts.seconds,
                                        opts.warm_up, opts.cache_interval, opts.wire)):
            print(line)
    costs = [device_cost(n, opts.seconds, opts.warm_up) for n in opts.devices]
    for n, cost in zip(opts.devices, costs):
        print(f"vemonitor, {n} device(s): cpu {cost.cpu_percent:.3f} % of one core, "
              f"rss {cost.rss_mb:.1f} MiB, start-up peak {cost.peak_mb:.1f} MiB")
    if len(costs) >= 2:
        first, last = costs[0], costs[-1]
        extra = opts.devices[-1] - opts.devices[0]
        print(f"per extra device: cpu {(last.cpu_percent - first.cpu_percent) / extra:.3f} % "
              f"of one core, rss {(last.rss_mb - first.rss_mb) / extra:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
