"""Certificates for the TLS partners, made at startup with `cryptography`.

The simulator has its own certificate authority. A client that trusts it
(its PEM, `Certificates.ca_file`, as the engine's `ca_bundle`) sees each
kind of certificate fail the way it does on the internet::

    kind            certificate for 127.0.0.1          a client trusting the simulator's CA gets
    valid ......... issued by the simulator's CA ..... a working TLS connection
    expired ....... issued by it, expired yesterday .. CERT_HAS_EXPIRED
    not-yet-valid . issued by it, valid from tomorrow  CERT_NOT_YET_VALID
    wrong-host .... issued by it for another name .... ERR_TLS_CERT_ALTNAME_INVALID
    self-signed ... signed by its own key ............ DEPTH_ZERO_SELF_SIGNED_CERT
    unknown-ca .... issued by a CA nobody trusts ..... UNABLE_TO_GET_ISSUER_CERT_LOCALLY

A client that does not trust the simulator's CA gets
UNABLE_TO_GET_ISSUER_CERT_LOCALLY for the first four too: OpenSSL reports
the unknown issuer before looking at dates or names.

Keys are ECDSA P-256 (fast to make). `ssl` loads certificates only from
files, so they are written to a private directory that `close()` removes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK: Final = "127.0.0.1"
TLS_KINDS: Final = ("valid", "expired", "not-yet-valid", "wrong-host", "self-signed", "unknown-ca")


@dataclass(frozen=True, slots=True)
class _Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _authority(common_name: str, now: dt.datetime) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(key, cert)


def _leaf(
    issuer: _Authority | None, host: str, not_before: dt.datetime, not_after: dt.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server certificate for `host`; self-signed when `issuer` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        alt_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt_name = x509.DNSName(host)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(issuer.cert.subject if issuer else _name(host))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    return key, builder.sign(issuer.key if issuer else key, hashes.SHA256())


class Certificates:
    """The simulator's CA and one server certificate per kind, made on first use."""

    def __init__(self) -> None:
        self._now = dt.datetime.now(dt.UTC)
        self._ca = _authority("deliverydash partner simulator CA", self._now)
        self._directory = Path(tempfile.mkdtemp(prefix="deliverydash-partners-"))
        self.ca_file = self._directory / "ca.pem"
        """The simulator CA's certificate (PEM): trust it to reach the `valid` partners."""
        self.ca_file.write_bytes(self.ca_pem)
        self._contexts: dict[str, ssl.SSLContext] = {}

    @property
    def ca_pem(self) -> bytes:
        """The simulator CA's certificate, PEM-encoded."""
        return self._ca.cert.public_bytes(serialization.Encoding.PEM)

    def write_ca(self, path: str | Path) -> Path:
        """Write the CA's certificate to `path` (for the engine's `ca_bundle`) and return it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.ca_pem)
        return target

    def server_context(self, kind: str) -> ssl.SSLContext:
        """A server TLS context presenting the certificate of `kind` (one of `TLS_KINDS`)."""
        if kind not in self._contexts:
            self._contexts[kind] = self._make_context(kind)
        return self._contexts[kind]

    def close(self) -> None:
        """Remove the certificate files (contexts already made keep working)."""
        shutil.rmtree(self._directory, ignore_errors=True)

    def _make_context(self, kind: str) -> ssl.SSLContext:
        day = dt.timedelta(days=1)
        now = self._now
        issuer: _Authority | None = self._ca
        host, not_before, not_after = LOOPBACK, now - day, now + 30 * day
        if kind == "expired":
            not_before, not_after = now - 30 * day, now - day
        elif kind == "not-yet-valid":
            not_before, not_after = now + day, now + 30 * day
        elif kind == "wrong-host":
            host = "partner.example.net"
        elif kind == "self-signed":
            issuer = None
        elif kind == "unknown-ca":
            issuer = _authority("an authority nobody trusts", now)
        elif kind != "valid":
            raise ValueError(f"unknown TLS kind {kind!r} (known: {', '.join(TLS_KINDS)})")
        key, cert = _leaf(issuer, host, not_before, not_after)
        cert_path, key_path = self._directory / f"{kind}.pem", self._directory / f"{kind}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        return context
