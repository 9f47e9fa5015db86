"""A pseudo-terminal that looks like a serial port, reachable through a stable symlink."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import termios
import threading
import time
import tty
from pathlib import Path

from hw_sim.wire import WIRES, Wire, send_paced

# How long a write waits for a reader to make room before stale data is thrown away.
WRITE_TIMEOUT_S = 0.25
# Queued bytes nobody consumed for this long (real s) are stale: a reader opening the
# port later should see fresh frames, as from a real cable, not minutes-old ones.
STALE_S = 2.0
# What a reader wrote (HEX requests) is kept up to this many bytes for the device's HEX
# side (hw_sim.hex_device); older bytes are dropped, as a device's small buffer would.
INPUT_KEEP = 4096


class PtyPort:
    """One pty: the simulator writes the master, readers open ``link`` (the slave)."""

    def __init__(self, link: Path, write_timeout: float = WRITE_TIMEOUT_S,
                 wire: Wire = WIRES["instant"]) -> None:
        self.link = link
        self.wire = wire  # hw_sim.wire: at once, or paced as a USB cable delivers
        self.write_timeout = write_timeout
        self.master: int | None = None
        self.slave: int | None = None
        self.slave_name = ""
        self.bytes_dropped = 0
        self.flushes = 0
        self.bytes_received = 0
        self._lock = threading.Lock()
        self._queued_after_write = 0
        self._last_consumed = time.monotonic()
        self._input = bytearray()
        self._input_seen = 0.0  # when the oldest byte of _input was first seen

    @property
    def is_open(self) -> bool:
        """Return True while the pty exists."""
        return self.master is not None

    def open(self) -> Path:
        """Create the pty (raw slave, non-blocking master) and point the symlink at it."""
        with self._lock:
            if self.master is not None:
                return self.link
            master, slave = os.openpty()
            # Raw: no \n -> \r\n translation, no echo; checksum bytes pass untouched.
            tty.setraw(slave)
            os.set_blocking(master, False)
            self.master, self.slave, self.slave_name = master, slave, os.ttyname(slave)
            self._point_link()
        return self.link

    def _point_link(self) -> None:
        # Replace atomically so a reader never sees a missing or half-made link.
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.slave_name)
        os.replace(tmp, self.link)

    def close(self) -> None:
        """Remove the symlink and close the pty (idempotent), like pulling the cable."""
        with self._lock:
            if self.master is None:
                return
            self._remove_link()
            for fd in (self.master, self.slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self.master = self.slave = None

    def _remove_link(self) -> None:
        # Only remove a link that is still ours (another simulator may have taken the name).
        with contextlib.suppress(OSError):
            if os.readlink(self.link) == self.slave_name:
                self.link.unlink()

    def write(self, data: bytes) -> int:
        """Write ``data`` as the wire carries it; return bytes accepted.

        Instant: all at once, never blocking for long. Paced (``usb``): in the cable's
        chunks at the line rate, so this takes the bytes' line time (the writer thread is
        the device's UART, which cannot send faster either); the lock is held per chunk
        only, so an unplug meanwhile drops the rest as a pulled cable would.
        """
        if self.wire.paced:
            return send_paced(data, self.wire, self._write_now)
        return self._write_now(data)

    def _write_now(self, data: bytes) -> int:
        """Write all of ``data`` now without ever blocking for long; return bytes accepted."""
        with self._lock:
            if self.master is None:
                self.bytes_dropped += len(data)
                return 0
            self._drain_input()
            self._drop_stale()
            done = self._write_some(data)
            if done < len(data):
                # Nobody reads: drop what is queued (stale) and try once more.
                self._flush_input()
                done += self._write_some(data[done:])
            self.bytes_dropped += len(data) - done
            self._queued_after_write = self._queued()
            return done

    def _write_some(self, data: bytes) -> int:
        assert self.master is not None
        done, deadline = 0, time.monotonic() + self.write_timeout
        while done < len(data):
            try:
                done += os.write(self.master, data[done:])
                continue
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self.master], [], left)[1]:
                break
        return done

    def _queued(self) -> int:
        """Return the bytes written but not yet read on the slave side."""
        assert self.slave is not None
        raw = fcntl.ioctl(self.slave, termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", raw)[0])

    def _drop_stale(self) -> None:
        queued, now = self._queued(), time.monotonic()
        if queued == 0 or queued < self._queued_after_write:
            self._last_consumed = now  # a reader is keeping up
        elif now - self._last_consumed > STALE_S:
            self._flush_input()
            self._last_consumed = now

    def _flush_input(self) -> None:
        if self.slave is not None:
            termios.tcflush(self.slave, termios.TCIFLUSH)
            self.flushes += 1

    def _drain_input(self) -> None:
        """Read what a reader wrote to the device (HEX requests) so it never fills up."""
        assert self.master is not None
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.master, 4096):
                if not self._input:
                    self._input_seen = time.monotonic()
                self.bytes_received += len(chunk)
                self._input += chunk
        del self._input[:-INPUT_KEEP]

    def wait_input(self, timeout: float) -> None:
        """Return when a reader has written to the device, or after ``timeout`` real s."""
        master = self.master
        if master is None:
            time.sleep(timeout)
            return
        with contextlib.suppress(OSError, ValueError):  # closed meanwhile (an unplug)
            select.select([master], [], [], timeout)

    def take_input(self) -> bytes:
        """Return and forget what readers wrote since the last call (the HEX requests).

        On a paced wire the host's bytes cross the line too (19200 baud both ways): the
        device has a request only once its last byte arrived, so this waits until the
        bytes' line time has passed since they were first seen.
        """
        with self._lock:
            if self.master is not None:
                self._drain_input()
            data, self._input = bytes(self._input), bytearray()
            seen = self._input_seen
        if data and self.wire.paced:
            time.sleep(max(0.0, seen + self.wire.seconds(len(data)) - time.monotonic()))
        return data
