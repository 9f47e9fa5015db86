"""Encode VE.Direct text blocks and HEX lines exactly as devices put them on the wire."""

from __future__ import annotations

from collections.abc import Iterable


def checksum_byte(payload: bytes) -> int:
    """Return the byte that makes ``payload`` + byte sum to 0 mod 256."""
    return (-sum(payload)) & 0xFF


def encode_block(records: Iterable[tuple[str, str]]) -> bytes:
    """Return one wire block: ``\\r\\nLABEL\\tVALUE`` per record, then ``\\r\\nChecksum\\t`` + byte.

    Records keep their order. Labels and values must be ASCII; the checksum byte
    can be any value, including ``:`` or ``\\r``, as on real devices.
    """
    body = b"".join(
        b"\r\n" + label.encode("ascii") + b"\t" + value.encode("ascii") for label, value in records
    )
    payload = body + b"\r\nChecksum\t"
    return payload + bytes([checksum_byte(payload)])


def hex_check(data: bytes) -> int:
    """Return the HEX check byte for command nibble + payload bytes (sum must be 0x55)."""
    return (0x55 - sum(data)) & 0xFF


def encode_hex(command: int, payload: bytes = b"") -> bytes:
    """Return one HEX line ``:`` + command nibble + payload + check byte + ``\\n`` (upper case)."""
    check = hex_check(bytes([command]) + payload)
    return b":" + f"{command:X}".encode() + (payload + bytes([check])).hex().upper().encode() + b"\n"
