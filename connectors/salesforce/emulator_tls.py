"""A self-signed certificate for serving the Salesforce emulator over HTTPS (reference §11.1).

simple-salesforce hard-codes ``https://`` (reference §10.1), so the emulator must
speak TLS. The certificate is made at start with ``cryptography`` for ``localhost``
and ``127.0.0.1``, written to a temporary folder, and is its own CA: a client
trusts it with ``verify=<cert path>`` (requests) or ``httpx.Client(verify=ctx)``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificate:
    """PEM files of a self-signed server certificate and its key."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this certificate (for httpx's ``verify``)."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def self_signed(folder: Path | None = None, host: str = "127.0.0.1") -> Certificate:
    """A fresh certificate valid for a day, for ``localhost``, 127.0.0.1 and ``host``,
    written as ``cert.pem`` and ``key.pem`` in ``folder`` (a new temporary one by default)."""
    folder = folder or Path(tempfile.mkdtemp(prefix="sf-emulator-"))
    key = rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stocksync salesforce emulator")])
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for address in {"127.0.0.1", host}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(private_pem(key))
    key_path.chmod(0o600)
    return Certificate(cert_path, key_path)
