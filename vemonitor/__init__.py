"""vemonitor: read Victron VE.Direct devices and deliver clean data to Redis, EmonCms, MQTT."""

__version__ = "0.1.0"
