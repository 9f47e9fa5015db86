"""The contract's one rule for http(s) base URLs (EmonCms ``addr``, influxDb2 ``host``)."""

from __future__ import annotations

import pytest
from vemonitor_integrations.emoncms.schema import check_addr
from vemonitor_integrations.influxdb2.schema import check_host

from vemonitor.api import check_http_url

BAD = [
    # (url, what the message says after the key)
    ("ftp://host", "must start with http:// or https://, got 'ftp://host'"),
    ("host:8080", "must start with http:// or https://"),
    ("http://", "'http://' has no host"),
    ("http://host:99999", "is not a valid URL (Port out of range 0-65535)"),
    ("http://me:pw@host", "must not contain user:password@; use the_secret"),
    ("https://host/?apikey=x", "must not contain a query or fragment (the secret goes in "
                               "the_secret, never in the URL)"),
    ("https://host/#frag", "must not contain a query or fragment"),
    # A URL refused for another reason never shows its credentials.
    ("ftp://me:pw@host", "must start with http:// or https://, got 'ftp://me:***@host'"),
    ("http://me:pw@host:99999", "'http://me:***@host:99999' is not a valid URL"),
]


@pytest.mark.parametrize(("url", "message"), BAD, ids=[u for u, _ in BAD])
def test_bad_urls_are_refused_naming_the_key(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="^the_key ") as refused:
        check_http_url(url, "the_key", "the_secret")
    assert message in str(refused.value)
    assert ":pw" not in str(refused.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1", "https://emoncms.example:8443/emoncms/",
                                 "http://[::1]:8086"])
def test_good_urls_pass(url: str) -> None:
    check_http_url(url, "the_key", "the_secret")


def test_both_http_integrations_use_it_with_their_own_words() -> None:
    """EmonCms names addr and apikey; influxDb2 names host and auth."""
    with pytest.raises(ValueError, match=r"^addr must not contain user:password@; use apikey$"):
        check_addr("http://u:p@h")
    with pytest.raises(ValueError, match=r"^host must not contain user:password@; use auth$"):
        check_host("http://u:p@h")
