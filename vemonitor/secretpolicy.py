"""One secret policy for every output path: mask values by where they came from.

A value is secret when

* it sits under a secret key (``password``, ``passwd``, ``apikey``, ``api_key``,
  ``token``, ``secret`` and names ending so, like ``mqtt_password``; never a
  mere substring such as ``auth`` in ``auth_retry``);
* it is the credential part of a URL (``scheme://user:PASSWORD@host``);
* it came from the environment: ``${oc.env:VAR}`` (Hydra) or ``${VAR}`` (legacy
  ``vm_conf.yaml``), whatever key holds it.

Printed configurations (``--cfg``, ``--info config|all``, multirun.yaml) are
masked structurally, key by key, before printing. Free text (log records, error
lines) is masked for the values collected above, and only as whole tokens (a
secret ``k`` never turns ``checking`` into ``chec***ing``, which would garble the
log and reveal the secret). Decision: a secret shorter than
:data:`MIN_TEXT_SECRET` characters is not searched for in free text (it would
match everywhere); it is still masked in every printed configuration, and no
code path formats a connector's secret into a message.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
MIN_TEXT_SECRET = 4
SECRET_SUFFIXES = ("password", "passwd", "apikey", "token", "secret", "secretkey")
URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)@")
ENV_REF = re.compile(r"\$\{(oc\.env:[^}]+|[A-Za-z_][A-Za-z0-9_]*)\}")

_FROM_ENV: set[str] = set()  # values read from the environment by the configuration
_LOCK = threading.Lock()


def is_secret_key(key: object) -> bool:
    """Return True for a key whose value is a credential (by name, not by substring)."""
    norm = re.sub(r"[^a-z0-9]", "", str(key).lower())
    return norm.endswith(SECRET_SUFFIXES)


def remember(value: object) -> None:
    """Record a value that came from the environment (masked wherever it shows)."""
    if isinstance(value, (str, int)) and str(value):
        with _LOCK:
            _FROM_ENV.add(str(value))


def from_env() -> list[str]:
    """Return the values read from the environment so far."""
    with _LOCK:
        return sorted(_FROM_ENV)


def install_env_resolver() -> None:
    """Wrap OmegaConf's ``oc.env`` so every value it returns is remembered as a secret.

    OmegaConf keeps resolvers in ``BaseContainer._resolvers`` (its low-level
    signature); the wrapper delegates and records the result (idempotent).
    """
    from omegaconf.basecontainer import BaseContainer

    resolvers: dict[str, Any] = BaseContainer._resolvers
    original = resolvers.get("oc.env")
    if original is None or getattr(original, "remembers", False):
        return

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        value = original(*args, **kwargs)
        remember(value)
        return value

    wrapped.remembers = True  # type: ignore[attr-defined]
    resolvers["oc.env"] = wrapped


def url_secrets(text: str) -> list[str]:
    """Return the passwords inside URLs of ``text``."""
    return [m.group("pw") for m in URL_CREDENTIALS.finditer(text)]


def mask_url(text: str) -> str:
    """Return ``text`` with URL passwords masked."""
    return URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def collect(node: Any) -> set[str]:
    """Return the secret values of a configuration: secret keys, URL credentials, env values."""
    found: set[str] = set(from_env())
    _collect(node, found)
    return found


def _collect(node: Any, found: set[str]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if is_secret_key(key) and value is not None and not isinstance(value, bool) \
                    and not isinstance(value, (Mapping, list)) and str(value):
                found.add(str(value))
            else:
                _collect(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect(value, found)
    elif isinstance(node, str):
        found.update(url_secrets(node))


def mask_tree(node: Any, env_values: Iterable[str] = ()) -> Any:
    """Return a copy of a configuration with every secret masked, key by key."""
    env = set(env_values) | set(from_env())
    return _mask(node, env, secret=False)


def _mask(node: Any, env: set[str], secret: bool) -> Any:
    if isinstance(node, Mapping):
        return {k: _mask(v, env, secret or is_secret_key(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v, env, secret) for v in node]
    if node is None or isinstance(node, bool):
        return node
    if secret:
        return MASK
    text = str(node)
    if text in env or (isinstance(node, str) and ENV_REF.fullmatch(text) is None
                       and text in env):
        return MASK
    if isinstance(node, str):
        return mask_url(node)
    return node


def mask_overrides(overrides: Iterable[str]) -> list[str]:
    """Return command-line overrides with the values of secret keys masked."""
    out = []
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if sep and is_secret_key(key.rsplit(".", 1)[-1]):
            out.append(f"{key}={MASK}")
        else:
            out.append(mask_url(str(item)))
    return out


def scrub(text: str, argv: Iterable[str] = (), secrets: Iterable[str] = ()) -> str:
    """Return an error or log line without secrets: overrides, URL passwords, known values."""
    for item in argv:
        key, sep, value = str(item).partition("=")
        if sep and value and is_secret_key(key.rsplit(".", 1)[-1]):
            text = text.replace(str(item), f"{key}={MASK}")
            text = _replace_token(text, value)
    if any(is_secret_key(part) for part in re.findall(r"[A-Za-z0-9_]+", text)):
        # An error about a secret key: never echo the value it quotes.
        text = re.sub(r"'.*'", f"'{MASK}'", text)
        text = re.sub(r'".*"', f'"{MASK}"', text)
        text = re.sub(r"=([^\s,)]+)", f"={MASK}", text)
    text = mask_url(text)
    for secret in sorted(set(secrets) | set(from_env()), key=len, reverse=True):
        text = _replace_token(text, secret)
    return text


def _replace_token(text: str, secret: str) -> str:
    """Replace ``secret`` where it stands as a whole token (never inside a longer word)."""
    if len(secret) < MIN_TEXT_SECRET:
        return text
    pattern = rf"(?<![A-Za-z0-9_]){re.escape(secret)}(?![A-Za-z0-9_])"
    return re.sub(pattern, MASK, text)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Return free text with every known secret masked as a whole token."""
    text = mask_url(text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = _replace_token(text, secret)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in the fully formatted message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message} ({record.exc_info[1]})"
            record.exc_info = None
            record.exc_text = None
        masked = redact_text(message, (*self.secrets, *from_env()))
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True


class ConfigPrintFilter(logging.Filter):
    """Mask the configuration Hydra logs for ``--info config|all`` (parsed, masked by key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        import yaml

        message = record.getMessage()
        if "\n" not in message or ":" not in message:
            return True
        try:
            data = yaml.safe_load(message)
        except yaml.YAMLError:
            return True
        if isinstance(data, dict):
            record.msg = yaml.safe_dump(mask_tree(data), sort_keys=False)
            record.args = None
        return True


def protect_sweep() -> None:
    """In a Hydra multirun job, protect the sweep's multirun.yaml (see protect_multirun)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        config = HydraConfig.get()
    except ValueError:
        return
    if config.mode is None or config.mode.name != "MULTIRUN":
        return
    protect_multirun(Path(config.sweep.dir))


def protect_multirun(sweep_dir: Path) -> None:
    """Rewrite ``<sweep_dir>/multirun.yaml`` masked, mode 0600 (Hydra writes it 0644, clear)."""
    import yaml

    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return
    os.chmod(sweep_dir, 0o700)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    masked = mask_tree(data)
    hydra = masked.get("hydra") if isinstance(masked, dict) else None
    if isinstance(hydra, dict):
        overrides = hydra.get("overrides")
        if isinstance(overrides, dict):
            for name in ("task", "hydra"):
                if isinstance(overrides.get(name), list):
                    overrides[name] = mask_overrides(overrides[name])
        job = hydra.get("job")
        if isinstance(job, dict) and isinstance(job.get("override_dirname"), str):
            job["override_dirname"] = MASK if any(
                is_secret_key(p.split("=")[0].rsplit(".", 1)[-1])
                for p in job["override_dirname"].split(",")) else job["override_dirname"]
    tmp = path.with_name(".multirun.yaml.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(masked, out, sort_keys=False)
    os.replace(tmp, path)
    os.chmod(path, 0o600)


def check_host(host: str) -> None:
    """Refuse a ``host`` holding a URL or credentials (it would be printed and logged).

    Raises ValueError without echoing the value.
    """
    if "@" in host or "://" in host:
        raise ValueError("host must be a host name or address, not a URL or credentials "
                         "(value not shown); put the password in the password key, e.g. "
                         "password: ${oc.env:REDIS_PASSWORD}")


def check_host_port(node: str, key: str) -> tuple[str, int]:
    """Return (host, port) of a ``host:port`` setting (Redis Cluster ``startup_nodes``).

    Decision: ``user:password@host:port`` is refused, not masked (as :func:`check_host`):
    a credential in an address travels into every message that names the server, and
    the connector has a password key for it. Raises ValueError naming ``key`` and never
    echoing a value that holds ``@``.
    """
    text = str(node)
    if "@" in text or "://" in text:
        raise ValueError(f"{key} must be host:port, not a URL or credentials (value not "
                         "shown); put the password in the password key, e.g. "
                         "password: ${oc.env:REDIS_PASSWORD}")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{key}: {text!r} is not host:port")
    return host, int(port)


def check_http_url(url: str, key: str, secret_key: str) -> None:
    """Refuse an http(s) base URL (``key``) that is malformed or carries a secret.

    Credentials, a query or a fragment in a URL end up in logs, error messages and
    proxies' access logs; the secret belongs in ``secret_key`` (sent in a header).
    One rule for every HTTP integration (EmonCms ``addr``, influxDb2 ``host``).
    Raises ValueError naming ``key``; the URL is echoed with its password masked.
    """
    shown = repr(mask_url(url))
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as err:
        raise ValueError(f"{key} {shown} is not a valid URL ({err})") from err
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{key} must start with http:// or https://, got {shown}")
    if not parts.hostname:
        raise ValueError(f"{key} {shown} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{key} must not contain user:password@; use {secret_key}")
    if parts.query or parts.fragment:
        raise ValueError(f"{key} must not contain a query or fragment (the secret goes in "
                         f"{secret_key}, never in the URL)")
