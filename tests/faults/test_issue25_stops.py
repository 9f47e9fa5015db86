"""Issue 25 point 8: a SIGINT/SIGTERM at any moment ends the daemon cleanly.

The finding: the old handler called ``Event.set()`` on the event the main thread
waits on; a signal landing while the main thread held that event's lock deadlocked
the process at stop. Now the handler only records the signal
(:mod:`vemonitor.stopsignals`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pytest

from vemonitor import cli

STOP_DEADLINE = 30.0  # packaging/vemonitor.service TimeoutStopSec: systemd kills after this

# In a subprocess: hold the lock of the event the main thread waits on, and let a
# signal land right then (its Python handler runs before the next bytecode).
HOLD_LOCK_WHILE_SIGNALLED = textwrap.dedent("""
    import os, signal, sys, threading
    event = threading.Event()
    if sys.argv[1] == "old":
        signal.signal(signal.SIGTERM, lambda *_: event.set())  # the handler issue 25 found
        watch = None
    else:
        from vemonitor import stopsignals
        stopsignals.install()
        watch = stopsignals.watching(event.set)
        watch.__enter__()
    with event._cond:  # what Event.wait() holds for a moment, every time
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass  # the handler runs here, inside the lock
    print("stopped" if event.wait(10) else "not stopped", flush=True)
""")


@pytest.mark.parametrize("handler", ["old", "new"])
def test_a_signal_while_the_main_thread_holds_the_event_lock(handler: str) -> None:
    """The old handler deadlocks (the finding reproduced); the recording one stops."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK_WHILE_SIGNALLED, handler],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        assert handler == "old", "the recording handler deadlocked"
        return
    assert handler == "new", f"the old handler did not deadlock: {out!r} {err!r}"
    assert out.strip() == "stopped", err


# In a subprocess: a SIGTERM from another process lands while the main thread is inside
# a long C call (pbkdf2 releases the GIL and checks no signal): the Python-level handler
# waits for that call to end, the wake-up byte does not.
SIGNAL_DURING_A_LONG_C_CALL = textwrap.dedent("""
    import hashlib, os, subprocess, threading
    from vemonitor import stopsignals
    event = threading.Event()
    stopsignals.install()
    with stopsignals.watching(event.set):
        subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -TERM {os.getpid()}"])
        hashlib.pbkdf2_hmac("sha256", b"x", b"y", 3_000_000)  # seconds in C
        stopped = event.wait(10)
    print(f"stopped={stopped}", flush=True)
""")


def test_a_signal_during_a_long_c_call_still_stops() -> None:
    """The watcher acts on the wake-up byte, not on the Python handler having run (it did,
    and then waited for ever: the handler ran after the watcher had looked)."""
    proc = subprocess.run([sys.executable, "-c", SIGNAL_DURING_A_LONG_C_CALL],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "stopped=True", proc.stdout + proc.stderr


@dataclass
class Ending:
    phase: str
    kind: str  # "summary", "start-up", "before-handlers", or what went wrong
    detail: str = ""


DEMO_ARGS = ("duration=2", "~block.outputs.console")
PARALLEL_RUNS = 8  # Demo runs at a time: each waits on its devices' frames most of its life


def _env(tmp: Path) -> dict[str, str]:
    return dict(os.environ, HOME=str(tmp / "home"), XDG_STATE_HOME=str(tmp / "xdg"))


def _demo_args(tmp: Path) -> list[str]:
    return [*DEMO_ARGS[:1], f"state_dir={tmp / 'state'}", *DEMO_ARGS[1:]]


def _launch(tmp: Path, extra: list[str], prepared: Path | None = None,
            ) -> tuple[subprocess.Popen[str], Path, Path]:
    """Start the Demo as ``vemonitor`` does; from ``prepared``: as its re-executed image.

    The command composes the configuration, then ``exec``s itself with the composed run in
    an inherited fd (vemonitor.cli, ``_compose_then_exec``): the daemon that runs, and that
    a signal in steady state or at stop reaches, is that second image. ``prepared`` is a
    file of that run (:func:`_prepare`), handed over the same way (its fd in
    ``VEMONITOR_PREPARED_FD``, the same command line).
    """
    env = _env(tmp)
    out, err = tmp / "out.txt", tmp / "err.txt"
    with contextlib.ExitStack() as stack:
        stdout = stack.enter_context(open(out, "w"))
        stderr = stack.enter_context(open(err, "w"))
        fds: tuple[int, ...] = ()
        if prepared is not None:
            fd = stack.enter_context(open(prepared, "rb")).fileno()
            env[cli.PREPARED_FD], fds = str(fd), (fd,)
        proc = subprocess.Popen(
            [sys.executable, "-c", "from vemonitor.cli import main; main()",
             *_demo_args(tmp), *extra],
            env=env, stdout=stdout, stderr=stderr, text=True, pass_fds=fds)
    return proc, out, err


# In a subprocess: what the command's first image does before its exec (compose, check,
# pickle the run), written to a file instead of a memory file.
PREPARE = textwrap.dedent("""
    import pickle, sys
    from vemonitor.cli import _unwrap, compose_payload
    payload = compose_payload(sys.argv[2:])
    _unwrap(payload)
    with open(sys.argv[1], "wb") as out:
        pickle.dump(payload, out)
""")


def _prepare(tmp: Path) -> Path:
    """Compose the Demo for runs in ``tmp`` once; return the file of the composed run.

    Composing (Hydra) is about 60 % of a Demo start-up's CPU (0.5 of 0.85 s, measured):
    the runs signalled in steady state reuse one composition per slot (its own state and
    simulator folders) rather than paying it a hundred times for a moment they never
    signal in; the runs signalled during start-up still run the whole command.
    """
    tmp.mkdir(parents=True)
    file = tmp / "run.pickle"
    subprocess.run([sys.executable, "-c", PREPARE, str(file), *_demo_args(tmp)],
                   env=_env(tmp), check=True, capture_output=True, timeout=120)
    return file


def _wait_for(path: Path, text: str, proc: subprocess.Popen[str]) -> bool:
    """Wait until the daemon logged ``text`` (its steady state); False if it ended first."""
    while proc.poll() is None:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.02)
    return False


def _one(tmp: Path, sig: signal.Signals, phase: str, delay: float,
         slots: queue.Queue[Path]) -> Ending | None:
    """Run a Demo, signal it in ``phase`` after ``delay`` s; None when it ended first.

    ``start-up``: the whole command, from its launch. ``running``: a slot's composed run
    (:func:`_launch`), from the moment its block started; the slot's state is emptied
    first, so every run starts as a first one.
    """
    if phase != "running":
        tmp.mkdir(parents=True)
        return _signal_one(tmp, *_launch(tmp, []), sig, phase, delay)
    prepared = slots.get()
    try:
        shutil.rmtree(prepared.parent / "state", ignore_errors=True)
        proc, out, err = _launch(prepared.parent, [], prepared)
        if not _wait_for(err, "block Demo:", proc):
            proc.wait()
            return Ending(phase, "ended before running", err.read_text())
        return _signal_one(prepared.parent, proc, out, err, sig, phase, delay)
    finally:
        slots.put(prepared)


def _signal_one(tmp: Path, proc: subprocess.Popen[str], out: Path, err: Path,
                sig: signal.Signals, phase: str, delay: float) -> Ending | None:
    """Signal ``proc`` after ``delay`` s and name how it ended; None when it ended first."""
    time.sleep(delay)
    if proc.poll() is not None:
        return None  # the duration ended first: no signal was sent
    proc.send_signal(sig)
    try:
        status = proc.wait(STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return Ending(phase, "hung", err.read_text()[-2000:])
    return _classify(phase, sig, status, out.read_text(), err.read_text(), tmp / "state")


def _classify(phase: str, sig: signal.Signals, status: int, out: str, err: str,
              state: Path) -> Ending:
    """Name how the process ended (docs/operations.md, Exit statuses)."""
    if "Traceback" in err:
        return Ending(phase, "traceback", err[-2000:])
    if status == 0 and out.startswith("summary of block Demo") \
            and (state / "summary.json").is_file():
        return Ending(phase, "summary")
    started_status = 0 if sig == signal.SIGTERM else 130
    if status == started_status and not out and err.rstrip().endswith(
            f"stopped during start-up ({sig.name}); nothing started"):
        return Ending(phase, "start-up")
    if status == -sig and not out and not err:
        return Ending(phase, "before-handlers")  # the interpreter had not reached main()
    return Ending(phase, f"status {status}", f"{out[-500:]}\n{err[-1500:]}")


def _signal_many(tmp_path: Path, sig: signal.Signals, count: int, phases: tuple[str, ...],
                 seed: int) -> list[Ending]:
    """Send ``count`` signals to as many Demo runs, a few in parallel; return the endings.

    Runs are started as others end (not in rounds), so no slot waits for a round's slowest.
    """
    rng = random.Random(seed)
    endings: list[Ending] = []
    run = 0
    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        slots: queue.Queue[Path] = queue.Queue()
        if "running" in phases:
            for prepared in pool.map(_prepare, [tmp_path / f"slot{n}"
                                                for n in range(PARALLEL_RUNS)]):
                slots.put(prepared)
        pending: set[Future[Ending | None]] = set()
        while len(endings) < count:
            while len(pending) < PARALLEL_RUNS and len(endings) + len(pending) < count:
                phase = phases[run % len(phases)]
                # start-up: from launch; running: after the block started (2 s long),
                # so the last ones land while it stops.
                delay = rng.uniform(0, 1.5) if phase == "start-up" else rng.uniform(0, 2.2)
                pending.add(pool.submit(_one, tmp_path / f"run{run}", sig, phase, delay,
                                        slots))
                run += 1
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            endings += [e for e in (job.result() for job in done) if e is not None]
    return endings


ALLOWED = {"start-up": {"summary", "start-up", "before-handlers"}, "running": {"summary"}}


@pytest.mark.slow
@pytest.mark.cpu_heavy  # 8 Demo runs at a time: never beside the accelerated tests
# 200 whole Demo runs: about 2 minutes alone, 5 or more on a machine loaded 15 deep. Each
# run has its own stop deadline (a hang fails at once); this is only the whole test's bound.
@pytest.mark.timeout(1800)
def test_200_sigterms_at_random_moments_all_end_cleanly(tmp_path: Path) -> None:
    """200 SIGTERMs during start-up, steady state and stop: each run ends within its
    stop deadline with exit 0 and its summary (or, during start-up, the one line
    saying nothing started), never a hang or a traceback."""
    endings = _signal_many(tmp_path, signal.SIGTERM, 200, ("start-up", "running"), seed=25)
    bad = [e for e in endings if e.kind not in ALLOWED[e.phase]]
    assert not bad, bad[:3]
    kinds = {e.kind for e in endings}
    # Both moments were really hit: a run that stopped and one that ended before its
    # engine ran. Which of the two early endings a random delay reaches depends on the
    # machine's load (a busy machine is still in the interpreter's start); the one-line
    # start-up ending itself is proven below, at a moment chosen for sure.
    assert "summary" in kinds and kinds & {"start-up", "before-handlers"}, kinds


def _composing(pid: int) -> bool:
    """True while ``pid`` catches SIGTERM (vemonitor.stopsignals is installed) in its first
    image: it is composing the configuration, nothing has started (vemonitor.cli.main).

    The re-executed daemon (compose, then exec: docs/performance.md) has
    VEMONITOR_PREPARED_FD in its environment; SigCgt is /proc's mask of caught signals.
    """
    proc = Path(f"/proc/{pid}")
    try:
        caught = next(int(line.split()[1], 16) for line in
                      (proc / "status").read_text().splitlines() if line.startswith("SigCgt:"))
        first_image = b"VEMONITOR_PREPARED_FD=" not in (proc / "environ").read_bytes()
    except (OSError, StopIteration):
        return False
    return bool(caught & (1 << (signal.SIGTERM - 1))) and first_image


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_configuration_is_composed_ends_with_one_line(
        tmp_path: Path, sig: signal.Signals) -> None:
    """A signal while the configuration is composed (the handlers are in place, nothing
    has started): one line, exit 0 for SIGTERM and 130 for Ctrl-C, no summary, and the
    daemon is not started after all (the signal is not lost across the exec)."""
    proc, out, err = _launch(tmp_path, [])
    deadline = time.monotonic() + 60
    while not _composing(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline, err.read_text()[-2000:]
        time.sleep(0.001)
    proc.send_signal(sig)
    status = proc.wait(STOP_DEADLINE)
    ending = _classify("start-up", sig, status, out.read_text(), err.read_text(),
                       tmp_path / "state")
    assert ending.kind == "start-up", ending


@pytest.mark.slow
@pytest.mark.cpu_heavy  # 8 Demo runs at a time: never beside the accelerated tests
def test_sigint_at_random_moments_ends_cleanly(tmp_path: Path) -> None:
    """Ctrl-C once the daemon runs: exit 0 and the summary, every time."""
    endings = _signal_many(tmp_path, signal.SIGINT, 30, ("running",), seed=26)
    bad = [e for e in endings if e.kind not in ALLOWED[e.phase]]
    assert not bad, bad[:3]
