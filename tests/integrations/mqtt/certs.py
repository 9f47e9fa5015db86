"""Test certificates: a CA and a server certificate for 127.0.0.1/localhost, made on the fly."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest


def make_certs(directory: Path) -> tuple[str, str, str]:
    """Write ca.pem, server.pem, server.key into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        _with_cryptography(directory)
    except ImportError:
        _with_openssl(directory)
    return tuple(str(directory / n) for n in ("ca.pem", "server.pem", "server.key"))  # type: ignore[return-value]


def _with_cryptography(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1)))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (builder("vemonitor test CA", "vemonitor test CA", ca_key)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (builder("127.0.0.1", "vemonitor test CA", key).add_extension(alt, critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(cert.public_bytes(pem))
    (directory / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))


def _with_openssl(directory: Path) -> None:
    openssl = shutil.which("openssl") or pytest.skip("neither cryptography nor openssl")
    run = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-days", "1"]
    subprocess.run([*run, "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=vemonitor test CA"],
                   cwd=directory, check=True, capture_output=True)
    subprocess.run([*run[:1], "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
                   cwd=directory, check=True, capture_output=True)
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run([openssl, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey",
                    "ca.key", "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out",
                    "server.pem"], cwd=directory, check=True, capture_output=True)
