"""Block layouts recorded from real devices, for tests and replays built with the encoder.

Each record is the (label, wire value) pairs of one device's blocks in the order the
device sends them.
"""

from __future__ import annotations

# A SmartShunt 500A/50mV (PID 0xA389, FW 0405) with nothing on its aux input: the aux
# voltage reads a few mV below zero (VS -14, H15 -22 mV), as reported in issue 21; every
# block of this device was lost while such readings were judged out of range.
SMARTSHUNT_MAIN: list[tuple[str, str]] = [
    ("PID", "0xA389"), ("V", "13259"), ("VS", "-14"), ("I", "-7742"), ("P", "-103"),
    ("CE", "-2911"), ("SOC", "990"), ("TTG", "2052"), ("Alarm", "OFF"), ("AR", "0"),
    ("BMV", "SmartShunt 500A/50mV"), ("FW", "0405")]
SMARTSHUNT_HISTORY: list[tuple[str, str]] = [
    ("H1", "-264148"), ("H2", "-2909"), ("H3", "-109417"), ("H4", "6"), ("H5", "1"),
    ("H6", "-3928992"), ("H7", "6200"), ("H8", "14592"), ("H9", "3331"), ("H10", "21"),
    ("H11", "0"), ("H12", "0"), ("H15", "-22"), ("H16", "31"), ("H17", "5148"),
    ("H18", "5581")]
