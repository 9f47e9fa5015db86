"""How the device's bytes reach the reader: at once (a bare pty) or at a cable's pace.

A real VE.Direct device talks at 19200 baud 8N1: 10 bits a byte, 1920 bytes a second
(PROTOCOL.md; HEX.md T2: "a TEXT block is <= ~200 B ~ 105 ms at 19200 baud"). Victron's
VE.Direct USB cable is an FTDI USB-serial bridge: it enumerates as 0403:6015, product
"FT232EX" (victronenergy/venus#4, the kernel log of a Venus GX meeting the cable). An
FTDI chip keeps received bytes in its buffer and hands them to the host in one USB bulk
packet when the packet is full (64 bytes, of which 2 are modem status: 62 data bytes;
Linux drivers/usb/serial/ftdi_sio.h, "DATA FORMAT / IN Endpoint": "the device reserves
the first two bytes of data on this endpoint" for the modem and line status, maximum
packet size 0x40; ftdi_sio strips them from every packet) or when its latency timer
expires, "16 ms by default", counting from the last packet sent (FTDI application note
AN232B-04 "Data Throughput, Latency and Handshaking", and FTDI's knowledge base page
"Setting a Custom Default Latency Timer Value"; Linux shows it as
/sys/bus/usb-serial/devices/ttyUSB*/latency_timer, 16 unless changed). At 1920 B/s
16 ms carry ~30 bytes, so on a stream the timer fires first: a 200-byte block reaches
the host in ~7 reads of <= 30 bytes, ~16 ms apart, each a reader wake-up.

The model hands each chunk on once its own bytes have crossed the line (30 bytes:
15.6 ms, about the timer's 16). A block's last, shorter chunk goes when its bytes have
crossed; a real chip holds it until the timer fires, up to 16 ms after the previous
packet. So the model is at most one timer period early on a block's tail, never late.

``instant`` (the default) keeps the bare pty: a whole write at once, the speed every
test and the Demo were built on. ``usb`` paces every byte the device sends (TEXT blocks,
HEX replies, ``:A`` lines) as above. Only at speed 1: an accelerated device cannot keep
a line rate measured in real seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

BITS_PER_BYTE_8N1 = 10  # start bit, 8 data bits, stop bit


@dataclass(frozen=True)
class Wire:
    """One way of carrying bytes: a line rate and how a cable hands them on."""

    name: str
    baud: int  # 0 = no line rate (the bare pty)
    packet_bytes: int  # data bytes of one USB packet (0 = no packets)
    latency_ms: float  # the bridge's latency timer

    @property
    def paced(self) -> bool:
        """Return True when bytes take time on this wire."""
        return self.baud > 0

    @property
    def bytes_per_s(self) -> float:
        """Return the line's byte rate (8N1)."""
        return self.baud / BITS_PER_BYTE_8N1

    @property
    def chunk_bytes(self) -> int:
        """Return the most bytes one read gets: a full packet or the timer's worth."""
        by_timer = max(1, int(self.bytes_per_s * self.latency_ms / 1000))
        return min(self.packet_bytes, by_timer)

    def seconds(self, nbytes: int) -> float:
        """Return the time ``nbytes`` take on the line."""
        return nbytes / self.bytes_per_s if self.paced else 0.0


# name -> line and bridge (sources in the module docstring).
WIRES: dict[str, Wire] = {
    "instant": Wire("instant", baud=0, packet_bytes=0, latency_ms=0.0),
    "usb": Wire("usb", baud=19200, packet_bytes=62, latency_ms=16.0),
}
DEFAULT_WIRE = "instant"


def wire_named(name: str) -> Wire:
    """Return the wire called ``name``; raise ValueError naming the known ones."""
    try:
        return WIRES[name]
    except KeyError:
        raise ValueError(f"unknown wire {name!r} (known: {', '.join(WIRES)})") from None


def check_speed(wire: Wire, speed: float) -> None:
    """Raise ValueError when a paced wire is asked of an accelerated device."""
    if wire.paced and speed != 1.0:
        raise ValueError(f"wire {wire.name!r} keeps a real line rate: it needs speed 1 "
                         f"(got {speed:g})")


def chunks(data: bytes, wire: Wire) -> list[bytes]:
    """Return ``data`` cut as the cable hands it to the host (one piece when instant)."""
    if not wire.paced or not data:
        return [data] if data else []
    size = wire.chunk_bytes
    return [data[i:i + size] for i in range(0, len(data), size)]


def send_paced(data: bytes, wire: Wire, write: Callable[[bytes], int]) -> int:
    """Write ``data`` chunk by chunk, each once its bytes have crossed the line.

    Each chunk waits its own bytes' line time *after* the previous chunk (not a target
    on a fixed schedule), so a writer delayed by a loaded host never catches up with a
    burst: two chunks are always at least the second one's line time apart, which is
    what the tests' lower bound rests on. Return the bytes ``write`` accepted.
    """
    done = 0
    for piece in chunks(data, wire):
        if wire.paced:
            time.sleep(wire.seconds(len(piece)))
        done += write(piece)
    return done


__all__ = ["DEFAULT_WIRE", "WIRES", "Wire", "check_speed", "chunks", "send_paced",
           "wire_named"]
