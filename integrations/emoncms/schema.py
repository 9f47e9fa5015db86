"""Schemas of the EmonCms connector (``appConnectors.emoncms.<name>``) and output items."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING
from vemonitor_integrations.emoncms.names import (
    NAME_MAX_EMONCMS_ORG,
    NODE_MAX_EMONCMS_ORG,
    name_problem,
)

from vemonitor.api import Connector, OutputItem, check_http_url

AUTH_MODES = ("auto", "header", "body")
MAX_TIMEOUT = 300.0  # seconds; a longer wait only delays the outbox's own retry


@dataclass
class EmoncmsConnector(Connector):
    """An EmonCms server: where it is, the write API key, and how to talk to it.

    ``apikey`` is excluded from ``repr()`` so a logged or printed connector never
    shows it; it may come from the environment (``${oc.env:EMONCMS_APIKEY}``).
    """

    addr: str = MISSING
    apikey: str = field(default=MISSING, repr=False)
    timeout: float = 10.0
    verify_tls: bool = True
    # zlib (Content-Encoding: deflate) request bodies; stock emoncms cannot read
    # them, so this is only for a proxy that inflates request bodies (README).
    compress: bool = False
    node_prefix: str = ""
    # False (default): send time=0 so EmonCms stores every row at its own second.
    # True: send sentat=<floor(now)> so EmonCms corrects this device's clock skew,
    # at the cost of a whole batch shifted +1 s when a request crosses a second
    # boundary on its way (EmonCms's time() truncates). See timing.py.
    correct_skew: bool = False
    # How the key travels: "auto" (Authorization header, switching once to the POST
    # body when the web server drops the header), "header" or "body" (README, Auth).
    auth: str = "auto"
    # emoncms.org refuses longer names (in bytes); null lifts a limit (self-hosted).
    max_node_length: int | None = NODE_MAX_EMONCMS_ORG
    max_name_length: int | None = NAME_MAX_EMONCMS_ORG

    def risks(self) -> list[str]:
        """Return what weakens this connection's security (one start-up WARNING each)."""
        if self.addr.lower().startswith("https://") and not self.verify_tls:
            return [f"emoncms {self.addr}: TLS certificate verification is off "
                    f"(verify_tls=false): any server can impersonate it and receive the "
                    f"api key"]
        return []

    def validate(self) -> None:
        """Check the address, key, timeout and name settings (no I/O; never echoes the key)."""
        check_addr(self.addr)
        check_apikey(self.apikey)
        if self.auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ValueError(f"timeout must be > 0 and <= {MAX_TIMEOUT:g} seconds, "
                             f"got {self.timeout:g}")
        for key in ("max_node_length", "max_name_length"):
            limit = getattr(self, key)
            if limit is not None and limit < 1:
                raise ValueError(f"{key} must be >= 1 or null, got {limit}")
        if self.node_prefix:
            problem = name_problem(self.node_prefix, None)
            if problem:
                raise ValueError(f"node_prefix {self.node_prefix!r} {problem}")


@dataclass
class EmoncmsOutput(OutputItem):
    """An output sending rows to an EmonCms connector; each input is an emoncms node."""

    def validate(self) -> None:
        """Check the output names its connector."""
        if not self.source:
            raise ValueError("an emoncms output needs 'source': the name of an "
                             "appConnectors.emoncms connector")


def check_addr(addr: str) -> None:
    """Raise ValueError unless ``addr`` is an http(s) URL with a host and nothing secret."""
    check_http_url(addr, "addr", "apikey")


def check_apikey(apikey: str) -> None:
    """Raise ValueError unless the key can go in a header (the message never shows it)."""
    if not apikey or not apikey.strip():
        raise ValueError("apikey is empty (set it, or ${oc.env:VAR} with VAR exported)")
    if any(c.isspace() or not c.isprintable() for c in apikey):
        raise ValueError("apikey contains whitespace or control characters (check for a "
                         "trailing newline in the variable or file it comes from)")
    if not apikey.isascii():
        # An HTTP header carries Latin-1 at most and emoncms keys are hex: such a key
        # would validate and then fail every send for ever.
        raise ValueError("apikey contains non-ASCII characters (emoncms keys are 32 hex "
                         "digits; value not shown)")
