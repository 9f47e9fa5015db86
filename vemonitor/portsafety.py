"""Is a serial port free to probe? Scanning must never disturb another program's port.

A scan (``vemonitor scan``, a connector's ``serialTest``, the Home Assistant config
flow) probes a port only when all of these hold (issue 25, point 7):

* **No process has it open** (:func:`open_by`): the ``/proc/<pid>/fd/*`` links of
  every process we may read point elsewhere. Our own process counts too: Home
  Assistant runs ZHA and this component in one process. Exception: the process
  that holds a pseudo-terminal's *master* side (``/dev/ptmx`` whose fdinfo
  ``tty-index`` is the slave's number) is the device end of that line (the
  simulator, a ``socat`` bridge), not a competing reader. Linux only; a process of
  another user is invisible unless we run as root or as that user (their
  ``/proc/<pid>/fd`` is unreadable), so lock files and the USB table below, and
  the allow-list, remain the guard there.
* **No live UUCP lock** (:func:`lock_holder`): ``LCK..<name>`` in ``/var/lock`` or
  ``/run/lock`` (the Filesystem Hierarchy Standard 3.0, section 5.9; minicom,
  picocom, ModemManager-era tools write them) holding the PID of a live process,
  as ten ASCII digits (HDB UUCP) or a 4-byte binary integer (older UUCP).
* **Not a known non-Victron USB device** (:data:`KNOWN_NON_VICTRON`): Zigbee and
  Z-Wave sticks and the like, matched by USB vendor:product id and, where the id
  is a generic USB-serial chip, by the product string the device reports.
  Victron's own VE.Direct USB cable is an FTDI FT-X, ``0403:6015``
  (:data:`VICTRON_CABLE`).

A port the user lists in an allow-list (``allowed_ports`` of a serial connector,
``vemonitor scan --allow``) is the only kind probed when such a list is given.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOCK_DIRS = ("/var/lock", "/run/lock")
SYS_TTY = "/sys/class/tty"
PROC = "/proc"

# Victron Energy's VE.Direct to USB interface (ASS030530xxx): FTDI FT231X, VID 0403,
# PID 6015 (Victron's "VE.Direct to USB interface" manual; the id this project's Home
# Assistant manifest declares, custom_components/vemonitor/manifest.json).
VICTRON_CABLE = ("0403", "6015")


@dataclass(frozen=True)
class KnownDevice:
    """A USB device that is not a VE.Direct interface; ``product`` ('' = any) is a
    case-insensitive fnmatch pattern on the product (or manufacturer) string."""

    vid: str
    pid: str
    product: str
    name: str
    source: str


_HA = "Home Assistant core, homeassistant/generated/usb.py (its integrations' USB matchers)"
# Known non-Victron USB ids. Where the id is a generic USB-serial chip (CP210x 10c4:ea60,
# CH340/CH9102 1a86:*, FTDI 0403:6015) only the product string tells, as Home
# Assistant's own matchers do; a generic chip without such a string is not excluded
# (home-made VE.Direct adapters use them).
KNOWN_NON_VICTRON: tuple[KnownDevice, ...] = (
    KnownDevice("0658", "0200", "", "Z-Wave stick (Sigma Designs: Aeotec Z-Stick Gen5, "
                "Zooz, Z-Wave.Me UZB)", f"{_HA}, zwave_js"),
    KnownDevice("10c4", "8a2a", "", "Nortek HUSBZB-1 Zigbee/Z-Wave stick",
                f"{_HA}, zha and zwave_js"),
    KnownDevice("303a", "4001", "*nabu casa*", "Nabu Casa ZWA-2 Z-Wave", f"{_HA}, zwave_js"),
    KnownDevice("1cf1", "0030", "", "dresden elektronik ConBee II Zigbee", f"{_HA}, zha"),
    KnownDevice("10c4", "8b34", "*bv 2010/10*", "Bitron Video Zigbee stick", f"{_HA}, zha"),
    KnownDevice("10c4", "ea60", "*skyconnect*", "Home Assistant SkyConnect",
                f"{_HA}, homeassistant_sky_connect"),
    KnownDevice("10c4", "ea60", "*connect zbt-1*", "Home Assistant Connect ZBT-1",
                f"{_HA}, homeassistant_sky_connect"),
    KnownDevice("10c4", "ea60", "*2652*", "CC2652 Zigbee stick", f"{_HA}, zha"),
    KnownDevice("10c4", "ea60", "*slzb-07*", "SMLIGHT SLZB-07 Zigbee", f"{_HA}, zha"),
    KnownDevice("10c4", "ea60", "*sonoff*plus*", "ITead Sonoff Zigbee 3.0 Dongle Plus",
                f"{_HA}, zha"),
    KnownDevice("1a86", "55d4", "*sonoff*plus*", "ITead Sonoff Zigbee 3.0 Dongle Plus V2",
                f"{_HA}, zha"),
    KnownDevice("10c4", "ea60", "*tubeszb*", "TubesZB Zigbee", f"{_HA}, zha"),
    KnownDevice("1a86", "7523", "*tubeszb*", "TubesZB Zigbee", f"{_HA}, zha"),
    KnownDevice("1a86", "7523", "*zigstar*", "ZigStar Zigbee", f"{_HA}, zha"),
    KnownDevice("10c4", "ea60", "*zigate*", "ZiGate Zigbee", f"{_HA}, zha"),
    KnownDevice("0403", "6015", "*zigate*", "ZiGate Zigbee", f"{_HA}, zha"),
    KnownDevice("0403", "6015", "*conbee*", "dresden elektronik ConBee Zigbee", f"{_HA}, zha"),
    KnownDevice("0403", "8a28", "*rainforest*", "Rainforest RAVEn energy monitor",
                f"{_HA}, rainforest_raven"),
    KnownDevice("04b4", "0003", "*rainforest*", "Rainforest EMU-2 energy monitor",
                f"{_HA}, rainforest_raven"),
    KnownDevice("10cf", "0b1b", "", "Velbus USB interface", f"{_HA}, velbus"),
    KnownDevice("10cf", "0516", "", "Velbus USB interface", f"{_HA}, velbus"),
    KnownDevice("10cf", "0517", "", "Velbus USB interface", f"{_HA}, velbus"),
    KnownDevice("10cf", "0518", "", "Velbus USB interface", f"{_HA}, velbus"),
    KnownDevice("0572", "1340", "", "Conexant USB modem (caller id)",
                f"{_HA}, modem_callerid"),
)


@dataclass(frozen=True)
class UsbInfo:
    """What sysfs says about the USB device behind a tty."""

    vid: str
    pid: str
    product: str = ""
    manufacturer: str = ""

    def is_victron_cable(self) -> bool:
        """Return True for Victron's VE.Direct USB interface (FTDI 0403:6015, not a ZiGate
        or ConBee that shares the id)."""
        return (self.vid, self.pid) == VICTRON_CABLE and known_device(self) is None


# ------------------------------------------------------------------ who has it open
def _pts_index(path: str) -> int | None:
    """Return N for /dev/pts/N, else None."""
    head, _, tail = path.rpartition("/")
    return int(tail) if head.endswith("/pts") and tail.isdigit() else None


def open_files() -> dict[int, set[str]]:
    """Return, per readable process, the paths its file descriptors point to; a pty
    master is recorded as ``ptmx:<index>`` (from its fdinfo ``tty-index``)."""
    found: dict[int, set[str]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(PROC):
            if entry.name.isdigit():
                found[int(entry.name)] = _targets(int(entry.name))
    return found


def _targets(pid: int) -> set[str]:
    targets: set[str] = set()
    fd_dir = f"{PROC}/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # another user's process (not root), or it just ended
        return targets
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.rpartition("/")[2] == "ptmx":
            index = _tty_index(pid, fd)
            if index is not None:
                target = f"ptmx:{index}"
        targets.add(target)
    return targets


def _tty_index(pid: int, fd: str) -> int | None:
    try:
        with open(f"{PROC}/{pid}/fdinfo/{fd}", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("tty-index:"):
                    return int(line.split(":", 1)[1])
    except (OSError, ValueError):
        return None
    return None


def open_by(path: str, files: dict[int, set[str]] | None = None) -> list[int]:
    """Return the processes that have ``path`` open as a reader or writer (the master
    side of a pty excepted: see the module docs); [] when none can be seen."""
    real = os.path.realpath(path)
    files = open_files() if files is None else files
    index = _pts_index(real)
    master = f"ptmx:{index}" if index is not None else None
    return sorted(pid for pid, targets in files.items()
                  if real in targets and (master is None or master not in targets))


# ------------------------------------------------------------------ lock files
def lock_holder(path: str, lock_dirs: tuple[str, ...] | None = None) -> int | None:
    """Return the live PID of a UUCP lock on ``path`` (LCK..<name>), or None."""
    lock_dirs = lock_dirs or LOCK_DIRS
    names = {os.path.basename(path), os.path.basename(os.path.realpath(path))}
    for folder in lock_dirs:
        for name in names:
            pid = _lock_pid(Path(folder) / f"LCK..{name}")
            if pid is not None and pid != os.getpid() and _alive(pid):
                return pid
    return None


def _lock_pid(lock: Path) -> int | None:
    try:
        data = lock.read_bytes()[:64]
    except OSError:
        return None
    text = data.decode("ascii", "replace").strip()
    if text.isdigit():
        return int(text)  # HDB UUCP: "%10d\n"
    if len(data) == 4:
        return int(struct.unpack("=i", data)[0])  # older UUCP: a binary int
    return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


# ------------------------------------------------------------------ USB ids
def usb_info(path: str, sys_tty: str | None = None) -> UsbInfo | None:
    """Return the USB ids behind a tty (``/sys/class/tty/<name>/device`` and up), or None."""
    sys_tty = sys_tty or SYS_TTY
    name = os.path.basename(os.path.realpath(path))
    try:
        folder = Path(os.path.realpath(f"{sys_tty}/{name}/device"))
    except OSError:
        return None
    for candidate in (folder, *folder.parents):
        if (candidate / "idVendor").is_file():
            return UsbInfo(_read(candidate / "idVendor").lower(),
                           _read(candidate / "idProduct").lower(),
                           _read(candidate / "product"), _read(candidate / "manufacturer"))
        if candidate == Path("/sys") or candidate == candidate.parent:
            break
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def known_device(usb: UsbInfo) -> KnownDevice | None:
    """Return the known non-Victron device ``usb`` is, or None."""
    words = f"{usb.product} {usb.manufacturer}".lower()
    for known in KNOWN_NON_VICTRON:
        if (usb.vid, usb.pid) == (known.vid, known.pid) and \
                (not known.product or fnmatch.fnmatch(words, known.product)):
            return known
    return None


# ------------------------------------------------------------------ the verdict
def allowed(path: str, allow: Sequence[str]) -> bool:
    """Return True when ``path`` (or what it points to) matches the allow-list (empty: all)."""
    if not allow:
        return True
    names = {path, os.path.realpath(path)}
    return any(fnmatch.fnmatch(name, os.path.expanduser(pattern))
               for name in names for pattern in allow)


def why_busy(path: str, files: dict[int, set[str]] | None = None) -> str | None:
    """Return why ``path`` must not be probed (one phrase), or None when it is free."""
    holders = open_by(path, files)
    if holders:
        return f"in use by {_describe(holders)}: not probed"
    holder = lock_holder(path)
    if holder is not None:
        return f"locked by {_describe([holder])} (a LCK.. file): not probed"
    usb = usb_info(path)
    known = known_device(usb) if usb is not None else None
    if known is not None:
        return f"a {known.name} (USB {known.vid}:{known.pid}), not a VE.Direct device: not probed"
    return None


def _describe(pids: list[int]) -> str:
    """Return 'pid 123 (zigbee2mqtt)' for people reading a scan."""
    shown = []
    for pid in pids[:3]:
        name = _read(Path(f"{PROC}/{pid}/comm"))
        shown.append(f"pid {pid} ({name})" if name else f"pid {pid}")
    more = f" and {len(pids) - 3} more" if len(pids) > 3 else ""
    return ", ".join(shown) + more
