"""The server's security policies and its application instance certificate (made on first start).

A certificate and key that exist are used as they are, never replaced: a plant that had its own
certificate issued keeps it. When both are absent the server makes a self-signed one (RSA 2048,
SHA-256, five years, asyncua's public generator), the key readable by the gateway's user only. The
server's ApplicationUri is the one the certificate names, as OPC UA clients check the two agree.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from datetime import UTC, datetime

from asyncua import ua
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

POLICIES = {"None": ua.SecurityPolicyType.NoSecurity,
            **{name: getattr(ua.SecurityPolicyType, name) for name in (
                "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt", "Aes128Sha256RsaOaep_Sign",
                "Aes128Sha256RsaOaep_SignAndEncrypt", "Aes256Sha256RsaPss_Sign", "Aes256Sha256RsaPss_SignAndEncrypt")}}
CERTIFICATE_DAYS = 5 * 365


class CertificateError(Exception):
    """The certificate or key cannot be used or made: the server does not start."""


def application_uri(certificate: x509.Certificate, default: str) -> str:
    """The URI in the certificate's subjectAltName, which clients compare with the server's ApplicationUri."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return default
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else default


def ensure_certificate(certificate_path: str, key_path: str, uri: str, hosts: list[str]) -> str:
    """Make the certificate (and key) when absent; return the ApplicationUri to serve with."""
    have_cert, have_key = os.path.isfile(certificate_path), os.path.isfile(key_path)
    if have_cert and not have_key:
        raise CertificateError(f"opcua_server.private_key: {key_path} is missing, but the certificate "
                               f"{certificate_path} exists (give both, or neither to have them made)")
    try:
        if have_key:
            with open(key_path, "rb") as f:
                key = serialization.load_pem_private_key(f.read(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise CertificateError(f"opcua_server.private_key: {key_path} is not an RSA key")
        else:
            key = cert_gen.generate_private_key()
            os.makedirs(os.path.dirname(key_path) or ".", exist_ok=True)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(cert_gen.dump_private_key_as_pem(key))
        if have_cert:
            with open(certificate_path, "rb") as f:
                data = f.read()
            cert = x509.load_der_x509_certificate(data) if not data.startswith(b"-----") else \
                x509.load_pem_x509_certificate(data)
            return application_uri(cert, uri)
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
        for host in dict.fromkeys(h for h in hosts if h):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = cert_gen.generate_self_signed_app_certificate(
            key, f"spc-gateway@{socket.gethostname()}", {}, names,
            extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=CERTIFICATE_DAYS)
        os.makedirs(os.path.dirname(certificate_path) or ".", exist_ok=True)
        with open(certificate_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.DER))
        return uri
    except (OSError, ValueError) as exc:
        raise CertificateError(f"opcua_server: cannot use or make the certificate and key "
                               f"({certificate_path}, {key_path}): {exc}") from None


def expires(certificate_path: str) -> datetime | None:
    try:
        with open(certificate_path, "rb") as f:
            data = f.read()
        cert = x509.load_der_x509_certificate(data) if not data.startswith(b"-----") else \
            x509.load_pem_x509_certificate(data)
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc.astimezone(UTC)
