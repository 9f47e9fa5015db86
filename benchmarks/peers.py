"""Peer VE.Direct text-protocol parsers, fed the same raw bytes as our decoder.

Each ``run_<peer>(data) -> int`` builds a fresh parser, pushes every byte of
``data`` through it and returns how many checksum-valid frames the peer hands
back to its caller.  Peers are imported lazily, so this module imports fine
without them (``pip install vemonitor[bench]``).

How the peers are driven
------------------------
Both peers only read serial ports, but both are built on a per-byte state
machine and their own read loops do nothing more than ``byte = ser.read(1)``
followed by one call into that state machine.  So we call the state machine
directly, from memory, one 1-byte ``bytes`` object at a time (exactly the type
``ser.read(1)`` returns), and do whatever the read loop does with a result.
This measures all of the parsing work and none of the serial I/O, i.e. it is
an upper bound on the peer's speed (a real ``ser.read(1)`` costs a syscall per
byte on top).

* vedirect-m8 1.3.4 (``vedirect_m8.vedirect.Vedirect``): its loops
  (``read_global_packet`` / ``VedirectController.run_callback_on_packet``) do
  ``packet = self.input_read(ser.read(1))`` and, when a packet comes back,
  ``self.init_data_read()`` then hand the dict to the caller.  Exceptions
  (``InputReadException`` on non-ASCII bytes, ``PacketReadException`` on more
  than 18 records) escape to the caller, who calls again with the state left
  as it was; we do the same (catch ``VeReadException`` and go on).
* vedirect-jmfife 1.0.2 (``vedirect.VEDirect``): its loops
  (``read_data_single`` / ``read_data_callback``) do
  ``record = self._input(ser.read())`` and, when a record comes back, return
  ``VEDirect.typecast(record)``.  We count a frame when ``_input`` returned a
  record and ``typecast`` accepted it (``typecast`` raises ``KeyError`` on any
  label missing from its table, e.g. ``MON``/``FWE``, and ``ValueError`` on
  ``---``; in the real loop that exception kills the loop, here we count the
  frame as lost and go on).  ``VEDirect.__init__`` opens the serial port
  unconditionally, so we create the object with ``__new__`` and set the same
  parser attributes ``__init__`` sets.

``run_<peer>_pty(data)`` are slow cross-checks: they run the peer's real read
loop on a pseudo-terminal (``os.openpty``, ``tty.setraw`` on the slave, bytes
written on the master from a thread) to show that the direct drive recovers
the same frames as the real thing.  They are not used for timing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from collections.abc import Callable
from typing import Any

# One 1-byte bytes object per value: what ser.read(1) returns, without paying
# a slice per byte in the harness (the cheapest fair way to hand bytes over).
_ONE_BYTE: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))

# vedirect-m8 validates the port name when it is constructed (never opened
# with auto_start=False). Any name matching its pattern works.
_M8_DUMMY_PORT = "/dev/ttyUSB0"


def run_vedirect_m8(data: bytes) -> int:
    """vedirect-m8: drive ``Vedirect.input_read`` byte by byte, as its read loop does."""
    from vedirect_m8.exceptions import VeReadException
    from vedirect_m8.vedirect import Vedirect

    ve = Vedirect(serial_conf={"serial_port": _M8_DUMMY_PORT}, auto_start=False)
    input_read = ve.input_read
    init_data_read = ve.init_data_read
    one = _ONE_BYTE
    frames = 0
    for b in data:
        try:
            packet = input_read(one[b])
        except VeReadException:
            continue
        if packet is not None:
            frames += 1
            init_data_read()  # what read_global_packet does before returning it
    return frames


def run_vedirect_jmfife(data: bytes) -> int:
    """vedirect-jmfife: drive ``VEDirect._input`` byte by byte + ``typecast``, as its loop does."""
    from vedirect.vedirect import VEDirect

    ve = _jmfife_parser(VEDirect)
    _input = ve._input
    typecast = VEDirect.typecast
    one = _ONE_BYTE
    frames = 0
    for b in data:
        record = _input(one[b])
        if record is not None:
            try:
                typecast(record)
            except (KeyError, ValueError):
                continue
            frames += 1
    return frames


def _jmfife_parser(cls: Any) -> Any:
    """A VEDirect with the parser state ``__init__`` sets, without opening a port."""
    ve = cls.__new__(cls)
    ve.emulate = ""
    ve.serialport = ""
    ve.header1 = b"\r"
    ve.header2 = b"\n"
    ve.hexmarker = b":"
    ve.delimiter = b"\t"
    ve.key = b""
    ve.value = b""
    ve.bytes_sum = 0
    ve.state = cls.WAIT_HEADER1
    ve.dict = {}
    return ve


PEERS: dict[str, Callable[[bytes], int]] = {
    "vedirect-m8": run_vedirect_m8,
    "vedirect-jmfife": run_vedirect_jmfife,
}


def available_peers() -> dict[str, Callable[[bytes], int] | str]:
    """Map peer name -> runner, or -> a reason string when the package is missing."""
    out: dict[str, Callable[[bytes], int] | str] = {}
    for name, module in (
        ("vedirect-m8", "vedirect_m8.vedirect"),
        ("vedirect-jmfife", "vedirect.vedirect"),
    ):
        try:
            __import__(module)
        except Exception as exc:  # noqa: BLE001 - report any import problem
            out[name] = f"not importable ({type(exc).__name__}: {exc})"
        else:
            out[name] = PEERS[name]
    return out


# --------------------------------------------------------------------------
# Cross-checks through a pseudo-terminal, using the peers' own read loops.
# --------------------------------------------------------------------------


class _EndOfCapture(Exception):
    """Raised by the fake port once the writer is done and the pty is drained."""


class _PtyFeeder:
    """A pty whose master side is written with ``data`` from a thread."""

    def __init__(self, data: bytes, chunk: int = 4096) -> None:
        self._data = data
        self._chunk = chunk
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no CR/LF translation, no echo
        self.path = os.ttyname(self._slave)
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        view = memoryview(self._data)
        try:
            for i in range(0, len(view), self._chunk):
                part = view[i : i + self._chunk]
                while part:
                    part = part[os.write(self.master, part) :]
        finally:
            self.done.set()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._thread.join(timeout=5)
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def _eof_serial(path: str, feeder: _PtyFeeder) -> Any:
    """A real pyserial port on ``path`` whose read raises once the capture is drained."""
    import serial

    class EofSerial(serial.Serial):  # type: ignore[misc]
        def read(self, size: int = 1) -> bytes:
            got = bytes(super().read(size))
            if not got and feeder.done.is_set():
                raise _EndOfCapture
            return got

    return EofSerial(port=path, baudrate=19200, timeout=0.2)


def run_vedirect_m8_pty(data: bytes) -> int:
    """vedirect-m8 through its own ``read_data_single`` loop on a pty."""
    from vedirect_m8.exceptions import VeReadException
    from vedirect_m8.vedirect import Vedirect

    ve = Vedirect(serial_conf={"serial_port": _M8_DUMMY_PORT}, auto_start=False)
    feeder = _PtyFeeder(data)
    ve._com.ser = _eof_serial(feeder.path, feeder)
    frames = 0
    try:
        feeder.start()
        while True:
            try:
                if ve.read_data_single(timeout=60) is not None:
                    frames += 1
            except _EndOfCapture:
                break
            except VeReadException:
                continue  # what VedirectController does: call again
    finally:
        ve._com.ser.close()
        feeder.close()
    return frames


def run_vedirect_jmfife_pty(data: bytes) -> int:
    """vedirect-jmfife through its own ``read_data_callback`` loop on a pty."""
    from vedirect.vedirect import VEDirect

    feeder = _PtyFeeder(data)
    ve = VEDirect(serialport=feeder.path, timeout=1)  # opens + flushes the port
    ve.ser.close()
    ve.ser = _eof_serial(feeder.path, feeder)
    frames = 0

    def count(_record: dict[str, object]) -> None:
        nonlocal frames
        frames += 1

    try:
        feeder.start()
        while True:
            try:
                ve.read_data_callback(count)
            except _EndOfCapture:
                break
            except (KeyError, ValueError):
                continue  # typecast failure; the real loop would die here
    finally:
        ve.ser.close()
        feeder.close()
    return frames


PTY_PEERS: dict[str, Callable[[bytes], int]] = {
    "vedirect-m8": run_vedirect_m8_pty,
    "vedirect-jmfife": run_vedirect_jmfife_pty,
}
