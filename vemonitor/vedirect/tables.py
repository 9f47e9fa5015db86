"""Code tables of the VE.Direct text protocol (PROTOCOL.md), as plain data."""

from __future__ import annotations

CS: dict[int, str] = {
    0: "Off", 1: "Low power", 2: "Fault", 3: "Bulk", 4: "Absorption", 5: "Float",
    6: "Storage", 7: "Equalize (manual)", 9: "Inverting", 11: "Power supply",
    245: "Starting-up", 246: "Repeated absorption", 247: "Auto equalize / Recondition",
    248: "BatterySafe", 252: "External control",
}

ERR: dict[int, str] = {
    0: "No error", 2: "Battery voltage too high", 17: "Charger temperature too high",
    18: "Charger over current", 19: "Charger current reversed", 20: "Bulk time limit exceeded",
    21: "Current sensor issue", 26: "Terminals overheated", 28: "Converter issue",
    33: "Input voltage too high (solar panel)", 34: "Input current too high (solar panel)",
    38: "Input shutdown (excessive battery voltage)",
    39: "Input shutdown (current flow during off mode)",
    65: "Lost communication with one of devices",
    66: "Synchronised charging device configuration issue", 67: "BMS connection lost",
    68: "Network misconfigured", 116: "Factory calibration data lost",
    117: "Invalid/incompatible firmware", 119: "User settings invalid",
}

MPPT: dict[int, str] = {0: "Off", 1: "Voltage or current limited", 2: "MPP tracker active"}

OFF_REASON_BITS: dict[int, str] = {
    0x001: "No input power", 0x002: "Switched off (power switch)",
    0x004: "Switched off (device mode register)", 0x008: "Remote input",
    0x010: "Protection active", 0x020: "Paygo", 0x040: "BMS",
    0x080: "Engine shutdown detection", 0x100: "Analysing input voltage",
}

ALARM_BITS: dict[int, str] = {
    1: "Low voltage", 2: "High voltage", 4: "Low SOC", 8: "Low starter voltage",
    16: "High starter voltage", 32: "Low temperature", 64: "High temperature",
    128: "Mid voltage", 256: "Overload", 512: "DC-ripple", 1024: "Low V AC out",
    2048: "High V AC out",
}

MON: dict[int, str] = {
    -9: "Solar charger", -8: "Wind turbine", -7: "Shaft generator", -6: "Alternator",
    -5: "Fuel cell", -4: "Water generator", -3: "DC/DC charger", -2: "AC charger",
    -1: "Generic source", 0: "Battery monitor", 1: "Generic load", 2: "Electric drive",
    3: "Fridge", 4: "Water pump", 5: "Bilge pump", 6: "DC system", 7: "Inverter",
    8: "Water heater",
}

MODE: dict[int, str] = {2: "On", 4: "Off", 5: "Eco"}

PRODUCTS: dict[int, str] = {
    0x0203: "BMV-700", 0x0204: "BMV-702", 0x0205: "BMV-700H",
    0xA381: "BMV-712 Smart", 0xA382: "BMV-710H Smart", 0xA383: "BMV-712 Smart Rev2",
    0xA389: "SmartShunt 500A/50mV", 0xA38A: "SmartShunt 1000A/50mV",
    0xA38B: "SmartShunt 2000A/50mV",
    0x0300: "BlueSolar MPPT 70/15", 0xA040: "BlueSolar MPPT 75/50",
    0xA042: "BlueSolar MPPT 75/15", 0xA043: "BlueSolar MPPT 100/15",
    0xA04C: "BlueSolar MPPT 75/10", 0xA046: "BlueSolar MPPT 150/70",
    0xA053: "SmartSolar MPPT 75/15", 0xA054: "SmartSolar MPPT 75/10",
    0xA055: "SmartSolar MPPT 100/15", 0xA056: "SmartSolar MPPT 100/30",
    0xA057: "SmartSolar MPPT 100/50", 0xA059: "SmartSolar MPPT 150/100 rev2",
    0xA05F: "SmartSolar MPPT 100/20", 0xA060: "SmartSolar MPPT 100/20 48V",
    0xA063: "SmartSolar MPPT 150/70", 0xA06C: "SmartSolar MPPT 150/70 rev2",
    0xA074: "SmartSolar MPPT 75/10 rev2", 0xA075: "SmartSolar MPPT 75/15 rev2",
    0xA110: "SmartSolar MPPT RS 450/100", 0xA111: "SmartSolar MPPT RS 450/200",
    0xA2F1: "Phoenix Inverter 12V 1200VA 230V",
    0xA30A: "Blue Smart IP65 Charger 12/25", 0xA332: "Blue Smart IP22 Charger 24/8",
    0xA3F0: "Orion XS 12V/12V-50A", 0xA3F1: "Orion XS 1400",
    0xA442: "Multi RS Solar 48V 6000VA",
}
