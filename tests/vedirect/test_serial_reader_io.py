"""The reader's own read and write of the port's descriptor (serial_reader._read_available,
_write_line): what pyserial did for it, kept. Real pipes and a real pty, no port mock;
only the pyserial fallback of a partial write is a recorder (a unit edge)."""

from __future__ import annotations

import fcntl
import os
import tty

import pytest
import serial

from vemonitor import serial_reader


def _nonblocking_pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    for fd in (read_fd, write_fd):
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    return read_fd, write_fd


class _Recorder:
    """Stands for pyserial's blocking write: records what it was given."""

    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)


def test_everything_waiting_is_read_in_one_call() -> None:
    read_fd, write_fd = _nonblocking_pipe()
    try:
        os.write(write_fd, b":7FF0F00401FE1\n\r\nPID\t0x203")
        assert serial_reader._read_available(read_fd) == b":7FF0F00401FE1\n\r\nPID\t0x203"
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_spurious_wake_up_reads_nothing_and_is_no_error() -> None:
    read_fd, write_fd = _nonblocking_pipe()
    try:
        assert serial_reader._read_available(read_fd) == b""
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_end_of_file_is_a_disconnected_device() -> None:
    read_fd, write_fd = _nonblocking_pipe()
    os.close(write_fd)
    try:
        with pytest.raises(serial.SerialException, match="disconnected"):
            serial_reader._read_available(read_fd)
    finally:
        os.close(read_fd)


def test_a_request_goes_out_in_one_write_on_a_pty() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)  # as pyserial sets the port: no newline translation
    try:
        port = _Recorder()
        serial_reader._write_line(port, slave, b":78CED00D5\n")  # type: ignore[arg-type]
        assert os.read(master, 64) == b":78CED00D5\n"
        assert port.written == b""  # pyserial was not needed
    finally:
        os.close(master)
        os.close(slave)


def test_a_request_the_full_buffer_refuses_goes_through_pyserial() -> None:
    read_fd, write_fd = _nonblocking_pipe()
    try:
        with pytest.raises(BlockingIOError):
            while True:
                os.write(write_fd, b"x" * 4096)
        port = _Recorder()
        line = b":78CED00D5\n"
        serial_reader._write_line(port, write_fd, line)  # type: ignore[arg-type]
        drained = b""
        with pytest.raises(BlockingIOError):
            while True:
                drained += os.read(read_fd, 65536)
        # nothing lost, nothing doubled: what the pipe did not take, pyserial got
        assert drained.replace(b"x", b"") + port.written == line
        assert port.written == line  # a pipe takes a short write whole or not at all
    finally:
        os.close(read_fd)
        os.close(write_fd)


# -- a block in two reads (serial_reader.settle_time) --------------------------------

@pytest.mark.parametrize(("pending", "expected", "wait"), [
    (0, 180, 0.0),  # between blocks: wait for data as usual
    (30, 0, 0.0),  # no block seen yet: nothing to expect
    (180, 180, 0.0),  # as long as the longest block: the next read may end it
    (200, 180, 0.0),
    # 150 B to go at 1920 B/s (78.1 ms) plus the bridge's 16 ms latency period
    (30, 180, 150 / 1920 + 0.016),
    (170, 180, 10 / 1920 + 0.016),
    (1, 4000, serial_reader.SETTLE_MAX_S),  # noise made a huge "block": capped
])
def test_the_wait_for_a_blocks_rest_is_its_line_time(pending: int, expected: int,
                                                    wait: float) -> None:
    assert serial_reader.settle_time(pending, expected) == pytest.approx(wait)


def test_the_decoder_tells_the_bytes_of_an_unfinished_text_block_only() -> None:
    from vemonitor.vedirect.decoder import Decoder

    decoder = Decoder()
    decoder.feed(b"\r\nPID\t0x203\r\nV\t12")
    assert decoder.text_pending == len(b"\r\nPID\t0x203\r\nV\t12")
    decoder.feed(b"800\r\n:A0102")  # an async HEX line started inside the block
    assert decoder.text_pending == 0
